/*
 * nodes.c - who is there: the nodes that share the stream, by their heartbeats.
 *
 * Work that must run on one node at a time (a handler, a group's range of
 * events) needs to know when the node doing it is gone, so that another takes
 * it over. Every node publishes its id on the core NATS subject
 * "moonlog-nodes.STREAM" every JS_HEARTBEAT_MS and listens on it; a node not
 * heard from for JS_NODE_TIMEOUT_MS is gone, and one that stops says so
 * ("-" before its id). Heartbeats are not in the stream: they would fill it
 * for ever, and only their absence means anything. Core NATS carries them also
 * while JetStream elects a stream leader, so a failover does not make the
 * nodes look gone.
 *
 * This node cannot tell "gone" from "not heard yet" until it has been
 * connected for the timeout, after its start and after every reconnection;
 * until then, and while disconnected, the answer is ML_NODE_UNKNOWN. The answer
 * is a belief, not a fact (a node cut off from NATS looks gone and may come
 * back): those who take work over fence the old holder with an expected version
 * in the log (docs/scale-out.md).
 *
 * One thread (the heartbeat) publishes and reads the subject; the table is
 * read by whoever asks (the server's loop), under its own mutex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "jetstream.h"

#define JS_NODES_KEPT 256 /* nodes remembered; the oldest is forgotten (then: gone) */

struct js_node {
	char id[JS_NODE_LEN];
	uint64_t heard_ms; /* 0: said it left */
};

struct js_nodes {
	pthread_mutex_t mu;
	struct js_node node[JS_NODES_KEPT];
	int n;
	uint64_t listening_ms; /* since when heartbeats could have been heard; 0: not now */
};

static uint64_t now_ms(void)
{
	return ml_clock_ns() / 1000000;
}

static void heard(struct js_nodes *ns, const char *id, int left)
{
	pthread_mutex_lock(&ns->mu);
	int i = 0;
	while (i < ns->n && memcmp(ns->node[i].id, id, JS_NODE_LEN) != 0)
		i++;
	if (i == ns->n) {
		if (ns->n == JS_NODES_KEPT) { /* forget the one heard from least lately */
			i = 0;
			for (int j = 1; j < ns->n; j++)
				if (ns->node[j].heard_ms < ns->node[i].heard_ms)
					i = j;
		} else {
			ns->n++;
		}
		memcpy(ns->node[i].id, id, JS_NODE_LEN);
	}
	ns->node[i].heard_ms = left ? 0 : now_ms();
	pthread_mutex_unlock(&ns->mu);
}

enum ml_node_state js_node_state(struct js_writer *jw, const char *id, size_t len)
{
	if (len == JS_NODE_LEN && memcmp(id, jw->node, JS_NODE_LEN) == 0)
		return ML_NODE_ALIVE;
	struct js_nodes *ns = jw->nodes;
	if (ns == NULL)
		return ML_NODE_UNKNOWN;
	uint64_t now = now_ms();
	enum ml_node_state st = ML_NODE_UNKNOWN;
	pthread_mutex_lock(&ns->mu);
	int listening = ns->listening_ms && now - ns->listening_ms >= JS_NODE_TIMEOUT_MS;
	for (int i = 0; i < ns->n; i++) {
		if (len != JS_NODE_LEN || memcmp(ns->node[i].id, id, JS_NODE_LEN) != 0)
			continue;
		if (ns->node[i].heard_ms && now - ns->node[i].heard_ms < JS_NODE_TIMEOUT_MS)
			st = ML_NODE_ALIVE;
		else if (ns->node[i].heard_ms == 0 || listening)
			st = ML_NODE_GONE; /* it said it left, or it fell silent */
		break;
	}
	if (st == ML_NODE_UNKNOWN && listening)
		st = ML_NODE_GONE;
	pthread_mutex_unlock(&ns->mu);
	/* Disconnected, this node hears no one: it knows nothing of the others. */
	if (st == ML_NODE_GONE && natsConnection_Status(jw->nc) != NATS_CONN_STATUS_CONNECTED)
		st = ML_NODE_UNKNOWN;
	return st;
}

void js_nodes_reconnected(struct js_writer *jw)
{
	struct js_nodes *ns = jw->nodes;
	if (ns == NULL)
		return;
	pthread_mutex_lock(&ns->mu);
	ns->listening_ms = now_ms(); /* what was missed meanwhile is no sign of anything */
	pthread_mutex_unlock(&ns->mu);
}

static void say(struct js_writer *jw, const char *subject, int leaving)
{
	char body[JS_NODE_LEN + 1];
	int n = 0;
	if (leaving)
		body[n++] = '-';
	memcpy(body + n, jw->node, JS_NODE_LEN);
	natsConnection_Publish(jw->nc, subject, body, n + JS_NODE_LEN);
}

static void take(struct js_nodes *ns, natsMsg *m)
{
	const char *d = natsMsg_GetData(m);
	int len = natsMsg_GetDataLength(m);
	if (len == JS_NODE_LEN)
		heard(ns, d, 0);
	else if (len == JS_NODE_LEN + 1 && d[0] == '-')
		heard(ns, d + 1, 1);
	natsMsg_Destroy(m);
}

void *js_heartbeat_main(void *arg)
{
	prctl(PR_SET_NAME, "moonlog-js-beat");
	struct js_writer *jw = arg;
	struct js_nodes *ns = jw->nodes;
	char subject[96];
	snprintf(subject, sizeof(subject), "moonlog-nodes.%s", jw->stream);
	natsSubscription *sub = NULL;
	if (natsConnection_SubscribeSync(&sub, jw->nc, subject) != NATS_OK)
		sub = NULL; /* the others' heartbeats stay unknown; ours still go out */
	pthread_mutex_lock(&ns->mu);
	ns->listening_ms = sub ? now_ms() : 0;
	pthread_mutex_unlock(&ns->mu);
	uint64_t next = 0;
	for (;;) {
		pthread_mutex_lock(&jw->mu);
		int stop = jw->stop_heartbeat;
		pthread_mutex_unlock(&jw->mu);
		if (stop)
			break;
		uint64_t now = now_ms();
		if (now >= next) {
			say(jw, subject, 0);
			next = now + JS_HEARTBEAT_MS;
		}
		natsMsg *m = NULL;
		int64_t wait = (int64_t)(next - now);
		if (sub && natsSubscription_NextMsg(&m, sub, wait > 0 ? wait : 1) == NATS_OK)
			take(ns, m);
		else if (!sub)
			nats_Sleep(wait > 0 ? wait : 1);
	}
	say(jw, subject, 1); /* the others may take this node's work at once */
	natsConnection_FlushTimeout(jw->nc, 500);
	js_unsubscribe(sub);
	return NULL;
}

void js_nodes_init(struct js_writer *jw)
{
	struct js_nodes *ns = ml_xcalloc(1, sizeof(*ns));
	pthread_mutex_init(&ns->mu, NULL);
	jw->nodes = ns;
}

void js_nodes_free(struct js_writer *jw)
{
	struct js_nodes *ns = jw->nodes;
	if (ns == NULL)
		return;
	jw->nodes = NULL;
	pthread_mutex_destroy(&ns->mu);
	free(ns);
}
