/*
 * jetstream.h - the parts of the JetStream plugin, shared by its files:
 *
 *   plugin.c   the entry point: connect, check the stream, set the writer, catch up
 *   stream.c   the JetStream stream moonlog keeps its journal in: made, or checked
 *   writer.c   the writer behind the log's seam: submit, kick, stop, free, and the
 *              publisher thread that sends what gathered as one message
 *   tail.c     the tail thread: every entry of the stream, in order, to ml_log_apply;
 *              the node's own requests completed by their apply
 *   nodes.c    the heartbeat thread: who is there (ml_log_node_state), by the nodes'
 *              heartbeats on core NATS
 *   waiting.c  the node's published batches waiting for their apply, in token order
 *   message.c  the body of one message: the entries it carries, written and read
 *
 * One JetStream message carries the entries (batches) that gathered on one node
 * until a kick, or while the previous message waited for its acknowledgement
 * (group commit). Entry i (from 1) of the message with stream sequence S is the
 * journal entry numbered S * JS_ENTRY_SPAN + i for ml_log_apply, so a node that
 * restarts finds, from ml_log_applied_seq, both the message and the entry in it
 * to resume after. message.h gives a message's body.
 */
#ifndef MOONLOG_PLUGIN_JETSTREAM_H
#define MOONLOG_PLUGIN_JETSTREAM_H

#include <pthread.h>
#include <stdint.h>

#include <nats/nats.h>

#include <moonlog/log_writer.h>
#include <moonlog/replicate.h>
#include <moonlog/util.h>

#include "message.h"
#include "waiting.h"

#define JS_ENTRY_SPAN	   ((uint64_t)1 << 20) /* entries one message may carry, and then some */
#define JS_PUBLISH_WAIT	   2000	 /* ms a publish waits for its ack before it is sent again */
#define JS_STOP_GRACE_MS   15000 /* at stop: how long published entries may take to be applied */
#define JS_HEARTBEAT_MS	   500	 /* a node says it is there this often */
#define JS_NODE_TIMEOUT_MS 3000	 /* and is gone when not heard from for this long */

struct js_writer {
	struct ml_log_writer w; /* first: the log holds &w */
	struct ml_log *log;
	char stream[64], subject[80];
	int quiet;
	char node[JS_NODE_LEN + 1];

	natsConnection *nc;
	jsCtx *js;
	int64_t max_payload;

	pthread_mutex_t mu;
	pthread_cond_t cv;	 /* applies ended, the tail moved on, a publish ended, a stop */
	pthread_cond_t ready_cv; /* the publisher's own: work is ready, or it stops */
	pthread_cond_t room_cv;	 /* the tail's own: applies in flight fell to half (tail.c) */
	int apply_max;		 /* applies in flight before the tail waits for room */
	struct js_pending *kept, **kept_end;   /* submitted with kick_later, not kicked yet */
	struct js_pending *ready, **ready_end; /* kicked: for the publisher */
	struct js_waiting waiting;	       /* published or being published: for their apply */
	uint64_t next_token;
	int publishing;		/* the publisher holds a message it has not had acknowledged */
	int stopping;		/* ops->stop began: no new submits */
	int stop_publish;	/* the publisher gives up on a message it cannot send */
	int stop_tail;		/* the tail leaves */
	uint64_t seen_seq;	/* the last stream sequence the tail handled */
	int outstanding;	/* applies in flight */
	int rewind;		/* a write failed: apply again from where the log stands */
	uint64_t failing_since; /* writes here fail since (ns; 0: they do not) */
	char fail_msg[256];	/* why the first of them failed */
	int retry_ms;		/* the pause before applying again, longer while writes fail */
	char broken[256];	/* the log is broken (ml_log_broken): why; no more submits */
	int stop_heartbeat;	/* the heartbeat leaves (saying so) */
	pthread_t publisher, tail, heartbeat;
	int threads;		/* all three started */
	int closing;		/* the connection is being closed: no word of it lost (atomic) */
	struct js_nodes *nodes; /* nodes.c */
};

/* stream.c: makes the stream, or checks that the one there fits (-1 + diag if not); its last
 * sequence in *last. */
int js_stream_ensure(struct js_writer *jw, int replicas, uint64_t *last);

/* writer.c */
extern const struct ml_log_writer_ops js_writer_ops;
void *js_publisher_main(void *arg);
/* The batches not sent yet, taken from the writer (jw->mu held), and failed with the reason
 * (without the lock): the log broke. */
struct js_pending *js_take_unsent(struct js_writer *jw);
void js_fail_unsent(struct js_pending *list, const char *why);

/* plugin.c: frees the writer, once nats.c's threads have ended */
void js_discard(struct js_writer *jw);

/* tail.c */
void *js_tail_main(void *arg);
/* Drains a subscription, then destroys it (nats.c 3.4.1 may crash otherwise: its issue #637). */
void js_unsubscribe(natsSubscription *sub);

/* nodes.c */
void js_nodes_init(struct js_writer *jw);
void js_nodes_free(struct js_writer *jw);
void *js_heartbeat_main(void *arg);
void js_nodes_reconnected(struct js_writer *jw);
enum ml_node_state js_node_state(struct js_writer *jw, const char *id, size_t len);

/* Lines for the server's log (stderr), unless quiet. */
void js_log(struct js_writer *jw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
