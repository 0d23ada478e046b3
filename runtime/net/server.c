/*
 * server.c - the server's loop: listeners, signals, the completion queue that
 * brings the log's answers back from its flusher thread, and the end-of-turn
 * work (routing events, flushing output).
 *
 * Threads: the loop thread does everything but the disk; the log's flusher
 * writes and syncs. The flusher's done callback pushes a finished append onto
 * a lock-free stack and, when the stack was empty, activates one event; the
 * loop then takes the whole stack at once and answers every request in it.
 * A head move sets a flag and activates the same event. So a burst of
 * thousands of completions costs one wake-up, and a slow fdatasync only delays
 * the answers that wait for it. Appends are queued for the whole turn and the
 * log is kicked once at its end (ml_log_kick): a lone append is then written
 * and synced on the loop thread itself, sparing it both hand-offs, while a
 * group goes to the flusher and the loop reads on.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/thread.h>

#include <moonlog/diag.h>
#include <moonlog/log_writer.h>

#include "net/net_internal.h"
#include "net/ops.h"

void ml_server_options_init(struct ml_server_options *o)
{
	*o = (struct ml_server_options){
	    .dir = "./moonlog-data",
	    .listen = "127.0.0.1:7420",
	    .http = "127.0.0.1:7421",
	    .max_request = 16u << 20,
	    .max_conns = 0, /* from the descriptor limit (limits.c) */
	    .max_outbuf = 8u << 20,
	    .max_read = 10000,
	    .eval_budget = 100000000,
	    .ack_timeout_ms = 30000,
	    .max_deliveries = 5,
	    .header_timeout_ms = 10000,
	    .idle_timeout_ms = 60000,
	    .frame_timeout_ms = 10000,
	    .rpc_idle_timeout_ms = 0,
	    .sse_heartbeat_ms = 15000,
	};
}

/* ---- the completion queue ---------------------------------------------- */

struct ml_pending *ml_pending_get(struct ml_server *s)
{
	struct ml_pending *p = s->free_pending;
	if (p)
		s->free_pending = p->qnext;
	else
		p = ml_xmalloc(sizeof(*p));
	/* All but the request's message buffer (256 bytes, which ml_append_refuse writes whole
	 * when it is used) is cleared: zeroing it too was a fifth of the work of a lone append's
	 * bookkeeping. */
	const size_t msg = offsetof(struct ml_pending, req.errmsg),
		     after = msg + sizeof(p->req.errmsg);
	memset(p, 0, msg);
	p->req.errmsg[0] = 0;
	memset((char *)p + after, 0, sizeof(*p) - after);
	p->srv = s;
	return p;
}

void ml_pending_put(struct ml_server *s, struct ml_pending *p)
{
	if (p->evs != &p->ev1)
		free(p->evs);
	if (p->poss != &p->pos1)
		free(p->poss);
	if (p->vers != &p->ver1)
		free(p->vers);
	p->qnext = s->free_pending;
	s->free_pending = p;
}

/* Flusher thread: queue the finished append for the loop. */
static void on_done(struct ml_append *req)
{
	struct ml_pending *p = req->arg;
	struct ml_server *s = p->srv;
	struct ml_pending *old = atomic_load(&s->done_q);
	do
		p->qnext = old;
	while (!atomic_compare_exchange_weak(&s->done_q, &old, p));
	if (old == NULL)
		event_active(s->wake, EV_READ, 0);
}

/* Flusher thread: the head moved (also by appends nobody waits for, like parking). */
static void on_head(uint64_t head, void *arg)
{
	struct ml_server *s = arg;
	(void)head;
	if (atomic_exchange(&s->head_moved, 1) == 0)
		event_active(s->wake, EV_READ, 0);
}

