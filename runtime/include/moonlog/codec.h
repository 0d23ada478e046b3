/*
 * codec.h - msgpack, the format of every stored event, converted to and from
 * JSON (for HTTP and the command line) and Lua values (for scripts).
 *
 * Every function reads exactly one msgpack object and checks it as it goes, so
 * none of them trusts its input. Functions that append to an ml_buf leave the
 * buffer as it was when they fail. The conversion rules are written down in
 * docs/codec.md.
 */
#ifndef MOONLOG_CODEC_H
#define MOONLOG_CODEC_H

#include <stddef.h>
#include <moonlog/api.h>
#include <moonlog/msgpack.h> /* the reader and writer these are built on */
#include <moonlog/util.h>

struct lua_State;

/* The deepest nesting of arrays and maps accepted anywhere: a top-level map is depth 1. */
#define ML_CODEC_MAX_DEPTH 64

/*
 * 0 if buf[0..len) holds exactly one complete, well-formed msgpack object nested at
 * most ML_CODEC_MAX_DEPTH deep; otherwise -1 with a diag (ML_ERR_USAGE) saying what
 * is wrong and at which byte. Allocates nothing.
 */
ML_API int ml_msgpack_check(const void *buf, size_t len);

/*
 * What the log stores as an event's data or meta: like ml_msgpack_check, and also
 * a value that every reader can show (docs/codec.md, "What the log stores"): no
 * ext values, no NaN or infinite floats, map keys that are UTF-8 strings or
 * integers and no two keys of one map that JSON would show as the same. Otherwise -1 with a
 * diag (ML_ERR_USAGE) naming the value by its path from `name` (NULL: "value"):
 * "data.items[2].blob is an ext value (type 5), which has no JSON or Lua form;
 * ...". Allocates only when more than 32 keys of open maps are held at once.
 */
ML_API int ml_msgpack_check_value(const void *buf, size_t len, const char *name);

/*
 * msgpack -> JSON text appended to out. Binary becomes a base64 string, map keys
 * that are not strings become strings, NaN and infinities become null, an ext
 * value becomes {"$ext": type, "base64": "..."}: every well-formed msgpack
 * converts. 0, or -1 with a diag (ML_ERR_USAGE) for malformed input.
 */
ML_API int ml_msgpack_to_json(const void *mp, size_t len, struct ml_buf *out);

/*
 * A string as JSON text, appended to out: quoted and escaped as ml_msgpack_to_json
 * writes strings, each byte that is not valid UTF-8 replaced by U+FFFD.
 */
ML_API void ml_json_string(struct ml_buf *out, const char *s, size_t n);

/* The base64 size of n bytes. */
#define ML_BASE64_SIZE(n) (((n) + 2) / 3 * 4)
/* Writes bytes[0..n) in base64 (standard alphabet, '=' padding) to out; returns the length. */
ML_API size_t ml_codec_base64(char *out, const void *bytes, size_t n);
/*
 * Decodes base64 text s[0..n) (standard alphabet, '=' padding, no spaces) and appends
 * the bytes to out. 0, or -1 with a diag (ML_ERR_USAGE) naming the first bad character;
 * out is then as it was.
 */
ML_API int ml_codec_unbase64(struct ml_buf *out, const char *s, size_t n);

/*
 * JSON text -> msgpack appended to out. Integers that fit int64/uint64 stay
 * integers, other numbers become float64. A number too large for a double and a
 * key given twice in one object are refused. 0, or -1 with a diag (ML_ERR_USAGE)
 * giving the line and column of the mistake (and the path of the value, for
 * those two).
 */
ML_API int ml_json_to_msgpack(const char *json, size_t len, struct ml_buf *out);

/*
 * Pushes the Lua value of the one msgpack object in mp[0..len). Returns 0, or -1
 * with a diag (ML_ERR_USAGE) and nothing pushed. Bad input never raises a Lua
 * error; running out of Lua memory does, as in any Lua API call. Values that the
 * log no longer stores but older logs may hold still decode: an ext value as
 * ml_lua_push_ext makes it, and a map entry whose key is nil or NaN is left out.
 */
ML_API int ml_lua_push_msgpack(struct lua_State *L, const void *mp, size_t len);

/*
 * Pushes the Lua value of a msgpack scalar already read (nil, a boolean, a
 * number, a string or bin): 0, or -1 with nothing pushed for a map, an array or
 * an ext value, which the caller pushes its own way.
 */
struct ml_msgpack_obj;
ML_API int ml_lua_push_scalar(struct lua_State *L, const struct ml_msgpack_obj *o);

/*
 * Pushes the Lua form of an ext value of `type` holding bytes[0..n): the table
 * { ["$ext"] = type, base64 = "..." }, the same shape as its JSON form.
 */
ML_API void ml_lua_push_ext(struct lua_State *L, int type, const void *bytes, size_t n);

/*
 * Encodes the Lua value at idx as msgpack appended to out. Returns 0, or -1 with
 * a diag (ML_ERR_USAGE) naming the path of the value that cannot be encoded, as
 * in "cannot encode a function at value.items[3].cb". Never raises a Lua error;
 * the stack is left as it was.
 */
ML_API int ml_lua_to_msgpack(struct lua_State *L, int idx, struct ml_buf *out);

/* The same, with `name` instead of "value" at the head of paths in messages ("data"). */
ML_API int ml_lua_to_msgpack_named(struct lua_State *L, int idx, struct ml_buf *out,
				   const char *name);

/*
 * Pushes the metatable that marks a table as an array ({ __array = true }): a table
 * with it encodes as an array of t[1] .. t[#t], even when empty. Empty msgpack
 * arrays decode to empty tables that carry it.
 */
ML_API void ml_lua_push_array_mt(struct lua_State *L);

/*
 * Pushes a table { encode, decode, to_json, from_json, array_mt } (see docs/codec.md);
 * the bindings raise Lua errors. Part of the moonlog.core module.
 */
ML_API int ml_luaopen_codec(struct lua_State *L);

#endif
