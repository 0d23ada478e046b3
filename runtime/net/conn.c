/*
 * conn.c - one msgpack-RPC connection (TCP or the admin socket): reading
 * frames, writing answers, and the per-connection limits.
 *
 * Input is read into a buffer and cut into complete msgpack objects; each is
 * dispatched at once, so a pipelined burst of requests is handled in one
 * turn. Answers and event notifications go to an output buffer that is
 * written once at the end of the turn. When more than max_outbuf bytes wait,
 * the connection's subscriptions pause (they fall back to reading the log
 * when it drains) and its requests are not read, which pushes back on the
 * client through TCP.
 *
 * A connection closed while appends are in flight stays allocated until the
 * log has answered them; the answers are then dropped.
 *
 * One timer per connection serves three deadlines: a wrong token is answered
 * ML_AUTH_DELAY_MS late with nothing else read meanwhile (the ML_AUTH_TRIES-th
 * closes the connection); part of a request followed by --frame-timeout of
 * silence closes it; and, with --rpc-idle-timeout, so does silence on a TCP
 * connection with no subscription and nothing in flight or waiting to be sent.
 * A subscriber is never closed for being quiet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/diag.h>

#include "net/net_internal.h"

#define READ_CHUNK (64u << 10)

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void parse(struct ml_conn *c);
static void arm(struct ml_conn *c);

void ml_conn_accept(struct ml_server *s, int fd, enum conn_kind kind)
{
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	struct ml_conn *c = ml_xcalloc(1, sizeof(*c));
	c->srv = s;
	c->fd = fd;
	c->kind = kind;
	c->authed = kind == CONN_ADMIN || s->token == NULL;
	c->env_ref = -2; /* LUA_NOREF */
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(s->base, fd, EV_WRITE, on_write, c);
	c->timer = evtimer_new(s->base, on_timer, c);
	event_add(c->rev, NULL);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	s->nadmin += kind == CONN_ADMIN;
	arm(c);
}

void ml_conn_mark(struct ml_conn *c)
{
	if (c->dirty || c->closed)
		return;
	c->dirty = 1;
	c->dirty_next = c->srv->dirty;
	c->srv->dirty = c;
}

static void free_conn(struct ml_conn *c)
{
	ml_buf_free(&c->in);
	ml_buf_free(&c->out);
	free(c->subs);
	free(c);
}

void ml_conn_close(struct ml_conn *c)
{
	struct ml_server *s = c->srv;
	if (c->closed)
		return;
	c->closed = 1;
	for (size_t i = 0; i < c->nsubs; i++)
		ml_sub_free(c->subs[i]);
	c->nsubs = 0;
	if (s->eval)
		ml_eval_conn_closed(s->eval, c);
	event_free(c->rev);
	event_free(c->wev);
	event_free(c->timer);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	s->nadmin -= c->kind == CONN_ADMIN;
	ml_net_conn_gone(s);
	if (c->dirty) { /* unlink from the dirty list */
		struct ml_conn **pp = &s->dirty;
		while (*pp != c)
			pp = &(*pp)->dirty_next;
		*pp = c->dirty_next;
	}
	if (c->inflight == 0)
		free_conn(c);
}

void ml_conn_release(struct ml_conn *c)
{
	if (--c->inflight == 0 && c->closed)
		free_conn(c);
}

static size_t pending_out(const struct ml_conn *c)
{
	return c->out.len - c->out_off;
}

/* Output drained below the limit: resume reading and the paused subscriptions. */
static void unblock(struct ml_conn *c)
{
	if (!c->blocked || pending_out(c) > c->srv->o.max_outbuf / 2)
		return;
	c->blocked = 0;
	if (!c->penalty)
		event_add(c->rev, NULL);
	for (size_t i = 0; i < c->nsubs; i++)
		ml_sub_resume(c->subs[i]);
	event_active(c->srv->pump, EV_READ, 0);
	c->inflight++;
	parse(c); /* requests that arrived while blocked */
	ml_conn_mark(c);
	ml_conn_release(c);
}

/* Writes what the socket takes now: 0, or -1 on an error that ends the connection. */
static int write_out(struct ml_conn *c)
{
	while (pending_out(c) > 0) {
		ssize_t w = write(c->fd, c->out.data + c->out_off, pending_out(c));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0)
			return -1;
		c->out_off += (size_t)w;
	}
	return 0;
}

void ml_conn_flush(struct ml_conn *c)
{
	if (c->closed)
		return;
	if (write_out(c) != 0) {
		ml_conn_close(c);
		return;
	}
	if (pending_out(c) == 0) {
		c->out.len = c->out_off = 0;
		if (c->out.cap > (4u << 20)) { /* give a burst's memory back */
			ml_buf_free(&c->out);
		}
	} else {
		if (c->out_off > (1u << 20) && c->out_off > c->out.len / 2) {
			memmove(c->out.data, c->out.data + c->out_off, pending_out(c));
			c->out.len -= c->out_off;
			c->out_off = 0;
		}
		event_add(c->wev, NULL);
	}
	if (!c->blocked && pending_out(c) > c->srv->o.max_outbuf) {
		c->blocked = 1; /* stop reading requests until the client reads its answers */
		event_del(c->rev);
	}
	unblock(c);
}

/*
 * For a long answer still being written (rpc.c): no compaction, no blocking
 * or unblocking, no close; a full socket or an error is left to
 * ml_conn_flush at the end of the turn.
 */
void ml_conn_send_early(struct ml_conn *c)
{
	if (!c->closed)
		(void)write_out(c); /* an error comes back to ml_conn_flush */
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct ml_conn *c = arg;
	struct ml_server *s = c->srv;
	c->inflight++; /* keep c while we look at it */
	ml_conn_flush(c);
	ml_conn_release(c);
	ml_server_settle_soon(s);
}