void ml_pending_submit(struct ml_server *s, struct ml_pending *p)
{
	p->req.done = on_done;
	p->req.arg = p;
	p->req.kick_later = 1; /* ml_log_kick at the end of the turn (ml_server_settle) */
	/* the front did not say when the request came (RPC does: the read that brought it) */
	if (p->t0 == 0)
		p->t0 = ml_clock_ns();
	int rc = ml_log_submit(s->log, &p->req);
	if (rc == 0) {
		s->inflight++;
		if (!s->kick) /* settle kicks the log: make sure one runs this turn */
			event_active(s->pump, EV_READ, 0);
		s->kick = 1;
		return;
	}
	/* Refused, or a duplicate answered at once. A refusal is counted in `errors` by the
	 * front that answers it, as its other errors are. */
	ml_hist_observe(&s->hist_append, p->t0);
	p->finish(p);
}

/* Answers the appends the log has finished. */
static void take_answers(struct ml_server *s)
{
	struct ml_pending *list = atomic_exchange(&s->done_q, NULL), *rev = NULL;
	while (list) { /* oldest first: answer in the order the log finished them */
		struct ml_pending *n = list->qnext;
		list->qnext = rev;
		rev = list;
		list = n;
	}
	uint64_t now = ml_clock_ns(); /* one read for the group the log finished together */
	while (rev) {
		struct ml_pending *n = rev->qnext;
		s->inflight--;
		if (rev->req.err == ML_OK)
			s->appended += rev->req.n_events;
		ml_hist_add(&s->hist_append, now - rev->t0);
		rev->finish(rev);
		rev = n;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct ml_server *s = arg;
	atomic_store(&s->head_moved, 0);
	take_answers(s);
	ml_server_settle(s);
	if (s->stopping && s->inflight == 0)
		event_base_loopexit(s->base, NULL);
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
	ml_server_settle(arg);
}

static void flush_answers(struct ml_server *s)
{
	ml_sse_flush(s);
	while (s->dirty) {
		struct ml_conn *c = s->dirty;
		s->dirty = c->dirty_next;
		c->dirty = 0;
		ml_conn_flush(c);
	}
}

void ml_server_settle(struct ml_server *s)
{
	if (s->router && ml_router_pump(s->router))
		event_active(s->pump, EV_READ, 0); /* more next turn: let I/O in between */
	/* Answers ready now go out before the hooks: a script fed there may hold the loop
	 * up to its time limit, and no answer should wait for that. */
	flush_answers(s);
	for (size_t i = 0; i < s->nhooks; i++)
		s->hooks[i].fn(s, s->hooks[i].arg);
	flush_answers(s);
	/* Last, with every answer out: a lone append may be written and synced right
	 * here (its completion then waits on the wake event, answered next). */
	if (s->kick) {
		s->kick = 0;
		ml_log_kick(s->log);
	}
}

void ml_server_settle_soon(struct ml_server *s)
{
	event_active(s->pump, EV_READ, 0); /* queued behind the callbacks already ready */
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ml_server *s = arg;
	ml_router_tick(s->router);
	ml_net_warn_tick(s);
	ml_sse_heartbeat(s);
	ml_server_settle(s);
}

/* ---- stopping ------------------------------------------------------------ */

/*
 * A stop waits for the appends in flight, but not for ever: those of a replicated
 * node may wait for a full disk or for NATS. After STOP_GRACE_S the loop ends anyway,
 * and ml_server_free has the log's writer complete them (let_go_of_log).
 */
#define STOP_GRACE_S 10

static void on_stop_grace(evutil_socket_t fd, short what, void *arg)
{
	struct ml_server *s = arg;
	if (s->inflight == 0)
		return;
	ml_server_log_line(s,
			   "stopping: %llu appends still wait for the log's writer after %d s; "
			   "it answers them with what it knows, and stops",
			   (unsigned long long)s->inflight, STOP_GRACE_S);
	event_base_loopexit(s->base, NULL);
}

static void begin_stop(struct ml_server *s)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	ml_server_log_line(s, "stopping: finishing %llu appends in flight",
			   (unsigned long long)s->inflight);
	if (s->tcp)
		evconnlistener_disable(s->tcp);
	if (s->admin)
		evconnlistener_disable(s->admin);
	if (s->inflight == 0) {
		event_base_loopexit(s->base, NULL);
		return;
	}
	struct timeval grace = {STOP_GRACE_S, 0};
	evtimer_add(s->stop_grace, &grace);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	begin_stop(arg);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	begin_stop(arg);
}

