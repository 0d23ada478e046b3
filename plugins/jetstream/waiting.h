/*
 * waiting.h - the batches a node published, waiting for their apply, in token
 * order.
 *
 * A node numbers its batches (tokens, increasing), publishes them in that
 * order, and reads them back from the stream in that order: the batch an
 * apply asks for is the oldest one waiting, taken at once, however many wait
 * behind it (64 connections with 32 appends in flight each keep thousands
 * waiting). A token older than the oldest waiting is a copy of a message sent
 * again (its first copy took the batch): none, also at once. A batch whose
 * apply failed to write (ML_ERR_IO) is put back in its place, to be taken
 * again when the stream is applied again from where the log stands.
 *
 * No lock of its own: the writer's mutex guards it (jetstream.h).
 */
#ifndef MOONLOG_PLUGIN_JS_WAITING_H
#define MOONLOG_PLUGIN_JS_WAITING_H

#include <stdint.h>

#include <moonlog/log.h>
#include <moonlog/util.h>

/* A batch taken by submit: its entry, until published; then its request, until applied. */
struct js_pending {
	uint64_t token;
	struct ml_append *req;
	struct ml_buf bytes; /* the entry (freed once published) */
	struct js_pending *next;
};

struct js_waiting {
	struct js_pending *head, **end; /* oldest first; end: the last one's next */
};

void js_waiting_init(struct js_waiting *q);
/* Adds a batch just published: its token is newer than every one waiting. */
void js_waiting_push(struct js_waiting *q, struct js_pending *p);
/* The batch with this token, taken off the queue; NULL if none (a copy, or not ours). */
struct js_pending *js_waiting_take(struct js_waiting *q, uint64_t token);
/* Puts a batch back in token order (its apply failed to write). */
void js_waiting_put_back(struct js_waiting *q, struct js_pending *p);
/* Takes the whole queue, oldest first, leaving it empty. */
struct js_pending *js_waiting_take_all(struct js_waiting *q);

#endif
