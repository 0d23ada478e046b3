/*
 * codec_internal.h - what the codec's files share beside the msgpack reader and
 * writer (moonlog/msgpack.h): error reports, the fixing of a container header
 * written before its size was known, the key stack of open maps, and text
 * helpers for the JSON side.
 */
#ifndef ML_CODEC_INTERNAL_H
#define ML_CODEC_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/msgpack.h>
#include <moonlog/util.h>

/*
 * Error reports, out of line: each sets a diag and returns -1 (callers write
 * `return ml_msgpack_err_x(...), -1;` so that the compiler sees the -1).
 */
int ml_msgpack_err_depth(const struct ml_msgpack_reader *r, const uint8_t *at);
int ml_msgpack_err_trailing(const struct ml_msgpack_reader *r);
/* A name for the format that starts with byte b ("str 8", "map 16"), for messages. */
const char *ml_msgpack_format_name(uint8_t b);

/*
 * Writers that learn a container's size only at its end put a one-byte header at
 * `at` first, then fix it here, moving the elements when the count needs more.
 */
void ml_msgpack_fix_head(struct ml_buf *b, size_t at, int is_map, uint32_t n);
/* The same for a string header of `room` bytes at `at` followed by the n-byte string. */
void ml_msgpack_fix_str_head(struct ml_buf *b, size_t at, size_t room, uint32_t n);

/* ---- the keys of open maps, to find one given twice (msgpack_keys.c) ---- */

struct ml_key {
	const char *s; /* a string key's bytes; NULL for an integer key */
	union {
		size_t n;  /* the string's length */
		int64_t i; /* the integer */
	};
	uint64_t hash; /* of its JSON text, set when a large map is sorted */
};

struct ml_keys {
	struct ml_key *k; /* small, or the heap once more are open */
	size_t n, cap;
	struct ml_key small[32];
};

void ml_keys_init(struct ml_keys *ks);
void ml_keys_free(struct ml_keys *ks);
/* Pushes a key: o is a string (ML_MP_STR) or an integer (ML_MP_INT). */
void ml_keys_push(struct ml_keys *ks, const struct ml_msgpack_obj *o);
/*
 * Looks at the keys from index `base` to the top for two that JSON would show as
 * the same key: 1 with *a and *b set to them, else 0. May reorder those keys.
 */
int ml_keys_find_twice(struct ml_keys *ks, size_t base, const struct ml_key **a,
		       const struct ml_key **b);

/* ---- text helpers for the JSON side ---- */

/* The length of the valid UTF-8 sequence at p (1 to 4), or 0 if it is not one. */
int ml_codec_utf8_len(const uint8_t *p, const uint8_t *end);
/* The shortest text that reads back as d (".0" added to integral values). */
int ml_codec_format_double(char *buf, size_t size, double d);
/* The same for a float32, shortest among the texts that read back as f. */
int ml_codec_format_float(char *buf, size_t size, float f);
/* strtod in the C locale, whatever the process locale is. */
double ml_codec_strtod(const char *s);

/*
 * Paths name a value in messages the way Lua would write it: the root's name,
 * then .name or ["other key"] for map keys and [i] (from 1) for array elements.
 */
/* Appends s[0..n) quoted: its first 32 bytes, '"' and '\\' escaped, other odd bytes as \xNN. */
void ml_codec_quote(struct ml_buf *b, const char *s, size_t n);
/* Appends the path step for the string key s: .name when it is a name, else ["quoted"]. */
void ml_codec_path_key(struct ml_buf *b, const char *s, size_t n);
/* NUL-terminates the path in b (shortening the middle of a long one) and returns it. */
const char *ml_codec_path_text(struct ml_buf *b);

#endif