void ml_server_stop(struct ml_server *s)
{
	event_active(s->stop_ev, EV_READ, 0);
}

/* ---- listeners ----------------------------------------------------------- */

/* TCP keepalive finds a peer that vanished (about two minutes), since a quiet
 * subscriber is never closed for its silence. */
static void keepalive(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 6;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

void ml_net_tcp_options(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	keepalive(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct ml_server *s = arg;
	enum conn_kind kind = l == s->admin ? CONN_ADMIN : CONN_TCP;
	/* The admin socket is not counted: an operator can always get in. */
	int full = kind == CONN_TCP && !ml_net_room(s);
	if (s->stopping || full) {
		struct ml_buf b = {0}; /* an `error` notification, best effort, then close */
		ml_msgpack_put_array(&b, 3);
		ml_msgpack_put_uint(&b, 2);
		ml_msgpack_put_cstr(&b, "error");
		ml_msgpack_put_array(&b, 1);
		ml_msgpack_put_cstr(&b, s->stopping ? "the server is stopping"
						    : "the server has reached its connection limit "
						      "(--max-conns); try later");
		ssize_t w = write(fd, b.data, b.len);
		(void)w;
		ml_buf_free(&b);
		close(fd);
		if (full)
			ml_net_refused(s, "an RPC");
		else
			s->errors++;
		return;
	}
	if (kind == CONN_TCP)
		ml_net_tcp_options(fd);
	ml_conn_accept(s, fd, kind);
}

/* Splits HOST:PORT (port 0: any free one); returns 0 or -1 with diag. */
int ml_net_parse_addr(const char *addr, struct sockaddr_storage *ss, int *sslen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host) || !colon[1])
		goto bad;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:7420 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		goto bad;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = (int)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	return ml_diag_set(ML_ERR_USAGE,
			   "cannot read the address '%s': give HOST:PORT, e.g. 127.0.0.1:7420",
			   addr);
}

static int bound_port(evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int listen_tcp(struct ml_server *s)
{
	struct sockaddr_storage ss;
	int len;
	if (ml_net_parse_addr(s->o.listen, &ss, &len) != 0)
		return -1;
	s->tcp = evconnlistener_new_bind(s->base, on_accept, s,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
					     LEV_OPT_CLOSE_ON_EXEC,
					 1024, (struct sockaddr *)&ss, len);
	if (s->tcp == NULL)
		return ml_diag_set(ML_ERR_REFUSED,
				   "cannot listen on %s: %s (is another server "
				   "there? choose another with --listen)",
				   s->o.listen, strerror(errno));
	ml_net_watch_listener(s, s->tcp);
	s->rpc_port = bound_port(evconnlistener_get_fd(s->tcp));
	return 0;
}

static int listen_admin(struct ml_server *s)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(s->admin_path) >= sizeof(sun.sun_path))
		return ml_diag_set(ML_ERR_USAGE, "the admin socket path %s is too long",
				   s->admin_path);
	strcpy(sun.sun_path, s->admin_path);
	unlink(s->admin_path);	  /* a stale socket: the log's lock says nobody else serves */
	mode_t old = umask(0077); /* created 0600: the file mode is the admin's only guard */
	s->admin = evconnlistener_new_bind(s->base, on_accept, s,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64,
					   (struct sockaddr *)&sun, (int)sizeof(sun));
	umask(old);
	if (s->admin == NULL)
		return ml_diag_set(ML_ERR_REFUSED, "cannot create the admin socket %s: %s",
				   s->admin_path, strerror(errno));
	ml_net_watch_listener(s, s->admin);
	chmod(s->admin_path, 0600);
	return 0;
}

