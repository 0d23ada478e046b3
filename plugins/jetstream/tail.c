/*
 * tail.c - every node applies the whole stream, in order, to its own log.
 *
 * One thread reads the stream through an ordered consumer (nats.c makes it an
 * ephemeral push consumer, with heartbeats, and makes it again from the next
 * sequence on a gap or on missed heartbeats: after a leader fails over, say),
 * starting after where this node's log stands (ml_log_applied_seq), and hands
 * each entry of each message to ml_log_apply, kicking the log after each run
 * of messages so that they are written as one group; a node catching up reads
 * no faster than its disk writes (APPLY_MAX entries wait for the log at most,
 * so a stream of any length takes bounded memory). An entry this node
 * published completes its request with the apply's outcome. A failed write
 * here (ML_ERR_IO: a full disk) is no outcome: once the applies in flight have
 * ended, the tail asks the log where it stands, and reads the stream again
 * from there; the requests of those entries wait for it. While writes keep
 * failing it waits longer before each try (up to RETRY_MAX_MS), and says so
 * once, when they begin to fail and when one succeeds again. A broken log
 * (ml_log_broken: a sync failed after the entries were published) is final:
 * the node fails its clients' appends with the reason and publishes no more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "jetstream.h"

#define RUN_MAX 64 /* messages applied before a kick */
/* Entries handed to the log and not written yet, at most; then the tail waits until half as
 * many are (MOONLOG_JS_APPLY_MAX sets another bound, for tests). */
#define APPLY_MAX    (1 << 18)
#define HEARTBEAT_MS 1000 /* the consumer's idle heartbeat: a lost one is seen in 2 s */
#define RETRY_MIN_MS 250  /* the pause before applying again after a failed write ... */
#define RETRY_MAX_MS 4000 /* ... doubled while writes keep failing, up to this */

/*
 * Messages applied, destroyed a batch at a time: nats.c frees each message on
 * a thread of its own and wakes that thread for it when it sleeps, which at a
 * message a millisecond is a wake-up (dear on a virtual machine) for every
 * event. Up to SPENT_MAX messages or SPENT_BYTES are kept, and all go when the
 * wait for the next one times out (none came for a while), or before the
 * subscription goes.
 */
#define SPENT_MAX   32
#define SPENT_BYTES (1 << 20)

struct spent {
	natsMsg *m[SPENT_MAX];
	int n;
	size_t bytes;
};

static void spent_free(struct spent *sp)
{
	for (int i = 0; i < sp->n; i++)
		natsMsg_Destroy(sp->m[i]);
	sp->n = 0;
	sp->bytes = 0;
}

static void spent_add(struct spent *sp, natsMsg *m)
{
	sp->m[sp->n++] = m;
	sp->bytes += (size_t)natsMsg_GetDataLength(m);
	if (sp->n == SPENT_MAX || sp->bytes >= SPENT_BYTES)
		spent_free(sp);
}

/* One entry's apply in flight. */
struct apply {
	struct ml_append req;
	struct js_writer *jw;
	struct js_pending *mine; /* this node's request, if the entry is its own */
};

/* An apply ended: on the flusher, a kicking thread, or the tail when refused at once. */
static void applied(struct ml_append *req)
{
	struct apply *a = req->arg;
	struct js_writer *jw = a->jw;
	struct js_pending *mine = a->mine;
	/* This node failed to write the entry: apply it again later. Unless the log is
	 * broken (a sync failed after the entry, or one before it, was published, or an
	 * undo failed): then no apply can succeed until a restart, and the request fails
	 * with the reason. */
	char why[sizeof(jw->broken)];
	int broken = req->err == ML_ERR_IO && ml_log_broken(jw->log, why, sizeof(why));
	int failed = req->err == ML_ERR_IO && !broken;
	if (!failed && mine) {
		ml_log_writer_done(mine->req, req);
		free(mine);
	}
	uint64_t failed_for = 0; /* writes failed until this one, for so long (ns) */
	struct js_pending *unsent = NULL;
	pthread_mutex_lock(&jw->mu);
	int broke = broken && !jw->broken[0];
	if (broke) { /* once: no more submits, and what was not sent fails now */
		snprintf(jw->broken, sizeof(jw->broken), "%s", why);
		unsent = js_take_unsent(jw);
	}
	if (failed) {
		if (mine)
			js_waiting_put_back(&jw->waiting, mine);
		jw->rewind = 1;
		if (!jw->failing_since) {
			jw->failing_since = ml_clock_ns();
			snprintf(jw->fail_msg, sizeof(jw->fail_msg), "%s", req->errmsg);
		}
	} else if (jw->failing_since && req->err == ML_OK && !req->duplicate) { /* written */
		failed_for = ml_clock_ns() - jw->failing_since;
		jw->failing_since = 0;
		jw->retry_ms = 0;
	}
	jw->outstanding--;
	/* where a tail waiting for room goes on (with no waiter, a signal costs nothing) */
	if (jw->outstanding == jw->apply_max / 2)
		pthread_cond_signal(&jw->room_cv);
	pthread_cond_broadcast(&jw->cv);
	pthread_mutex_unlock(&jw->mu);
	free(a);
	if (broke) {
		js_fail_unsent(unsent, why);
		js_log(jw,
		       "this node stops applying the stream: %s. It refuses appends from now on "
		       "(those of its clients already in the stream fail with this reason; another "
		       "node answers their retry as a duplicate). Start it again on an empty data "
		       "folder: it catches up from the stream (docs/scale-out.md)",
		       why);
	}
	if (failed_for)
		js_log(jw,
		       "this node writes its log again, after %.1f s: the appends of its clients "
		       "that waited are answered",
		       (double)failed_for / 1e9);
}

