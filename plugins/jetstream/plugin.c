/*
 * plugin.c - the entry point of moonlog_jetstream.so (replicate.h): connects to
 * the NATS servers, makes or checks the stream, puts the JetStream writer
 * behind the log's seam, starts its publisher and its tail, and returns once
 * this node has applied the stream as far as it reached at start, so that a
 * node started later (or on an empty folder) serves only once it caught up.
 *
 * Everything that talks to NATS runs on nats.c's threads and on the plugin's
 * three (writer.c's publisher, tail.c's and nodes.c's heartbeat): never on the server's event loop.
 *
 * ml_replicate_drop deletes a journal: `moonlog bench cluster` makes one for
 * its run and removes it after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jetstream.h"

static void disconnected(natsConnection *nc, void *arg)
{
	struct js_writer *jw = arg;
	if (!__atomic_load_n(&jw->closing, __ATOMIC_ACQUIRE))
		js_log(jw, "lost the connection to NATS: reconnecting (appends wait)");
}

static void reconnected(natsConnection *nc, void *arg)
{
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	js_nodes_reconnected(arg);
	js_log(arg, "connected to NATS again, at %s", url);
}

static int valid_stream_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static int connect_nats(struct js_writer *jw, const char *urls)
{
	/* nats.c 3.4.1 takes one URL per entry (SetURL takes no list) */
	char *copy = ml_xstrndup(urls, strlen(urls)), *save = NULL;
	const char *list[16];
	int n = 0;
	for (char *u = strtok_r(copy, ", ", &save); u && n < 16; u = strtok_r(NULL, ", ", &save))
		list[n++] = u;
	natsOptions *no = NULL;
	natsStatus s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = n ? natsOptions_SetServers(no, list, n) : NATS_INVALID_ARG;
	free(copy);
	if (s != NATS_OK) {
		natsOptions_Destroy(no);
		return ml_diag_set(ML_ERR_USAGE,
				   "--replicate '%s' is not a list of NATS URLs (%s): give "
				   "nats://HOST:PORT[,nats://HOST:PORT...]",
				   urls, natsStatus_GetText(s));
	}
	natsOptions_SetName(no, "moonlog");
	natsOptions_SetNoRandomize(no, false);
	natsOptions_SetTimeout(no, 2000);
	natsOptions_SetMaxReconnect(no, -1); /* mid-run, wait for NATS for ever: appends wait */
	natsOptions_SetReconnectWait(no, 250);
	natsOptions_SetDisconnectedCB(no, disconnected, jw);
	natsOptions_SetReconnectedCB(no, reconnected, jw);
	s = natsConnection_Connect(&jw->nc, no);
	natsOptions_Destroy(no);
	if (s != NATS_OK)
		return ml_diag_set(
		    ML_ERR_IO,
		    "cannot reach NATS at %s (%s): start the NATS servers "
		    "(tools/nats-cluster.sh up tries a local cluster) or fix --replicate",
		    urls, natsStatus_GetText(s));
	if ((s = natsConnection_JetStream(&jw->js, jw->nc, NULL)) != NATS_OK)
		return ml_diag_set(ML_ERR_IO, "NATS at %s gave no JetStream context (%s)", urls,
				   natsStatus_GetText(s));
	jw->max_payload = natsConnection_GetMaxPayload(jw->nc);
	return 0;
}

/* Waits until the tail has handled the stream up to `last`, saying how far it is. */
static void catch_up(struct js_writer *jw, uint64_t last)
{
	uint64_t t0 = ml_clock_ns();
	int said = 0;
	pthread_mutex_lock(&jw->mu);
	while (jw->seen_seq < last || jw->outstanding > 0) { /* handed to the log, and written */
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 2;
		if (pthread_cond_timedwait(&jw->cv, &jw->mu, &deadline) != 0) {
			js_log(jw, "catching up with the stream %s: at message %llu of %llu",
			       jw->stream, (unsigned long long)jw->seen_seq,
			       (unsigned long long)last);
			said = 1;
		}
	}
	pthread_mutex_unlock(&jw->mu);
	if (said || last > 0)
		js_log(jw, "caught up with the stream %s (%llu messages) in %.1f s", jw->stream,
		       (unsigned long long)last, (double)(ml_clock_ns() - t0) / 1e9);
}

/*
 * Frees what start made. nats.c runs the connection's callbacks (disconnected)
 * on a thread of its own, after the close: jw stays until that thread is done.
 */