/* The token is the file's first line, without its trailing white space. */
static int read_token(struct ml_server *s)
{
	FILE *f = fopen(s->o.token_file, "r");
	if (f == NULL)
		return ml_diag_set(ML_ERR_USAGE, "cannot read the token file %s: %s",
				   s->o.token_file, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t got = getline(&line, &cap, f);
	fclose(f);
	size_t n = got > 0 ? (size_t)got : 0;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
			 line[n - 1] == '\t'))
		n--;
	int rc = 0;
	if (n == 0)
		rc = ml_diag_set(ML_ERR_USAGE,
				 "the first line of the token file %s is empty: put the token "
				 "on the first line",
				 s->o.token_file);
	else if (n < 8)
		rc = ml_diag_set(ML_ERR_USAGE,
				 "the token in %s is too short: use at least 8 characters",
				 s->o.token_file);
	else if (memchr(line, 0, n) != NULL)
		rc = ml_diag_set(ML_ERR_USAGE, "the token in %s holds a NUL byte: use text",
				 s->o.token_file);
	if (rc == 0) {
		s->token = ml_xstrndup(line, n);
		s->token_len = n;
	}
	free(line);
	return rc;
}

static int setup(struct ml_server *s)
{
	s->fd_limit = ml_raise_fd_limit();
	ml_log_on_head(s->log, on_head, s);
	struct ml_router_options ro = {.dir = s->dir,
				       .ack_timeout_ms = s->o.ack_timeout_ms,
				       .max_deliveries = s->o.max_deliveries};
	s->router = ml_router_new(s->log, &ro);
	if (s->o.token_file && read_token(s) != 0)
		return -1;
	s->wake = event_new(s->base, -1, 0, on_wake, s);
	s->pump = event_new(s->base, -1, 0, on_pump, s);
	s->stop_ev = event_new(s->base, -1, 0, on_stop, s);
	s->stop_grace = evtimer_new(s->base, on_stop_grace, s);
	s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
	struct timeval tv = {0, 100000};
	event_add(s->tick, &tv);
	s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
	s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
	event_add(s->sigterm, NULL);
	event_add(s->sigint, NULL);
	if (s->o.listen[0] && listen_tcp(s) != 0)
		return -1;
	if (s->admin_path && listen_admin(s) != 0)
		return -1;
	if (s->o.http[0] && ml_http_start(s) != 0)
		return -1;
	s->eval = ml_eval_new(s);
	return s->eval ? 0 : -1;
}

/*
 * The loop. An event made active from its own callback (the pump, when the
 * scripts or the router have more to do: ml_server_again) goes to the back of
 * the queue libevent is running, and libevent runs that queue until it is
 * empty before it looks at the sockets again: a long rebuild, which always
 * has more to do, held every client until it was done (a status asked for
 * during the rebuild of a projection over 60,000 slow events waited 0.6 s,
 * the whole rebuild). So the loop looks at the sockets again once callbacks
 * have run for MAX_DISPATCH_US: a client waits for a few steps of the
 * scripts at most (each a slice, about 2 ms).
 */
#define MAX_DISPATCH_US 1000

static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	if (cfg == NULL)
		return NULL;
	struct timeval max = {0, MAX_DISPATCH_US};
	event_config_set_max_dispatch_interval(cfg, &max, -1, 0);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

struct ml_server *ml_server_new(struct ml_log *log, const struct ml_server_options *o)
{
	static int threads_on;
	if (!threads_on++)
		evthread_use_pthreads(); /* event_active from the flusher thread */
	struct ml_server *s = ml_xcalloc(1, sizeof(*s));
	s->o = *o;
	s->log = log;
	s->dir = ml_xstrndup(o->dir, strlen(o->dir));
	s->o.dir = s->dir;
	if (!o->admin || o->admin[0]) {
		struct ml_buf p = {0};
		if (o->admin)
			ml_buf_addf(&p, "%s", o->admin);
		else
			ml_buf_addf(&p, "%s/moonlog.sock", s->dir);
		s->admin_path = p.data;
	}
	s->o.listen = o->listen ? o->listen : "";
	s->o.http = o->http ? o->http : "";
	s->started_ms = (uint64_t)ml_time_ms();
	char warning[8400]; /* an existing folder open to others: said, not changed */
	if (ml_data_dir_prepare(s->dir, warning, sizeof(warning)) == 0 && warning[0])
		ml_server_log_line(s, "%s", warning);
	s->base = new_base();
	if (s->base == NULL || setup(s) != 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", ml_diag_last());
		enum ml_err code = ml_diag_code();
		ml_server_free(s);
		ml_diag_set(code, "%s", why);
		return NULL;
	}
	return s;
}

