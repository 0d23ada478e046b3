/*
 * limits.c - keeping the server inside its file descriptors, and its stderr
 * readable when clients misbehave.
 *
 * Every connection costs a descriptor, and so do the log's segments, the
 * scripts' watch and files, the listeners. At start the soft RLIMIT_NOFILE is
 * raised to the hard one, and the connection limit is derived from what is
 * left (docs/operations.md gives the formula), so that connections are refused
 * cleanly before the process runs out. Should accept() still fail for want of
 * descriptors, the listeners pause for ACCEPT_PAUSE_MS (or until a connection
 * closes) rather than being called again at once by a listening socket that
 * stays readable: libevent's default there is a warning per attempt, in a loop.
 *
 * Warnings a client can cause are rate-limited per cause: one line a second at
 * most, and the next says how many were held back. libevent's own messages go
 * the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/net_internal.h"

#define ACCEPT_PAUSE_MS 100
#define FD_RESERVE	64 /* descriptors kept for segments, scripts, snapshots, admin clients */
#define WARN_EVERY_MS	1000

/* The server whose loop runs on this thread: libevent hands the HTTP listener's
 * error callback evhttp's pointer, not ours. */
static _Thread_local struct ml_server *serving;

void ml_net_set_serving(struct ml_server *s)
{
	serving = s;
}

/* Descriptors open now; 0 if /proc is not there to tell. */
static uint64_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return 0;
	uint64_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n > 0 ? n - 1 : 0; /* not the one reading the folder */
}

void ml_net_plan_conns(struct ml_server *s)
{
	uint64_t used = open_fds();
	uint64_t left = s->fd_limit > used ? s->fd_limit - used : 0;
	uint64_t room = left > 2 * FD_RESERVE ? left - FD_RESERVE : left / 2;
	if (room > UINT32_MAX)
		room = UINT32_MAX;
	if (room == 0)
		room = 1;
	s->max_conns = s->o.max_conns ? s->o.max_conns : (uint32_t)room;
	if (s->max_conns > room) {
		ml_server_log_line(s,
				   "--max-conns %u is more than the descriptor limit allows (%llu, "
				   "%llu in use): using %llu; raise the limit (ulimit -n) for more",
				   s->o.max_conns, (unsigned long long)s->fd_limit,
				   (unsigned long long)used, (unsigned long long)room);
		s->max_conns = (uint32_t)room;
	}
}

int ml_net_room(const struct ml_server *s)
{
	return (uint64_t)(s->nconns - s->nadmin) + s->nhttp < s->max_conns;
}

/* ---- warnings ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	return (int64_t)(ml_clock_ns() / 1000000);
}

static void print_held(struct ml_server *s, struct ml_warn *w)
{
	if (w->suppressed == 1)
		ml_server_log_line(s, "%s", w->last);
	else
		ml_server_log_line(s, "%s [and %llu more like it in the last second]", w->last,
				   (unsigned long long)(w->suppressed - 1));
	w->suppressed = 0;
}

void ml_server_warn(struct ml_server *s, enum ml_warn_cause cause, const char *fmt, ...)
{
	struct ml_warn *w = &s->warns[cause];
	int64_t now = now_ms();
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->last, sizeof(w->last), fmt, ap);
	va_end(ap);
	if (now < w->next_ms) {
		w->suppressed++;
		return;
	}
	w->suppressed = 1;
	print_held(s, w);
	w->next_ms = now + WARN_EVERY_MS;
}

void ml_net_warn_tick(struct ml_server *s)
{
	int64_t now = now_ms();
	for (int i = 0; i < ML_WARN_N; i++) {
		struct ml_warn *w = &s->warns[i];
		if (w->suppressed && now >= w->next_ms) {
			print_held(s, w);
			w->next_ms = now + WARN_EVERY_MS;
		}
	}
}

/* libevent's warnings, e.g. about a socket a client broke, through the same gate. */
static void libevent_log(int severity, const char *msg)
{
	if (severity < EVENT_LOG_WARN)
		return;
	if (serving)
		ml_server_warn(serving, ML_WARN_LIBEVENT, "libevent: %s", msg);
	else
		fprintf(stderr, "moonlog serve: libevent: %s\n", msg);
}

/* ---- accept ------------------------------------------------------------- */

static void set_listening(struct ml_server *s, int on)
{
	struct evconnlistener *ls[] = {s->stopping ? NULL : s->tcp, s->stopping ? NULL : s->admin,
				       s->http_lev};
	for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
		if (ls[i] && on)
			evconnlistener_enable(ls[i]);
		else if (ls[i])
			evconnlistener_disable(ls[i]);
	}
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct ml_server *s = arg;
	evtimer_del(s->resume_ev);
	if (!s->accept_paused)
		return;
	s->accept_paused = 0;
	set_listening(s, 1);
}

/* libevent: accept() failed with something other than "try again". */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct ml_server *s = serving;
	int err = EVUTIL_SOCKET_ERROR();
	(void)arg; /* ours for RPC, evhttp's for HTTP */
	if (s == NULL)
		return;
	ml_server_warn(s, ML_WARN_ACCEPT,
		       "cannot accept connections: %s; pausing accept for %d ms (%u open; raise "
		       "the descriptor limit with ulimit -n, or lower --max-conns)",
		       strerror(err), ACCEPT_PAUSE_MS, s->nconns + s->nhttp);
	if (s->accept_paused)
		return;
	s->accept_paused = 1;
	set_listening(s, 0);
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
	evtimer_add(s->resume_ev, &tv);
}

void ml_net_watch_listener(struct ml_server *s, struct evconnlistener *l)
{
	static int logging;
	if (!logging++)
		event_set_log_callback(libevent_log);
	if (s->resume_ev == NULL)
		s->resume_ev = evtimer_new(s->base, on_resume, s);
	evconnlistener_set_error_cb(l, on_accept_error);
}

void ml_net_conn_gone(struct ml_server *s)
{
	if (s->accept_paused)
		event_active(s->resume_ev, EV_TIMEOUT, 0);
}

void ml_net_refused(struct ml_server *s, const char *what)
{
	s->refused++;
	s->errors++;
	ml_server_warn(s, ML_WARN_FULL,
		       "refused %s connection: %u open, the limit is %u (--max-conns; the "
		       "descriptor limit is %llu)",
		       what, s->nconns - s->nadmin + s->nhttp, s->max_conns,
		       (unsigned long long)s->fd_limit);
}

void ml_net_limits_free(struct ml_server *s)
{
	if (s->resume_ev)
		event_free(s->resume_ev);
	s->resume_ev = NULL;
}
