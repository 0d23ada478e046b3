/*
 * fuzz_entry.c - journal entries as a replicated journal may hold them (any
 * bytes: anything may be published to the stream's subject) through the
 * decoder every node runs before it applies one (log/entry.c, entry1.c).
 *
 * Promises held: the decoder reads only the entry's bytes; it decodes, or
 * refuses with ML_ERR_CORRUPT and a reason; and a batch it decodes (format 1
 * or 2) encodes again in format 2 to bytes that decode to the same batch: the
 * same events, ids (made or given), expected versions, system flag and time.
 * What every node stores comes from what it decodes, so the same bytes give
 * the same batch everywhere.
 */
#include <string.h>

#include <moonlog/log_writer.h>
#include <moonlog/util.h>

#include "fuzz.h"
#include "log/entry.h"

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int same_batch(const struct ml_entry *x, const struct ml_entry *y)
{
	if (x->n_events != y->n_events || x->n_expect != y->n_expect || x->system != y->system ||
	    x->time != y->time)
		return 0;
	for (size_t i = 0; i < x->n_expect; i++) {
		const struct ml_expect_in *a = &x->expect[i], *b = &y->expect[i];
		if (!same_bytes(a->stream, a->stream_len, b->stream, b->stream_len) ||
		    a->expected != b->expected)
			return 0;
	}
	for (size_t i = 0; i < x->n_events; i++) {
		const struct ml_event_in *a = &x->events[i], *b = &y->events[i];
		if (!same_bytes(a->stream, a->stream_len, b->stream, b->stream_len) ||
		    !same_bytes(a->type, a->type_len, b->type, b->type_len) ||
		    !same_bytes(a->id, a->id_len, b->id, b->id_len) ||
		    !same_bytes(a->meta, a->meta_len, b->meta, b->meta_len) ||
		    !same_bytes(a->data, a->data_len, b->data, b->data_len) ||
		    (a->id_len == 0 && strcmp(x->ids[i], y->ids[i]) != 0))
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_entry d;
	if (ml_entry_decode(data, size, &d) != 0) {
		FUZZ_ASSERT(ml_diag_code() == ML_ERR_CORRUPT &&
				strstr(ml_diag_last(), "it is not a batch this moonlog can read ("),
			    "a refusal is a corrupt entry, with its reason");
		ml_entry_free(&d);
		return 0;
	}
	struct ml_append req = {.events = d.events,
				.n_events = d.n_events,
				.expect = d.expect,
				.n_expect = d.n_expect,
				.system = d.system};
	struct ml_buf again = {0};
	ml_log_entry_encode(&req, d.ids, d.time, &again);
	struct ml_entry e;
	FUZZ_ASSERT(ml_entry_decode(again.data, again.len, &e) == 0,
		    "a decoded batch encodes to an entry that decodes");
	FUZZ_ASSERT(same_batch(&d, &e), "and to the same batch");
	ml_entry_free(&e);
	ml_entry_free(&d);
	ml_buf_free(&again);
	return 0;
}