static void apply_entry(struct js_writer *jw, uint64_t seq, const uint8_t *bytes, size_t len,
			int own, uint64_t token)
{
	struct apply *a = ml_xmalloc(sizeof(*a)); /* each field set below: no calloc */
	pthread_mutex_lock(&jw->mu);
	if (jw->outstanding >= jw->apply_max) { /* catching up faster than the disk takes it */
		pthread_mutex_unlock(&jw->mu);
		ml_log_apply_kick(jw->log); /* (its cycle may run here, and end applies) */
		pthread_mutex_lock(&jw->mu);
		/* on room_cv, signalled at half: jw->cv wakes at every apply */
		while (jw->outstanding > jw->apply_max / 2)
			pthread_cond_wait(&jw->room_cv, &jw->mu);
	}
	/* a copy of a message sent again finds no request: the first copy took it */
	struct js_pending *mine = own ? js_waiting_take(&jw->waiting, token) : NULL;
	jw->outstanding++;
	pthread_mutex_unlock(&jw->mu);
	a->jw = jw, a->mine = mine;
	a->req = (struct ml_append){.done = applied, .arg = a, .kick_later = 1};
	if (mine) /* the submitter asked for each event's position: the apply fills them */
		a->req.positions = mine->req->positions, a->req.versions = mine->req->versions;
	if (ml_log_apply(jw->log, &a->req, bytes, len, seq) != 0)
		applied(&a->req); /* refused, or a duplicate answered at once: no done call */
}

/* Applies the entries of one message after `*cursor` (the last journal entry applied). */
static void apply_message(struct js_writer *jw, natsMsg *m, uint64_t *cursor, struct js_zstd *z)
{
	jsMsgMetaData *meta = NULL;
	if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
		return; /* not a stream message (a status the library did not take) */
	uint64_t sseq = meta->Sequence.Stream;
	jsMsgMetaData_Destroy(meta);
	const void *p;
	size_t len;
	/* A compressed body that does not inflate opens as no message, below. */
	js_message_inflate(z, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &p, &len);
	struct js_message_reader r;
	if (js_message_open(&r, p, len, jw->node) == 0) {
		/* Not ours: every node hands it on alike, and the log refuses it (corrupt). */
		if (sseq * JS_ENTRY_SPAN + 1 > *cursor) {
			apply_entry(jw, sseq * JS_ENTRY_SPAN + 1, p, len, 0, 0);
			*cursor = sseq * JS_ENTRY_SPAN + 1;
		}
	}
	uint64_t token;
	const uint8_t *entry;
	size_t elen;
	for (uint64_t i = 1; i < JS_ENTRY_SPAN && js_message_next(&r, &token, &entry, &elen); i++) {
		uint64_t seq = sseq * JS_ENTRY_SPAN + i;
		if (seq > *cursor) {
			apply_entry(jw, seq, entry, elen, r.own, token);
			*cursor = seq;
		}
	}
	pthread_mutex_lock(&jw->mu);
	if (sseq > jw->seen_seq)
		jw->seen_seq = sseq;
	pthread_cond_broadcast(&jw->cv);
	pthread_mutex_unlock(&jw->mu);
}

/* An ordered consumer from the message that holds the entry after `cursor`; NULL on failure. */
static natsSubscription *subscribe(struct js_writer *jw, uint64_t cursor)
{
	jsOptions jo;
	jsSubOptions so;
	jsOptions_Init(&jo);
	jsSubOptions_Init(&so);
	so.Stream = jw->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = cursor / JS_ENTRY_SPAN ? cursor / JS_ENTRY_SPAN : 1;
	so.Config.Heartbeat = (int64_t)HEARTBEAT_MS * 1000000;
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_SubscribeSync(&sub, jw->js, jw->subject, &jo, &so, &jerr);
	if (s != NATS_OK) {
		js_log(jw, "cannot read the stream %s yet (%s): trying again", jw->stream,
		       natsStatus_GetText(s));
		return NULL;
	}
	natsSubscription_SetPendingLimits(sub, -1, 256 << 20);
	return sub;
}

