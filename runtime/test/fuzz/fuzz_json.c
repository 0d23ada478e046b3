/*
 * fuzz_json.c - JSON text to msgpack (codec/json_msgpack.c): the parser of
 * every HTTP body and of `moonlog append`'s JSON arguments.
 *
 * Beyond never crashing, it holds the parser to its contract (docs/codec.md):
 * a refusal leaves the output buffer as it was and says why; what it accepts is
 * a value the log stores (no number beyond a double, no key twice); and it
 * renders back to JSON that reads back to the very same msgpack, so an event
 * looks the same through every reader however often it goes round.
 */
#include <string.h>

#include <moonlog/codec.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_buf mp = {0}, json = {0}, again = {0};
	ml_buf_add(&mp, "#", 1); /* a byte before: a refusal must leave it alone */
	ml_diag_clear();
	if (ml_json_to_msgpack((const char *)data, size, &mp) != 0) {
		FUZZ_ASSERT(mp.len == 1 && ml_diag_code() == ML_ERR_USAGE && ml_diag_last()[0],
			    "a refusal changed the buffer (%zu bytes) or gave no reason", mp.len);
		goto out;
	}
	const char *m = mp.data + 1;
	size_t mlen = mp.len - 1;
	FUZZ_ASSERT(ml_msgpack_check_value(m, mlen, "data") == 0,
		    "the log would refuse what the JSON parser accepted");
	FUZZ_ASSERT(ml_msgpack_to_json(m, mlen, &json) == 0,
		    "the msgpack of accepted JSON has no JSON form");
	FUZZ_ASSERT(ml_json_to_msgpack(json.data, json.len, &again) == 0,
		    "the JSON we wrote does not read back: %.*s", (int)json.len, json.data);
	FUZZ_ASSERT(again.len == mlen && memcmp(again.data, m, mlen) == 0,
		    "a round trip through JSON changed the value: %.*s", (int)json.len, json.data);
out:
	ml_buf_free(&mp);
	ml_buf_free(&json);
	ml_buf_free(&again);
	return 0;
}
