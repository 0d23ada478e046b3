/*
 * writer.c - the JetStream writer behind the log's seam, and its publisher.
 *
 * submit encodes the batch as a journal entry and queues it; kick hands what
 * queued to the publisher thread, which sends everything it finds as one
 * JetStream message and waits for that message's acknowledgement before it
 * sends the next: whatever gathers meanwhile goes out together (group commit),
 * and a node's messages reach the stream in the order of their tokens. Neither
 * submit nor kick ever waits on the network: the event loop that calls them
 * goes on.
 *
 * A publish that fails (no leader while JetStream elects one, a connection
 * lost) is sent again, with the same Nats-Msg-Id, until it is acknowledged:
 * JetStream drops the copy if the first one was stored after all, and if its
 * duplicate window has passed, the tail's apply finds the copy's entries a
 * duplicate of what is stored, on every node alike. A request completes only
 * when its entry is applied here (tail.c), never on the publish's ack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "jetstream.h"

void js_log(struct js_writer *jw, const char *fmt, ...)
{
	if (jw->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	ml_vline("moonlog serve: jetstream", fmt, ap);
	va_end(ap);
}

/* ---- the seam: submit, kick, stop, free ------------------------------------ */

static int js_submit(struct ml_log_writer *w, struct ml_append *req, char (*ids)[37])
{
	struct js_writer *jw = (struct js_writer *)w;
	struct js_pending *p = ml_xcalloc(1, sizeof(*p));
	ml_log_entry_encode(req, ids, ml_time_ms(), &p->bytes);
	if ((int64_t)(p->bytes.len + JS_MESSAGE_HEAD_MAX + JS_MESSAGE_ENTRY_HEAD_MAX) >
	    jw->max_payload) {
		size_t len = p->bytes.len;
		ml_buf_free(&p->bytes);
		free(p);
		return ml_append_refuse(req, ML_ERR_REFUSED,
					"the batch takes %zu bytes in the journal, more than one "
					"NATS message may hold (max_payload %lld): send it in "
					"smaller batches, or raise max_payload on the NATS servers",
					len, (long long)jw->max_payload);
	}
	p->req = req;
	pthread_mutex_lock(&jw->mu);
	if (jw->stopping) {
		pthread_mutex_unlock(&jw->mu);
		ml_buf_free(&p->bytes);
		free(p);
		return ml_append_refuse(req, ML_ERR_IO,
					"moonlog is stopping: append on another node");
	}
	if (jw->broken[0]) { /* sent now, it would be stored elsewhere and fail here */
		pthread_mutex_unlock(&jw->mu);
		ml_buf_free(&p->bytes);
		free(p);
		return ml_append_refuse(req, ML_ERR_IO, "%s", jw->broken);
	}
	p->token = ++jw->next_token;
	*jw->kept_end = p;
	jw->kept_end = &p->next;
	if (!req->kick_later) { /* the kick's work, at once: keeps the tokens in order */
		*jw->ready_end = jw->kept;
		jw->ready_end = jw->kept_end;
		jw->kept = NULL, jw->kept_end = &jw->kept;
		pthread_cond_signal(&jw->ready_cv);
	}
	pthread_mutex_unlock(&jw->mu);
	return 0;
}

static void js_kick(struct ml_log_writer *w)
{
	struct js_writer *jw = (struct js_writer *)w;
	pthread_mutex_lock(&jw->mu);
	if (jw->kept) {
		*jw->ready_end = jw->kept;
		jw->ready_end = jw->kept_end;
		jw->kept = NULL, jw->kept_end = &jw->kept;
		pthread_cond_signal(&jw->ready_cv);
	}
	pthread_mutex_unlock(&jw->mu);
}

/* Completes a batch that will not be applied here with ML_ERR_IO and why (then more). */
static void fail_pending(struct js_pending *p, const char *why, const char *more)
{
	struct ml_append *req = p->req;
	ml_buf_free(&p->bytes);
	free(p);
	req->err = ML_ERR_IO;
	snprintf(req->errmsg, sizeof(req->errmsg), "%s%s", why, more);
	ml_log_writer_done(req, req);
}

