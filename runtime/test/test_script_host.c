/*
 * test_script_host.c - a hosted handler whose batch the log fails to write (an
 * injected ENOSPC, as a full disk would give): it is not faulted, the batch is
 * built and appended again after a backoff, and what it emitted is stored once,
 * with its checkpoint; a parked event's batch too. And handlers' batches: what a
 * slice emits goes in one batch with the checkpoint, so 1,000 events handled take
 * a few appends, each emit is stored once and in order, and a fault in the middle
 * of a slice keeps what was handled before it, with a checkpoint just before it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/host.h>

#include "log/faults.h"
#include "log_helpers.h"
#include "unit.h"

static const char echo[] =
    "local ml = require 'moonlog'\n"
    "return ml.handler { name = 'echo', from = 'ping-*', on_error = 'park',\n"
    "  on = { Ping = function(e, ctx)\n"
    "    if e.data.amount == 10 and e.stream == 'ping-2' then error('no') end\n"
    "    ctx.emit('pong-' .. e.stream, 'Pong', { n = 1 }) end } }\n";

static int64_t count(struct ml_log *log, const char *stream)
{
	struct collect c = {.n = 0};
	ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, collect_fn, &c);
	return c.n;
}

static void ping(struct ml_log *log, const char *stream)
{
	struct ml_event_in e = ev(stream, "Ping", NULL);
	struct ml_append req = {.events = &e, .n_events = 1};
	ml_log_append(log, &req);
}

/* Steps the host for up to `ms`, until `stream` holds `n` events. */
static int step_until(struct ml_host *h, struct ml_log *log, const char *stream, int64_t n, int ms)
{
	for (int i = 0; i < ms / 5; i++) {
		ml_host_step(h);
		if (count(log, stream) >= n)
			return 1;
		usleep(5000);
	}
	return 0;
}

static void write_script(const char *dir, const char *file, const char *src)
{
	char path[1300];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "w");
	fputs(src, f);
	fclose(f);
}

