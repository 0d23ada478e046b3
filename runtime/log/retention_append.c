/*
 * retention_append.c - the appends that delete a stream or set its retention
 * metadata, built once by the log's rules for every front (the server's RPC,
 * HTTP and eval API, the Lua log of a REPL on a folder): which names may be
 * deleted, what the events hold, what "any" means for a delete: the stream
 * must exist (else "no such stream"), and one already deleted the same way is
 * deleted again as a no-op, answered as a duplicate append is (the deletion's
 * position and version), so that a retried delete succeeds.
 */
#include <stdio.h>
#include <string.h>

#include <moonlog/diag.h>
#include <moonlog/log.h>
#include <moonlog/msgpack.h>
#include <moonlog/util.h>

#define META_PREFIX_LEN (sizeof(ML_META_PREFIX) - 1)

/* A stream a client may delete or give metadata: one of its own. 0, or -1 with diag. */
static int client_stream(const char *stream, size_t len, const char *what)
{
	if (len == 0 || len > 255)
		return ml_diag_set(ML_ERR_USAGE,
				   "cannot %s a stream whose name is %s; give 1 to 255 bytes", what,
				   len ? "longer than 255 bytes" : "empty");
	if (stream[0] == '$')
		return ml_diag_set(ML_ERR_USAGE,
				   "cannot %s %.*s: names starting with '$' are moonlog's own "
				   "streams, which it keeps itself",
				   what, (int)len, stream);
	return 0;
}

static void one_event(struct ml_retention_append *a, size_t stream_len, const char *type,
		      size_t data_len, int64_t expected)
{
	a->ev = (struct ml_event_in){.stream = a->stream,
				     .stream_len = stream_len,
				     .type = type,
				     .type_len = strlen(type),
				     .data = a->data,
				     .data_len = data_len};
	a->req = (struct ml_append){.events = &a->ev,
				    .n_events = 1,
				    .system = 1,
				    .positions = &a->position,
				    .versions = &a->version};
	if (expected != ML_EXPECT_ANY) {
		a->guard = (struct ml_expect_in){a->stream, stream_len, expected};
		a->req.expect = &a->guard;
		a->req.n_expect = 1;
	}
}

static int first_position(const struct ml_event *e, void *arg)
{
	*(uint64_t *)arg = e->position;
	return 1;
}

/*
 * A delete with "any" of a stream already deleted the same way (soft, nothing appended since;
 * or hard) is done: 1 with a's answer that of its $deleted event, as for a duplicate append.
 * 0 when it is not, or when that event is no longer read (truncated since): it is appended.
 */
static int deleted_already(struct ml_log *log, struct ml_retention_append *a, const char *stream,
			   size_t len, uint64_t version, int hard)
{
	struct ml_stream_meta m;
	if (!ml_log_stream_meta(log, stream, len, &m) || m.deleted_before != version ||
	    m.hard != hard)
		return 0;
	uint64_t position = 0;
	ml_log_read_stream(log, stream, len, version, 1, 0, first_position, &position);
	if (position == 0)
		return 0;
	a->position = a->req.first_position = a->req.last_position = position;
	a->version = version;
	a->req.duplicate = 1;
	return 1;
}

int ml_log_prepare_delete(struct ml_log *log, struct ml_retention_append *a, const char *stream,
			  size_t len, int64_t expected, int hard)
{
	memset(a, 0, sizeof(*a));
	if (client_stream(stream, len, "delete") != 0)
		return -1;
	memcpy(a->stream, stream, len);
	memcpy(a->data, "\x81\xa4hard", 6); /* {hard = bool} */
	a->data[6] = hard ? 0xc3 : 0xc2;
	/* "any" still guards on "it exists": the stream cannot have gone in between, and the
	 * guard is the log's own check where several nodes apply the append */
	one_event(a, len, ML_DELETED_TYPE, 7,
		  expected == ML_EXPECT_ANY ? ML_EXPECT_EXISTS : expected);
	if (expected != ML_EXPECT_ANY)
		return 0;
	uint64_t version = ml_log_stream_version(log, stream, len);
	if (version == 0) /* a mistyped name, most likely: say so rather than "conflict" */
		return ml_diag_set(ML_ERR_NOT_FOUND,
				   "cannot delete %.*s: there is no such stream (nothing was ever "
				   "appended to it); check its name",
				   (int)len, stream);
	return deleted_already(log, a, stream, len, version, hard);
}

int ml_log_prepare_meta(struct ml_log *log, struct ml_retention_append *a, const char *stream,
			size_t len, const void *map, size_t map_len, int64_t expected)
{
	memset(a, 0, sizeof(*a));
	if (client_stream(stream, len, "set the metadata of") != 0)
		return -1;
	if (len > 255 - META_PREFIX_LEN)
		return ml_diag_set(ML_ERR_USAGE,
				   "cannot set the metadata of a stream whose name is longer than "
				   "%zu bytes (its metadata stream %s<name> must fit in 255)",
				   255 - META_PREFIX_LEN, ML_META_PREFIX);
	struct ml_stream_meta m;
	ml_log_stream_meta(log, stream, len, &m); /* the keys not given keep their value */
	if (ml_stream_meta_merge(map, map_len, &m) != 0)
		return -1;
	struct ml_buf data = {0};
	ml_stream_meta_encode(&m, &data);
	memcpy(a->data, data.data, data.len); /* 3 keys and 3 integers: at most 62 bytes */
	size_t n = data.len;
	ml_buf_free(&data);
	memcpy(a->stream, ML_META_PREFIX, META_PREFIX_LEN);
	memcpy(a->stream + META_PREFIX_LEN, stream, len);
	one_event(a, len + META_PREFIX_LEN, ML_METADATA_TYPE, n, expected);
	return 0;
}

void ml_log_stream_meta_put(struct ml_log *log, const char *stream, size_t len, struct ml_buf *out)
{
	struct ml_stream_meta m;
	ml_log_stream_meta(log, stream, len, &m);
	ml_msgpack_put_map(out, 6);
	ml_msgpack_put_cstr(out, "max_age");
	ml_msgpack_put_int(out, m.max_age);
	ml_msgpack_put_cstr(out, "max_count");
	ml_msgpack_put_uint(out, m.max_count);
	ml_msgpack_put_cstr(out, "truncate_before");
	ml_msgpack_put_uint(out, m.truncate_before);
	ml_msgpack_put_cstr(out, "deleted"); /* reads as deleted: nothing appended since */
	ml_msgpack_put_bool(out, m.hard ||
				     (m.deleted_before > 0 &&
				      ml_log_stream_version(log, stream, len) == m.deleted_before));
	ml_msgpack_put_cstr(out, "deleted_version");
	ml_msgpack_put_uint(out, m.deleted_before);
	ml_msgpack_put_cstr(out, "hard");
	ml_msgpack_put_bool(out, m.hard);
}