/* moonlog stops and JetStream is away. */
static void fail_unknown(struct js_pending *p)
{
	fail_pending(p,
		     "moonlog stopped before this append came back from JetStream; it may still be "
		     "stored: read the stream, or append again with the same ids (a duplicate is "
		     "answered as such)",
		     "");
}

struct js_pending *js_take_unsent(struct js_writer *jw)
{
	*jw->ready_end = jw->kept; /* the kicked ones, then the rest, in token order */
	struct js_pending *all = jw->ready;
	jw->ready = NULL, jw->ready_end = &jw->ready;
	jw->kept = NULL, jw->kept_end = &jw->kept;
	return all;
}

void js_fail_unsent(struct js_pending *p, const char *why)
{
	for (struct js_pending *next; p; p = next) {
		next = p->next;
		fail_pending(p, why, "; this append was not stored");
	}
}

/* Waits (jw->mu held) until cond holds or the deadline passes; 0 if it holds. */
#define WAIT_UNTIL(jw, cond, deadline)                                                             \
	({                                                                                         \
		int _rc = 0;                                                                       \
		while (!(cond) && _rc == 0)                                                        \
			_rc = pthread_cond_timedwait(&(jw)->cv, &(jw)->mu, (deadline));            \
		(cond) ? 0 : -1;                                                                   \
	})

/*
 * Published entries are applied (and their requests completed) while JetStream
 * answers, for JS_STOP_GRACE_MS at most; then the rest fail with an unknown
 * outcome, and both threads stop. The log's flusher still runs.
 */
static void js_stop(struct ml_log_writer *w)
{
	struct js_writer *jw = (struct js_writer *)w;
	if (!jw->threads)
		return;
	js_kick(w);
	pthread_mutex_lock(&jw->mu);
	jw->stop_heartbeat = 1; /* first: the others may take this node's work at once */
	pthread_mutex_unlock(&jw->mu);
	pthread_join(jw->heartbeat, NULL);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += JS_STOP_GRACE_MS / 1000;
	pthread_mutex_lock(&jw->mu);
	jw->stopping = 1;
	WAIT_UNTIL(jw, jw->ready == NULL && !jw->publishing && jw->waiting.head == NULL, &deadline);
	jw->stop_publish = 1;
	pthread_cond_signal(&jw->ready_cv);
	pthread_mutex_unlock(&jw->mu);
	pthread_join(jw->publisher, NULL);

	pthread_mutex_lock(&jw->mu);
	jw->stop_tail = 1;
	pthread_cond_broadcast(&jw->cv);
	pthread_mutex_unlock(&jw->mu);
	pthread_join(jw->tail, NULL); /* it waits for its applies in flight */
	jw->threads = 0;

	struct js_pending *p = js_waiting_take_all(&jw->waiting);
	for (struct js_pending *next; p; p = next) {
		next = p->next;
		fail_unknown(p);
	}
	/* nats.c 3.4.1 may crash when a subscription goes while messages arrive (its issue
	 * #637): the tail drained its own; the connection closes before anything is freed. */
	__atomic_store_n(&jw->closing, 1, __ATOMIC_RELEASE);
	natsConnection_Close(jw->nc);
}

static void js_free(struct ml_log_writer *w)
{
	js_discard((struct js_writer *)w);
}

static const char *js_node(struct ml_log_writer *w)
{
	return ((struct js_writer *)w)->node;
}

static enum ml_node_state js_writer_node_state(struct ml_log_writer *w, const char *id, size_t len)
{
	return js_node_state((struct js_writer *)w, id, len);
}

const struct ml_log_writer_ops js_writer_ops = {
    .name = "jetstream",
    .submit = js_submit,
    .kick = js_kick,
    .stop = js_stop,
    .free = js_free,
    .node = js_node,
    .node_state = js_writer_node_state,
};

/* ---- the publisher ---------------------------------------------------------- */