/* DIR/scripts, made. */
static void scripts_folder(const char *dir, char *out, size_t n)
{
	char cmd[1300];
	snprintf(out, n, "%s/scripts", dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", out);
	ok(system(cmd) == 0, "a scripts folder");
}

static struct ml_host *open_host(struct ml_log *log, const char *dir, const char *scripts)
{
	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = scripts, ho.data_dir = dir, ho.quiet = 1;
	struct ml_host *h = ml_host_open(log, &ho);
	ok(h != NULL, "a host: %s", h ? "" : ml_diag_last());
	return h;
}

static void test_retry(void)
{
	char *dir = unit_tmpdir("host-retry");
	char scripts[1100];
	scripts_folder(dir, scripts, sizeof(scripts));
	write_script(scripts, "echo.lua", echo);
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_host *h = open_host(log, dir, scripts);
	struct ml_script *s = h ? ml_host_script(h, "echo", 4) : NULL;

	ping(log, "ping-1");
	ml_log_inject_fault(log, 1, ENOSPC);
	for (int i = 0; i < 20; i++) /* feed, submit, fail, settle: a retry waits */
		ml_host_step(h), usleep(1000);
	is_int(count(log, "pong-ping-1"), 0, "the failed batch stored nothing");
	ok(s && ml_host_fault(h, s) == NULL, "the handler is not faulted");
	ok(step_until(h, log, "pong-ping-1", 1, 3000), "its batch goes in on the next try");
	ok(step_until(h, log, "$checkpoint-echo", 1, 1000), "with its checkpoint");
	is_int(count(log, "pong-ping-1"), 1, "once");

	/* A parked event's batch: the event is read again to build it. */
	ping(log, "ping-2");
	ml_log_inject_fault(log, 1, ENOSPC);
	for (int i = 0; i < 20; i++)
		ml_host_step(h), usleep(1000);
	is_int(count(log, "$parked-echo"), 0, "the failed parking stored nothing");
	ok(step_until(h, log, "$parked-echo", 1, 3000), "the parked event goes in on the next try");
	ok(s && ml_host_fault(h, s) == NULL, "and the handler runs on");
	ml_host_close(h);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

/* The `p` field of each event read, in order. */
struct fields {
	uint64_t v[2048];
	int n;
};

static int p_field(const struct ml_event *ev, void *arg)
{
	struct fields *f = arg;
	/* {p = N}: fixmap 1, fixstr "p", then a uint */
	const uint8_t *d = ev->data;
	uint64_t v = 0;
	if (ev->data_len >= 4 && d[0] == 0x81 && d[1] == 0xa1 && d[2] == 'p') {
		if (d[3] < 0x80)
			v = d[3];
		else if (d[3] == 0xcc)
			v = d[4];
		else if (d[3] == 0xcd)
			v = (uint64_t)d[4] << 8 | d[5];
	}
	if (f->n < 2048)
		f->v[f->n] = v;
	f->n++;
	return 0;
}

static void test_batches(void)
{
	char *dir = unit_tmpdir("host-batches");
	char scripts[1100];
	scripts_folder(dir, scripts, sizeof(scripts));
	write_script(scripts, "every.lua",
		     "local ml = require 'moonlog'\n"
		     "return ml.handler { name = 'every', from = 'ping-*',\n"
		     "  on = { Ping = function(e, ctx) ctx.emit('pong', 'Pong', { p = e.position })"
		     " end } }\n");
	write_script(scripts, "stopper.lua",
		     "local ml = require 'moonlog'\n"
		     "return ml.handler { name = 'stopper', from = 'ping-*', on_error = 'stop',\n"
		     "  on = { Ping = function(e, ctx)\n"
		     "    if e.position == 200 then error('stop here') end\n"
		     "    ctx.emit('stopped', 'Pong', { p = e.position }) end } }\n");
	write_script(scripts, "sys.lua",
		     "local ml = require 'moonlog'\n"
		     "return ml.handler { name = 'sys', from = 'ping-*',\n"
		     "  on = { Ping = function(e, ctx)\n"
		     "    ctx.emit(e.position == 250 and '$nope' or 'sysout', 'Pong', "
		     "{ p = e.position }) end } }\n");
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	for (int i = 0; i < 1000; i++)
		ping(log, "ping-1");
	struct ml_host *h = open_host(log, dir, scripts);
	if (h == NULL)
		return;
	ml_host_drain(h);

	struct fields f = {.n = 0};
	ml_log_read_stream(log, "pong", 4, 0, 0, 0, p_field, &f);
	is_int(f.n, 1000, "a handler emitting on every event: each emit stored once");
	int in_order = f.n == 1000;
	for (int i = 0; in_order && i < 1000; i++)
		in_order = f.v[i] == (uint64_t)i + 1;
	ok(in_order, "in the log's order");
	int64_t batches = count(log, "$checkpoint-every");
	ok(batches >= 2 && batches <= 20, "in a few batches, not one per event (%lld)",
	   (long long)batches);

	f.n = 0;
	ml_log_read_stream(log, "stopped", 7, 0, 0, 0, p_field, &f);
	is_int(f.n, 199, "a fault in a slice keeps the emits of the events before it");
	struct ml_script *s = ml_host_script(h, "stopper", 7);
	ok(s && ml_host_fault(h, s) != NULL, "and the handler is faulted");
	f.n = 0;
	ml_log_read_stream(log, "sysout", 6, 0, 0, 0, p_field, &f);
	is_int(f.n, 249, "emitting to a system stream faults there, after what came before");
	s = ml_host_script(h, "sys", 3);
	ok(s && ml_host_fault(h, s) != NULL, "that handler is faulted too");
	ml_host_close(h);

	/* After a restart each resumes from its checkpoint: nothing is emitted twice. */
	h = open_host(log, dir, scripts);
	if (h)
		ml_host_drain(h), ml_host_close(h);
	is_int(count(log, "pong"), 1000, "no emit twice after a restart");
	is_int(count(log, "stopped"), 199, "the stopped handler stops at the same event again");
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

/*
 * A handler checkpointing after every event (--checkpoint-events 1) does not count
 * its own batch as events to checkpoint: its checkpoint is an event in the log, and
 * counting it wrote a checkpoint for the checkpoint, forever.
 */
static void test_checkpoint_every_event(void)
{
	char *dir = unit_tmpdir("host-checkpoint-1");
	char scripts[1100];
	scripts_folder(dir, scripts, sizeof(scripts));
	write_script(scripts, "echo.lua", echo);
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = scripts, ho.data_dir = dir, ho.quiet = 1, ho.checkpoint_events = 1;
	struct ml_host *h = ml_host_open(log, &ho);
	ok(h != NULL, "a host: %s", h ? "" : ml_diag_last());
	ping(log, "ping-1");
	ok(step_until(h, log, "$checkpoint-echo", 1, 3000), "the handler's batch and checkpoint");
	ping(log, "other-1"); /* not for the handler: passed over, and counted */
	for (int i = 0; i < 100; i++)
		ml_host_step(h), usleep(1000);
	int64_t n = count(log, "$checkpoint-echo");
	ok(n >= 1 && n <= 2,
	   "a checkpoint for the event and one for the passed event, no more (%lld)", (long long)n);
	ml_host_close(h);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	test_retry();
	test_batches();
	test_checkpoint_every_event();
	return done_testing();
}
