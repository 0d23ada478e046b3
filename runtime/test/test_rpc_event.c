/*
 * test_rpc_event.c - the event map every read answer and subscription carries
 * (ml_rpc_event in net/rpc.c), written with constant key blocks and 64-bit
 * integers for speed: the bytes are the expected ones (position, version and
 * time always 64-bit, the rest as the msgpack writer puts it), and they hold
 * the same values as the shortest encoding, for the codec (the CLI,
 * moonlog.client and the REPL read through it) and for ml_msgpack_frame
 * (moonlog-peerbench): every width of every integer field, both signs of the
 * time, names at the fixstr and str 8 limits, empty and missing parts,
 * deliveries.
 */
#include <moonlog/codec.h>
#include <moonlog/msgpack.h>

#include "net/net_internal.h"
#include "unit.h"

/* An integer field: 64-bit (wide) or the shortest form. */
static void put_int(struct ml_buf *b, int64_t v, int is_signed, int wide)
{
	uint8_t w[9];
	if (!wide) {
		if (is_signed)
			ml_msgpack_put_int(b, v);
		else
			ml_msgpack_put_uint(b, (uint64_t)v);
		return;
	}
	w[0] = is_signed && v < 0 ? 0xd3 : 0xcf;
	ml_msgpack_write_be(w + 1, (uint64_t)v, 8);
	ml_buf_add(b, w, 9);
}

/* The map as the writer's checked functions put it, field by field. */
static void reference(struct ml_buf *b, const struct ml_event *e, uint32_t deliveries, int wide)
{
	ml_msgpack_put_map(b, deliveries ? 9 : 8);
	ml_msgpack_put_str(b, "position", 8);
	put_int(b, (int64_t)e->position, 0, wide);
	ml_msgpack_put_str(b, "stream", 6);
	ml_msgpack_put_str(b, e->stream, e->stream_len);
	ml_msgpack_put_str(b, "version", 7);
	put_int(b, (int64_t)e->version, 0, wide);
	ml_msgpack_put_str(b, "type", 4);
	ml_msgpack_put_str(b, e->type, e->type_len);
	ml_msgpack_put_str(b, "id", 2);
	ml_msgpack_put_str(b, e->id, e->id_len);
	ml_msgpack_put_str(b, "time", 4);
	put_int(b, e->time, 1, wide);
	ml_msgpack_put_str(b, "data", 4);
	if (e->data_len)
		ml_buf_add(b, e->data, e->data_len);
	else
		ml_msgpack_put_nil(b);
	ml_msgpack_put_str(b, "meta", 4);
	if (e->meta_len)
		ml_buf_add(b, e->meta, e->meta_len);
	else
		ml_msgpack_put_nil(b);
	if (deliveries) {
		ml_msgpack_put_str(b, "deliveries", 10);
		ml_msgpack_put_uint(b, deliveries);
	}
}

/* n bytes of one msgpack value: nil, or a bin 8 of n - 2 bytes. */
static void valid(uint8_t *p, size_t n)
{
	if (n == 1)
		p[0] = 0xc0;
	if (n < 2)
		return;
	p[0] = 0xc4;
	p[1] = (uint8_t)(n - 2);
	for (size_t i = 2; i < n; i++)
		p[i] = (uint8_t)i;
}

/* The event map as JSON (the values a reader gets). */
static int json(const struct ml_buf *b, struct ml_buf *out)
{
	return ml_msgpack_to_json(b->data, b->len, out);
}