/*
 * Takes from the ready list what fits in one message (jw->mu held), moves it to
 * the waiting queue (its apply may come before the ack does) and builds the body
 * (message.h). The ready list holds the tokens in order, one after the other:
 * a body names only its first.
 */
static void take_message(struct js_writer *jw, struct ml_buf *body)
{
	uint64_t next = jw->ready->token;
	js_message_begin(body, jw->node, next);
	for (uint64_t n = 0; jw->ready && n < JS_ENTRY_SPAN - 1; n++, next++) {
		struct js_pending *p = jw->ready;
		if (p->token != next)
			break;
		if (n > 0 && (int64_t)(body->len + JS_MESSAGE_ENTRY_HEAD_MAX + p->bytes.len) >
				 jw->max_payload)
			break;
		jw->ready = p->next;
		js_message_add(body, p->bytes.data, p->bytes.len);
		ml_buf_free(&p->bytes);
		js_waiting_push(&jw->waiting, p);
	}
	if (jw->ready == NULL)
		jw->ready_end = &jw->ready;
}

/* Sends one message until JetStream acknowledges it; 0, or -1 if told to give up. */
static int publish(struct js_writer *jw, const void *msg, size_t len, uint64_t msgno)
{
	char msgid[JS_NODE_LEN + 24];
	snprintf(msgid, sizeof(msgid), "%s-%llu", jw->node, (unsigned long long)msgno);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msgid;
	po.MaxWait = JS_PUBLISH_WAIT;
	uint64_t failing_since = 0;
	for (;;) {
		jsPubAck *pa = NULL;
		jsErrCode jerr = 0;
		natsStatus s = js_Publish(&pa, jw->js, jw->subject, msg, (int)len, &po, &jerr);
		if (s == NATS_OK) {
			jsPubAck_Destroy(pa);
			if (failing_since)
				js_log(jw, "JetStream acknowledges again, after %.1f s",
				       (double)(ml_clock_ns() - failing_since) / 1e9);
			return 0;
		}
		if (!failing_since) {
			failing_since = ml_clock_ns();
			js_log(jw,
			       "JetStream did not acknowledge a publish (%s%s): appends wait, "
			       "and it is sent again until it is",
			       natsStatus_GetText(s), jerr ? ", a JetStream error" : "");
		}
		pthread_mutex_lock(&jw->mu);
		int give_up = jw->stop_publish;
		pthread_mutex_unlock(&jw->mu);
		if (give_up)
			return -1;
		nats_Sleep(100);
	}
}

void *js_publisher_main(void *arg)
{
	prctl(PR_SET_NAME, "moonlog-js-pub");
	struct js_writer *jw = arg;
	struct ml_buf body = {0};
	struct js_zstd z = {0};
	uint64_t msgno = 0;
	pthread_mutex_lock(&jw->mu);
	for (;;) {
		/* a condition of its own: the tail's news (an apply ended, each entry) would
		 * wake it for nothing, and a wake-up is dear (docs/scale-out.md) */
		while (jw->ready == NULL && !jw->stop_publish)
			pthread_cond_wait(&jw->ready_cv, &jw->mu);
		if (jw->ready == NULL || jw->stop_publish)
			break;
		take_message(jw, &body);
		jw->publishing = 1;
		pthread_mutex_unlock(&jw->mu);
		const void *msg;
		size_t len;
		js_message_deflate(&z, &body, &msg, &len);
		int rc = publish(jw, msg, len, ++msgno);
		pthread_mutex_lock(&jw->mu);
		jw->publishing = 0;
		pthread_cond_broadcast(&jw->cv);
		if (rc != 0)
			break;
	}
	/* Told to stop: what was never sent fails with it (js_stop fails the waiting ones). */
	struct js_pending *p = jw->ready;
	jw->ready = NULL, jw->ready_end = &jw->ready;
	pthread_mutex_unlock(&jw->mu);
	for (struct js_pending *next; p; p = next) {
		next = p->next;
		fail_unknown(p);
	}
	ml_buf_free(&body);
	js_zstd_free(&z);
	return NULL;
}