/* A fatal framing error: say why in an `error` notification, then close. */
static void fail(struct ml_conn *c, const char *why)
{
	ml_rpc_notify_error(c, why);
	ml_conn_flush(c);
	ml_conn_close(c);
}

/* Cuts complete messages off the input and dispatches them. */
static void parse(struct ml_conn *c)
{
	if (c->in.data == NULL)
		return;
	while (!c->closed && !c->blocked && !c->penalty) {
		const uint8_t *p = (const uint8_t *)c->in.data + c->in_off;
		size_t n = c->in.len - c->in_off, len;
		if (n == 0)
			break;
		/* an append that is all there needs no framing (see ml_rpc_append_whole) */
		if (c->walk.todo == 0 && (len = ml_rpc_append_whole(c, p, n)) > 0) {
			c->in_off += len;
			continue;
		}
		/* resumed: a large request arriving in pieces is walked once */
		int rc = ml_msgpack_frame_resume(p, n, &c->walk, &len);
		if (rc < 0)
			return fail(c,
				    "malformed msgpack: the connection is closed (send msgpack-RPC "
				    "requests [0, msgid, method, params])");
		if (rc > 0 || len > c->srv->o.max_request) {
			if (n > c->srv->o.max_request)
				return fail(c,
					    "request too large: raise --max-request or send less "
					    "per request");
			break;
		}
		c->walk = (struct ml_msgpack_walk){0, 0};
		c->in_off += len;
		ml_rpc_dispatch(c, p, len);
	}
	if (c->closed)
		return;
	if (c->in_off == c->in.len) {
		c->in.len = c->in_off = 0;
	} else if (c->in_off > 0) {
		memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_off = 0;
	}
}

/* ---- the timer ----------------------------------------------------------- */

static void arm_ms(struct ml_conn *c, uint32_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
	c->timer_on = 1;
}

/* After a read: the frame timeout while part of a request waits, else the idle one. */
static void arm(struct ml_conn *c)
{
	const struct ml_server_options *o = &c->srv->o;
	if (c->closed || c->penalty)
		return;
	if (c->in.len > c->in_off && o->frame_timeout_ms)
		arm_ms(c, o->frame_timeout_ms);
	else if (c->kind == CONN_TCP && o->rpc_idle_timeout_ms)
		arm_ms(c, o->rpc_idle_timeout_ms);
	else if (c->timer_on) /* a flag of ours: evtimer_pending would take the base's lock */
		evtimer_del(c->timer), c->timer_on = 0;
}

void ml_conn_auth_failed(struct ml_conn *c, uint64_t msgid)
{
	c->auth_failures++;
	c->penalty = 1;
	c->penalty_msgid = msgid;
	event_del(c->rev);
	arm_ms(c, ML_AUTH_DELAY_MS);
	ml_server_warn(c->srv, ML_WARN_AUTH, "a client sent a wrong token (%u on one connection)",
		       c->auth_failures);
}

/* The penalty is over: answer the wrong token, then go on, or close after the last try. */
static void end_penalty(struct ml_conn *c)
{
	c->penalty = 0;
	ml_rpc_auth_refused(c, c->penalty_msgid);
	if (c->auth_failures >= ML_AUTH_TRIES) {
		ml_conn_flush(c);
		ml_conn_close(c);
		return;
	}
	if (!c->blocked)
		event_add(c->rev, NULL);
	parse(c); /* requests that came after the wrong token */
	arm(c);
	ml_conn_mark(c);
}

/* Whether nothing is going on: no subscription, nothing in flight or still to send. */
static int idle(const struct ml_conn *c)
{
	return c->nsubs == 0 && c->inflight == 0 && pending_out(c) == 0 && !c->blocked &&
	       c->in.len == c->in_off;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ml_conn *c = arg;
	struct ml_server *s = c->srv;
	const struct ml_server_options *o = &s->o;
	int quiet = idle(c);
	c->timer_on = 0;
	c->inflight++; /* keep c while we look at it */
	if (c->penalty) {
		end_penalty(c);
	} else if (c->in.len > c->in_off && !c->blocked) {
		s->timed_out++;
		ml_server_warn(s, ML_WARN_TIMEOUT,
			       "closed an RPC connection that sent part of a request and "
			       "nothing more for %u ms (--frame-timeout)",
			       o->frame_timeout_ms);
		fail(c, "incomplete request: the rest did not come in time (--frame-timeout); "
			"the connection is closed");
	} else if (c->kind == CONN_TCP && o->rpc_idle_timeout_ms && quiet) {
		s->timed_out++;
		char why[160];
		snprintf(why, sizeof(why),
			 "closed after %u ms without a request (--rpc-idle-timeout); connect "
			 "again to go on",
			 o->rpc_idle_timeout_ms);
		fail(c, why);
	} else {
		arm(c); /* busy meanwhile: look again later */
	}
	ml_conn_release(c);
	ml_server_settle_soon(s);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ml_conn *c = arg;
	struct ml_server *s = c->srv;
	ml_buf_reserve(&c->in, READ_CHUNK);
	ssize_t r = read(fd, c->in.data + c->in.len, c->in.cap - c->in.len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		ml_conn_close(c); /* the client went away; in-flight appends still complete */
		ml_server_settle_soon(s);
		return;
	}
	c->in.len += (size_t)r;
	c->read_ns = ml_clock_ns(); /* one reading for the requests of this read */
	ml_conn_received(c);
}

void ml_conn_received(struct ml_conn *c)
{
	struct ml_server *s = c->srv;
	c->inflight++; /* a request may close c: keep it until we are done here */
	parse(c);
	arm(c);
	ml_conn_mark(c);
	ml_conn_release(c);
	ml_server_settle_soon(s);
}
