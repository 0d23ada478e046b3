/*
 * mp.h - a small msgpack reader and writer for the wire protocol (private to
 * net/ and the command line's client).
 *
 * The reader walks a buffer that may hold half a message: ml_mp_frame says
 * how long the next complete object is, or that more bytes are needed, without
 * recursion, so hostile nesting costs nothing. The cursor functions then read
 * the fields of a complete object; each returns -1 on a type mismatch and
 * leaves the cursor where it was.
 */
#ifndef ML_NET_MP_H
#define ML_NET_MP_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/util.h>

/* 0: buf holds a complete object of *len bytes; 1: needs more bytes; -1: malformed. */
int ml_mp_frame(const uint8_t *buf, size_t n, size_t *len);
/* The same, resumed where the last call that needed more bytes stopped, so that a large
 * object arriving in pieces is walked once. Zero `w` before the first call for an object. */
struct ml_mp_walk {
	size_t off;    /* bytes walked */
	uint64_t todo; /* objects still to walk (0: not started) */
};
int ml_mp_frame_resume(const uint8_t *buf, size_t n, struct ml_mp_walk *w, size_t *len);

struct ml_mp {
	const uint8_t *p, *end;
};

enum ml_mp_type {
	MP_NIL,
	MP_BOOL,
	MP_INT,
	MP_FLOAT,
	MP_STR,
	MP_BIN,
	MP_ARRAY,
	MP_MAP,
	MP_EXT,
	MP_BAD
};

enum ml_mp_type ml_mp_peek(const struct ml_mp *r);
int ml_mp_array(struct ml_mp *r, uint32_t *n);
int ml_mp_map(struct ml_mp *r, uint32_t *n);
int ml_mp_str(struct ml_mp *r, const char **s, uint32_t *n);
/* A string or binary. */
int ml_mp_bytes(struct ml_mp *r, const char **s, uint32_t *n);
int ml_mp_int(struct ml_mp *r, int64_t *v);
int ml_mp_uint(struct ml_mp *r, uint64_t *v);
int ml_mp_bool(struct ml_mp *r, int *v);
int ml_mp_nil(struct ml_mp *r); /* 0 and consumes a nil, or -1 */
/* Skips one object, giving its raw bytes. */
int ml_mp_skip(struct ml_mp *r, const uint8_t **raw, size_t *len);

void ml_mp_put_array(struct ml_buf *b, uint32_t n);
void ml_mp_put_map(struct ml_buf *b, uint32_t n);
void ml_mp_put_str(struct ml_buf *b, const char *s, size_t n);
void ml_mp_put_cstr(struct ml_buf *b, const char *s);
void ml_mp_put_bin(struct ml_buf *b, const void *p, size_t n);
void ml_mp_put_uint(struct ml_buf *b, uint64_t v);
void ml_mp_put_int(struct ml_buf *b, int64_t v);
void ml_mp_put_double(struct ml_buf *b, double v);
void ml_mp_put_bool(struct ml_buf *b, int v);
void ml_mp_put_nil(struct ml_buf *b);

#endif