int ml_server_run(struct ml_server *s)
{
	ml_net_plan_conns(s); /* now that the log and the scripts hold what they need */
	ml_server_log_line(s,
			   "serving %s: rpc %s, http %s, admin %s (fsync %s, at most %u "
			   "connections, descriptor limit %llu)",
			   s->dir, s->o.listen[0] ? s->o.listen : "off",
			   s->o.http[0] ? s->o.http : "off", s->admin_path ? s->admin_path : "off",
			   ml_fsync_name(ml_log_fsync(s->log)), s->max_conns,
			   (unsigned long long)s->fd_limit);
	ml_net_set_serving(s);
	int rc = event_base_dispatch(s->base);
	ml_net_set_serving(NULL);
	if (rc < 0)
		return ml_diag_set(ML_ERR_IO, "the event loop failed");
	/* Stopped: every queued append has been answered; send what is left. */
	ml_server_settle(s);
	for (struct ml_conn *c = s->conns; c; c = c->next)
		ml_conn_flush(c);
	return 0;
}

/*
 * The log outlives the server: its flusher must be done with s before s goes.
 * After a failed loop, appends may still be queued: kick the log and answer
 * them as they finish. Then no on_head call may still be running (one may
 * follow the last append acknowledged, such as a handler's checkpoint written
 * at close): ml_log_on_head waits for it.
 */
static void let_go_of_log(struct ml_server *s)
{
	if (s->inflight) { /* the stop's grace ran out: the writer completes them as it can */
		ml_log_stop_writer(s->log);
		take_answers(s);
		flush_answers(s);
	}
	while (s->inflight) {
		ml_log_kick(s->log);
		take_answers(s);
		if (s->inflight)
			usleep(1000);
	}
	ml_log_on_head(s->log, NULL, NULL);
}

void ml_server_free(struct ml_server *s)
{
	if (s == NULL)
		return;
	if (s->log) /* after this, the log calls nothing of s */
		let_go_of_log(s);
	ml_op_scavenge_stop(s); /* the log closes after the server */
	while (s->conns)
		ml_conn_close(s->conns);
	ml_eval_free(s->eval);
	ml_http_free(s);
	ml_net_limits_free(s);
	if (s->tcp)
		evconnlistener_free(s->tcp);
	if (s->admin) {
		evconnlistener_free(s->admin);
		unlink(s->admin_path);
	}
	ml_router_free(s->router);
	struct event *evs[] = {s->wake,	  s->pump,    s->tick,	    s->sigterm,
			       s->sigint, s->stop_ev, s->stop_grace};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	while (s->free_pending) {
		struct ml_pending *p = s->free_pending;
		s->free_pending = p->qnext;
		free(p);
	}
	if (s->base)
		event_base_free(s->base);
	ml_buf_free(&s->scratch);
	free(s->hooks);
	free(s->token);
	free(s->admin_path);
	free(s->dir);
	free(s);
}

int ml_server_rpc_port(struct ml_server *s)
{
	return s->rpc_port;
}

int ml_server_http_port(struct ml_server *s)
{
	return s->http_port;
}

void ml_server_on_turn(struct ml_server *s, void (*fn)(struct ml_server *s, void *arg), void *arg)
{
	s->hooks = ml_xrealloc(s->hooks, (s->nhooks + 1) * sizeof(*s->hooks));
	s->hooks[s->nhooks++] = (struct turn_hook){fn, arg};
}

void ml_server_again(struct ml_server *s)
{
	event_active(s->pump, EV_READ, 0);
}

struct event_base *ml_server_event_base(struct ml_server *s)
{
	return s->base;
}
