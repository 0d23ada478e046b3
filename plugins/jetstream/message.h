/*
 * message.h - the body of one JetStream message: the journal entries (batches)
 * one node published together (group commit). No NATS in here: the unit tests
 * build it alone (runtime/test/test_js_message.c).
 *
 * Format 2, "MLJ2", what this moonlog sends: the magic, the publishing node's
 * id as its 16 bytes, the node's token for the first entry (varint), then per
 * entry its length (varint) and its bytes (ml_log_entry_encode), to the end of
 * the body. The entries' tokens follow each other: the first, the first + 1, ...
 * A message of 300 entries spends about 2 bytes on each, and 22 on itself.
 *
 * Format 1, "MLJ1", what moonlog sent before and every node still reads: the
 * magic, the node's id (36 characters), a count (u32), then per entry its token
 * (u64), its length (u32) and its bytes; big-endian.
 *
 * Compressed, "MLZ2": the magic, then one zstd frame (level 1, its size in its
 * header) of a format-2 body. A body goes out so whenever that is smaller: the
 * NATS servers, which copy every byte to three stores and to every node, spend
 * most of their time per byte, and events repeat their names and fields. Every
 * node inflates a message before it opens it, to at most JS_MESSAGE_INFLATED_MAX
 * bytes (the same on every node, so that all refuse the same bomb alike).
 */
#ifndef MOONLOG_PLUGIN_JS_MESSAGE_H
#define MOONLOG_PLUGIN_JS_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include <moonlog/util.h>

#define JS_NODE_LEN		  36		/* a node's id: a UUIDv7 made at its start */
#define JS_MESSAGE_HEAD_MAX	  (4 + 16 + 10) /* the most a format-2 body spends on itself */
#define JS_MESSAGE_ENTRY_HEAD_MAX 5		/* and on an entry (its length, under 4 GiB) */

/* Starts a format-2 body in `body` (emptied) for the node `node` (its 36-character id). */
void js_message_begin(struct ml_buf *body, const char *node, uint64_t first_token);
/* Adds the next entry; its token is the one after the entry before's. */
void js_message_add(struct ml_buf *body, const void *entry, size_t len);

#define JS_MESSAGE_INFLATED_MAX (64u << 20) /* NATS's largest max_payload */

/* One thread's zstd context (made at first use) and the bytes it last made. */
struct js_zstd {
	ZSTD_CCtx *deflate;
	ZSTD_DCtx *inflate;
	struct ml_buf out;
};
void js_zstd_free(struct js_zstd *z);

/* What to send for `body`: its MLZ2 form in z->out when that is smaller, else the body. */
void js_message_deflate(struct js_zstd *z, const struct ml_buf *body, const void **msg,
			size_t *len);
/*
 * The body a received message holds: the message itself unless it is MLZ2, else
 * its inflated bytes (in z->out). 0, or -1 when an MLZ2 message does not inflate
 * (damaged, or bigger than JS_MESSAGE_INFLATED_MAX): no moonlog message, then.
 */
int js_message_inflate(struct js_zstd *z, const void *msg, size_t len, const void **body,
		       size_t *body_len);

/* A walk over the entries of a body. */
struct js_message_reader {
	const uint8_t *p;
	size_t left;
	int format;	    /* 1 or 2 */
	int own;	    /* the node that reads published it */
	uint64_t token;	    /* format 2: the next entry's */
	uint32_t remaining; /* format 1: the entries the count says are left */
};

/*
 * Opens a body for the node `node` (its 36-character id): its format (1 or 2),
 * or 0 when the bytes are no moonlog message.
 */
int js_message_open(struct js_message_reader *r, const void *body, size_t len, const char *node);

/* The next entry: 1 with its token and bytes, or 0 at the end (or where the body is cut short). */
int js_message_next(struct js_message_reader *r, uint64_t *token, const uint8_t **entry,
		    size_t *len);

#endif