void js_discard(struct js_writer *jw)
{
	__atomic_store_n(&jw->closing, 1, __ATOMIC_RELEASE);
	if (jw->nc)
		natsConnection_Close(jw->nc);
	jsCtx_Destroy(jw->js);
	natsConnection_Destroy(jw->nc);
	nats_CloseAndWait(2000); /* the library's threads, callbacks included, have ended */
	js_nodes_free(jw);
	pthread_mutex_destroy(&jw->mu);
	pthread_cond_destroy(&jw->cv);
	pthread_cond_destroy(&jw->ready_cv);
	pthread_cond_destroy(&jw->room_cv);
	free(jw);
}

ML_API int ml_replicate_start(struct ml_log *log, const struct ml_replicate_options *o)
{
	const char *stream = o->stream ? o->stream : "MOONLOG";
	int replicas = o->replicas ? o->replicas : 3;
	if (!valid_stream_name(stream))
		return ml_diag_set(
		    ML_ERR_USAGE,
		    "--replicate-stream '%s' is no JetStream stream name: use 1 to 32 "
		    "letters, digits, '-' or '_'",
		    stream);
	if (replicas < 1 || replicas > 5)
		return ml_diag_set(ML_ERR_USAGE, "--replicate-replicas takes 1 to 5, not %d",
				   replicas);
	if (ml_log_head(log) > 0 && ml_log_applied_seq(log) == 0)
		return ml_diag_set(ML_ERR_REFUSED,
				   "this data folder holds %llu events appended without "
				   "--replicate, which the other nodes do not have: start a "
				   "replicated node on an empty data folder",
				   (unsigned long long)ml_log_head(log));

	struct js_writer *jw = ml_xcalloc(1, sizeof(*jw));
	jw->w.ops = &js_writer_ops;
	jw->log = log;
	jw->quiet = o->quiet;
	snprintf(jw->stream, sizeof(jw->stream), "%s", stream);
	snprintf(jw->subject, sizeof(jw->subject), "moonlog.%s", stream);
	jw->kept_end = &jw->kept, jw->ready_end = &jw->ready;
	js_waiting_init(&jw->waiting);
	pthread_mutex_init(&jw->mu, NULL);
	pthread_cond_init(&jw->cv, NULL);
	pthread_cond_init(&jw->ready_cv, NULL);
	pthread_cond_init(&jw->room_cv, NULL);
	char id[37];
	ml_uuid7(id);
	memcpy(jw->node, id, JS_NODE_LEN);
	js_nodes_init(jw);

	uint64_t last = 0;
	if (connect_nats(jw, o->urls) != 0 || js_stream_ensure(jw, replicas, &last) != 0) {
		js_discard(jw);
		return -1;
	}
	uint64_t at = ml_log_applied_seq(log) / JS_ENTRY_SPAN;
	if (at > last) {
		js_discard(jw);
		return ml_diag_set(ML_ERR_REFUSED,
				   "this data folder has applied message %llu of the stream %s, "
				   "which holds only %llu: the folder belongs to another stream or "
				   "cluster; start on an empty data folder",
				   (unsigned long long)at, stream, (unsigned long long)last);
	}
	if (ml_log_set_writer(log, &jw->w) != 0) {
		js_discard(jw);
		return -1;
	}
	pthread_create(&jw->publisher, NULL, js_publisher_main, jw);
	pthread_create(&jw->tail, NULL, js_tail_main, jw);
	pthread_create(&jw->heartbeat, NULL, js_heartbeat_main, jw);
	jw->threads = 1;
	js_log(jw, "replicating through the stream %s (subject %s) at %s, from message %llu",
	       stream, jw->subject, o->urls, (unsigned long long)(at ? at : 1));
	catch_up(jw, last);
	return 0;
}

ML_API int ml_replicate_drop(const struct ml_replicate_options *o)
{
	if (o->stream == NULL || !valid_stream_name(o->stream))
		return ml_diag_set(ML_ERR_USAGE, "no JetStream stream named to delete");
	struct js_writer *jw = ml_xcalloc(1, sizeof(*jw));
	jw->quiet = 1;
	pthread_mutex_init(&jw->mu, NULL);
	pthread_cond_init(&jw->cv, NULL);
	pthread_cond_init(&jw->ready_cv, NULL);
	pthread_cond_init(&jw->room_cv, NULL);
	int rc = connect_nats(jw, o->urls);
	if (rc == 0) {
		jsErrCode jerr = 0;
		natsStatus s = js_DeleteStream(jw->js, o->stream, NULL, &jerr);
		if (s != NATS_OK)
			rc = ml_diag_set(ML_ERR_IO,
					 "JetStream did not delete the stream %s (%s, error %d): "
					 "delete it with the nats tool",
					 o->stream, natsStatus_GetText(s), (int)jerr);
	}
	js_discard(jw);
	return rc;
}
