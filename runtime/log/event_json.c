/*
 * event_json.c - a stored event as JSON, the one form that HTTP (reads and
 * server-sent events) and the command line's --json output share
 * (docs/protocol.md): its fields as the log holds them, with data and meta
 * converted by the codec (docs/codec.md) and null when absent.
 */
#include <inttypes.h>

#include <moonlog/codec.h>
#include <moonlog/log.h>

/* Appends ,"name":<the msgpack value as JSON>, or null when there is none. */
static int json_field(struct ml_buf *out, const char *name, const uint8_t *mp, uint32_t len)
{
	ml_buf_addf(out, ",\"%s\":", name);
	if (len == 0) {
		ml_buf_add(out, "null", 4);
		return 0;
	}
	return ml_msgpack_to_json(mp, len, out);
}

int ml_event_json(struct ml_buf *out, const struct ml_event *e)
{
	ml_buf_addf(out, "{\"position\":%" PRIu64 ",\"stream\":", e->position);
	ml_json_string(out, e->stream, e->stream_len);
	ml_buf_addf(out, ",\"version\":%" PRIu64 ",\"type\":", e->version);
	ml_json_string(out, e->type, e->type_len);
	ml_buf_add(out, ",\"id\":", 6);
	ml_json_string(out, e->id, e->id_len);
	ml_buf_addf(out, ",\"time\":%" PRId64, e->time);
	if (json_field(out, "data", e->data, e->data_len) != 0 ||
	    json_field(out, "meta", e->meta, e->meta_len) != 0)
		return -1;
	ml_buf_add(out, "}", 1);
	return 0;
}
