/*
 * watchdog.c - a wall clock for the calls into scripts, kept by one thread.
 *
 * A script's time limit must hold wherever the script spends its time: in
 * Lua code, in a C function of the standard library, in the collector. Reading
 * the clock at every call would cost the hot path (one call per event), so the
 * loop thread only publishes a counter: each call into a script takes the next
 * number (ml_watch_begin) and clears `active` when it returns. This thread
 * looks every WATCH_TICK_MS; a call it sees under the same number for longer
 * than the script's time limit is marked expired (`expired` holds its
 * number, so a late mark can never fall on the next call). Time is the CPU
 * time of the thread running the call, which is what a script spends: a
 * machine too busy to give the loop thread its share does not fault scripts
 * (nor mark them stuck), however long the call takes by the wall. The count hook,
 * the bounded library functions and the allocator read that mark and stop
 * the script (limits.c); a check costs two loads.
 *
 * Past the limit and a grace period, the call has reached none of those
 * checks: it is stuck somewhere nothing can interrupt. The process's stuck
 * handler (ml_script_on_stuck) is then called on this thread; the server's
 * records the script's fault and ends the process, so that a supervisor
 * restarts it and the script does not run that event again.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <moonlog/util.h>

#include "script_internal.h"

#define WATCH_TICK_MS 10
#define SLOW_NS	      (50 * 1000000ull)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t started = PTHREAD_ONCE_INIT;
static struct ml_script_clock *clocks; /* every loaded script's, under lock */
static _Atomic uint64_t slow_seen_ns;  /* when a call was last seen running past SLOW_NS */
static ml_script_stuck_fn *stuck_fn;
static void *stuck_arg;
static uint64_t stuck_grace_ns = 5000000000ull;

/* The CPU time the thread with that clock has used, or 0 if it cannot be read. */
static uint64_t thread_cpu_ns(int clock)
{
	struct timespec ts;
	if (clock == 0 || clock_gettime((clockid_t)clock, &ts) != 0) /* (thread clocks are < 0) */
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void look(struct ml_script_clock *c, uint64_t now)
{
	uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
	if (!atomic_load_explicit(&c->active, memory_order_acquire)) {
		c->seen_seq = 0;
		return;
	}
	uint64_t cpu = thread_cpu_ns(atomic_load_explicit(&c->cpu_clock, memory_order_relaxed));
	if (seq != c->seen_seq) {
		c->seen_seq = seq;
		c->seen_cpu = cpu;
		c->stuck_told = 0;
		return;
	}
	uint64_t ran = cpu - c->seen_cpu;
	if (ran >= SLOW_NS)
		atomic_store_explicit(&slow_seen_ns, now, memory_order_relaxed);
	if (ran >= c->limit_ns && atomic_load_explicit(&c->expired, memory_order_relaxed) != seq)
		atomic_store_explicit(&c->expired, seq, memory_order_release);
	if (ran >= c->limit_ns + stuck_grace_ns && !c->stuck_told && stuck_fn) {
		struct ml_script_stuck st = {
		    c->script->name, c->script->hash,
		    atomic_load_explicit(&c->position, memory_order_relaxed), ran / 1000000};
		c->stuck_told = 1;
		stuck_fn(&st, stuck_arg);
	}
}

static void *watch_main(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "moonlog-watch");
	struct timespec tick = {0, WATCH_TICK_MS * 1000000L};
	for (;;) {
		nanosleep(&tick, NULL);
		uint64_t now = ml_clock_ns();
		pthread_mutex_lock(&lock);
		for (struct ml_script_clock *c = clocks; c; c = c->next)
			look(c, now);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static void start(void)
{
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 * 1024);
	if (pthread_create(&t, &a, watch_main, NULL) != 0)
		fprintf(stderr, "moonlog: cannot start the scripts' watchdog thread: scripts run "
				"without a time limit\n");
	pthread_attr_destroy(&a);
}

void ml_watch_add(struct ml_script_clock *c, struct ml_script *s, uint64_t limit_ns)
{
	pthread_once(&started, start);
	c->script = s;
	c->limit_ns = limit_ns;
	pthread_mutex_lock(&lock);
	c->next = clocks;
	c->prev = NULL;
	if (clocks)
		clocks->prev = c;
	clocks = c;
	pthread_mutex_unlock(&lock);
}

void ml_watch_remove(struct ml_script_clock *c)
{
	if (c->script == NULL)
		return;
	pthread_mutex_lock(&lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		clocks = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&lock);
	c->script = NULL;
}

void ml_script_on_stuck(ml_script_stuck_fn *fn, void *arg, uint64_t grace_ms)
{
	pthread_mutex_lock(&lock);
	stuck_fn = fn;
	stuck_arg = arg;
	if (grace_ms)
		stuck_grace_ns = grace_ms * 1000000ull;
	pthread_mutex_unlock(&lock);
}

uint64_t ml_script_slow_call_ns(void)
{
	return atomic_load_explicit(&slow_seen_ns, memory_order_relaxed);
}

void ml_watch_thread(struct ml_script_clock *c)
{
	clockid_t cpu;
	c->thread = pthread_self();
	c->have_thread = 1;
	atomic_store_explicit(&c->cpu_clock,
			      pthread_getcpuclockid(c->thread, &cpu) == 0 ? (int)cpu : 0,
			      memory_order_relaxed);
}