void js_unsubscribe(natsSubscription *sub)
{
	if (sub == NULL)
		return;
	if (natsSubscription_Drain(sub) == NATS_OK) {
		natsMsg *m;
		natsStatus s;
		while ((s = natsSubscription_NextMsg(&m, sub, 100)) == NATS_OK)
			natsMsg_Destroy(m);
		natsSubscription_WaitForDrainCompletion(sub, 2000);
	}
	natsSubscription_Destroy(sub);
}

/*
 * After a failed write (jw->mu held): waits for the applies in flight, then a
 * pause (longer each time while writes keep failing, and cut short by a stop),
 * then where the log stands.
 */
static uint64_t rewind_point(struct js_writer *jw)
{
	while (jw->outstanding > 0)
		pthread_cond_wait(&jw->cv, &jw->mu);
	int first = jw->retry_ms == 0;
	jw->retry_ms = first ? RETRY_MIN_MS : jw->retry_ms * 2;
	if (jw->retry_ms > RETRY_MAX_MS)
		jw->retry_ms = RETRY_MAX_MS;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += jw->retry_ms / 1000;
	until.tv_nsec += (long)(jw->retry_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000)
		until.tv_sec++, until.tv_nsec -= 1000000000;
	while (!jw->stop_tail && pthread_cond_timedwait(&jw->cv, &jw->mu, &until) == 0)
		;
	jw->rewind = 0;
	char why[sizeof(jw->fail_msg)];
	snprintf(why, sizeof(why), "%s", jw->fail_msg);
	pthread_mutex_unlock(&jw->mu);
	uint64_t at = ml_log_apply_resume(jw->log), msg = at / JS_ENTRY_SPAN;
	if (first)
		js_log(jw,
		       "this node cannot write its log (%s): the appends of its clients wait, "
		       "reads go on, and it applies the stream again from message %llu every "
		       "few seconds until a write succeeds (free some disk space)",
		       why, (unsigned long long)(msg ? msg : 1));
	pthread_mutex_lock(&jw->mu);
	return at;
}

static int rewinding(struct js_writer *jw)
{
	pthread_mutex_lock(&jw->mu);
	int r = jw->rewind;
	pthread_mutex_unlock(&jw->mu);
	return r;
}

void *js_tail_main(void *arg)
{
	prctl(PR_SET_NAME, "moonlog-js-tail");
	struct js_writer *jw = arg;
	uint64_t cursor = ml_log_applied_seq(jw->log);
	natsSubscription *sub = NULL;
	natsMsg *m = NULL; /* the first of the next run, when the last one stopped at RUN_MAX */
	struct js_zstd z = {0};
	struct spent sp = {0};
	const char *max = getenv("MOONLOG_JS_APPLY_MAX"); /* a test makes the waits happen */
	jw->apply_max = max && atoi(max) >= 2 ? atoi(max) : APPLY_MAX;
	for (;;) {
		pthread_mutex_lock(&jw->mu);
		if (jw->stop_tail)
			break;
		if (jw->rewind) {
			pthread_mutex_unlock(&jw->mu);
			natsMsg_Destroy(m);
			m = NULL;
			spent_free(&sp);
			js_unsubscribe(sub);
			sub = NULL;
			pthread_mutex_lock(&jw->mu);
			cursor = rewind_point(jw);
		}
		pthread_mutex_unlock(&jw->mu);
		if (sub == NULL && (sub = subscribe(jw, cursor)) == NULL) {
			nats_Sleep(500);
			continue;
		}
		if (m == NULL) {
			natsStatus s = natsSubscription_NextMsg(&m, sub, 200);
			if (s != NATS_OK) {
				m = NULL;
				spent_free(&sp);
				if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) {
					js_unsubscribe(sub);
					sub = NULL;
					nats_Sleep(200);
				}
				continue; /* a timeout, missed heartbeats (the consumer is made
					     again) */
			}
		}
		for (int run = 0; m != NULL && run < RUN_MAX; run++) {
			if (!rewinding(jw))
				apply_message(jw, m, &cursor, &z);
			spent_add(&sp, m);
			if (natsSubscription_NextMsg(&m, sub, 0) != NATS_OK)
				m = NULL;
		}
		ml_log_apply_kick(jw->log); /* the run is written as one group */
	}
	while (jw->outstanding > 0)
		pthread_cond_wait(&jw->cv, &jw->mu);
	pthread_mutex_unlock(&jw->mu);
	natsMsg_Destroy(m);
	spent_free(&sp);
	js_unsubscribe(sub);
	js_zstd_free(&z);
	return NULL;
}