/* A duration goes to the first bucket whose bound holds it (bounds included), none past 10 s. */
static void test_hist(void)
{
	static const struct {
		uint64_t ns;
		int bucket; /* -1: only +Inf */
	} cases[] = {
	    {0, 0},
	    {100000, 0},
	    {100001, 1},
	    {250000, 1},
	    {999999, 3},
	    {1000000, 3},
	    {1000001, 4},
	    {7000000, 6},
	    {10000000000ull, 15},
	    {10000000001ull, -1},
	    {UINT64_MAX / 2, -1},
	};
	int right = 1;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct ml_hist h;
		memset(&h, 0, sizeof(h));
		ml_hist_add(&h, cases[k].ns);
		for (int i = 0; i < ML_HIST_BUCKETS; i++)
			right &= h.bucket[i] == (uint64_t)(i == cases[k].bucket);
		right &= h.count == 1 && h.sum_ns == cases[k].ns;
	}
	ok(right, "a latency goes to the first bucket whose bound holds it, and none past 10 s");
}

int main(void)
{
	test_hist();
	static const uint64_t uints[] = {0,	    1,	       127,   128,	   255,
					 256,	    65535,     65536, 0xffffffffu, 0x100000000ull,
					 INT64_MAX, UINT64_MAX};
	static const int64_t times[] = {0,
					1,
					-1,
					-32,
					-33,
					-128,
					-129,
					-32768,
					-32769,
					INT32_MIN,
					(int64_t)INT32_MIN - 1,
					INT64_MIN,
					1700000000000,
					INT64_MAX};
	static const size_t lens[] = {0, 1, 7, 8, 15, 16, 17, 31, 32, 100, 255};
	static const uint32_t deliveries[] = {0, 1, 127, 128, 300, 70000, UINT32_MAX};
	char text[256];
	memset(text, 'x', sizeof(text));
	int cases = 0, same = 0, values = 0, framed = 0;
	for (size_t u = 0; u < sizeof(uints) / sizeof(uints[0]); u++)
		for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++)
			for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
				size_t n = lens[l];
				uint8_t data[300], meta[300];
				valid(data, n);
				valid(meta, n > 1 ? n - 1 : 0);
				struct ml_event e = {
				    .position = uints[u],
				    .version = uints[(u + l) % (sizeof(uints) / sizeof(uints[0]))],
				    .time = times[t],
				    .stream = text,
				    .stream_len = (uint8_t)(n ? n : 1),
				    .type = text,
				    .type_len = (uint8_t)(n ? n : 1),
				    .id = n ? text : NULL,
				    .id_len = (uint8_t)n,
				    .data = n ? data : NULL,
				    .data_len = (uint32_t)n,
				    .meta = n > 1 ? meta : NULL,
				    .meta_len = (uint32_t)(n > 1 ? n - 1 : 0),
				};
				uint32_t d = deliveries[(u + t + l) % 7];
				struct ml_buf a = {0}, wide = {0}, shortest = {0}, ja = {0},
					      js = {0};
				ml_buf_add(&a, "prefix", 6); /* (it appends) */
				ml_rpc_event(&a, &e, d);
				reference(&wide, &e, d, 1);
				reference(&shortest, &e, d, 0);
				cases++;
				int ok_bytes = a.len == wide.len + 6 &&
					       memcmp(a.data + 6, wide.data, wide.len) == 0;
				same += ok_bytes;
				struct ml_buf body = {a.data + 6, a.len - 6, a.len - 6};
				values += json(&body, &ja) == 0 && json(&shortest, &js) == 0 &&
					  ja.len == js.len && memcmp(ja.data, js.data, ja.len) == 0;
				size_t len = 0;
				framed += ml_msgpack_frame((const uint8_t *)body.data, body.len,
							   &len) == 0 &&
					  len == body.len;
				if (!ok_bytes && cases - same == 1)
					printf("# differs: position %llu, time %lld, names of %zu, "
					       "deliveries %u\n",
					       (unsigned long long)e.position, (long long)e.time, n,
					       (unsigned)d);
				ml_buf_free(&a);
				ml_buf_free(&wide);
				ml_buf_free(&shortest);
				ml_buf_free(&ja);
				ml_buf_free(&js);
			}
	is_int(same, cases, "the event map's bytes are the expected ones in all %d cases", cases);
	is_int(values, cases, "and hold the values of the shortest encoding");
	is_int(framed, cases, "and ml_msgpack_frame walks each as one object");
	return done_testing();
}
