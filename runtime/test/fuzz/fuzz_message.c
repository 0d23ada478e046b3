/*
 * fuzz_message.c - the bodies of JetStream messages as anyone who can publish to
 * the stream's subject may send them, through what every node runs before it
 * applies one (plugins/jetstream/message.c): inflate it when it is compressed,
 * open it, walk its entries.
 *
 * Promises held: inflating reads only the message and makes at most
 * JS_MESSAGE_INFLATED_MAX bytes; every entry the walk gives lies inside the body,
 * after the one before, so the walk ends; and any body, compressed by
 * js_message_deflate, inflates to the same bytes.
 */
#include <string.h>

#include "fuzz.h"
#include "message.h"

#define NODE "0190d6a3-7c2e-7abc-9def-0123456789ab"

static void walk(const uint8_t *body, size_t len)
{
	struct js_message_reader r;
	if (js_message_open(&r, body, len, NODE) == 0)
		return;
	const uint8_t *after = body, *end = body + len, *entry;
	uint64_t token;
	size_t elen;
	while (js_message_next(&r, &token, &entry, &elen)) {
		FUZZ_ASSERT(entry >= after && elen <= (size_t)(end - entry),
			    "an entry of %zu bytes at %td of a %zu-byte body", elen, entry - body,
			    len);
		after = entry + elen;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct js_zstd tail, publisher, other; /* each reused, as a node's threads do */
	const void *body;
	size_t len;
	if (js_message_inflate(&tail, data, size, &body, &len) == 0) {
		FUZZ_ASSERT(body == data || len <= JS_MESSAGE_INFLATED_MAX, "inflated to %zu bytes",
			    len);
		walk(body, len);
	}

	struct ml_buf in = {(char *)data, size, size}; /* read only: deflate does not write it */
	const void *msg, *back;
	size_t mlen, blen;
	js_message_deflate(&publisher, &in, &msg, &mlen);
	if (msg == data) {
		FUZZ_ASSERT(mlen == size, "sent as it is, but %zu of %zu bytes", mlen, size);
		return 0;
	}
	FUZZ_ASSERT(mlen < size && memcmp(msg, "MLZ2", 4) == 0, "compressed, %zu of %zu bytes",
		    mlen, size);
	FUZZ_ASSERT(js_message_inflate(&other, msg, mlen, &back, &blen) == 0 && blen == size &&
			memcmp(back, data, size) == 0,
		    "a compressed body of %zu bytes inflates to the same bytes", size);
	return 0;
}
