/*
 * The body of one JetStream message (plugins/jetstream/message.c): format 2
 * gives back the entries put in, with tokens that follow the first and who
 * sent it; format 1, as an older moonlog sent it, still reads; a body cut
 * short gives whole entries only, and bytes that are no moonlog message none.
 */
#include <stdio.h>
#include <string.h>

#include "message.h"
#include "test/unit.h"

#define NODE  "0190d6a3-7c2e-7abc-9def-0123456789ab"
#define OTHER "0190d6a3-7c2e-7abc-9def-0123456789ac"

/* The entries of a body as "token:length" words; the format first. */
static const char *walk(const void *body, size_t len, const char *node)
{
	static char out[4096];
	struct js_message_reader r;
	int format = js_message_open(&r, body, len, node);
	size_t n = (size_t)snprintf(out, sizeof(out), "%d%s", format, r.own ? " own" : "");
	uint64_t token;
	const uint8_t *entry;
	size_t elen;
	while (js_message_next(&r, &token, &entry, &elen) && n < sizeof(out) - 48) {
		n += (size_t)snprintf(out + n, sizeof(out) - n, " %llu:%zu",
				      (unsigned long long)token, elen);
		if (elen &&
		    (entry < (const uint8_t *)body || entry + elen > (const uint8_t *)body + len ||
		     entry[0] != (uint8_t)elen))
			return "an entry outside the body, or not the one put in";
	}
	return out;
}

static void put_be(struct ml_buf *b, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		uint8_t c = (uint8_t)(v >> (8 * i));
		ml_buf_add(b, &c, 1);
	}
}

/* An entry of n bytes whose first byte says n (mod 256), as walk checks. */
static void entry_of(uint8_t *e, size_t n)
{
	memset(e, 0xee, n);
	if (n)
		e[0] = (uint8_t)n;
}

/*
 * Compressed (MLZ2): a body of events that repeat themselves goes out smaller and
 * inflates to the same bytes; one that does not shrink goes out as it is; a damaged
 * frame or one that would inflate past the cap opens as no message, on every node.
 */
static void test_compressed(void)
{
	struct js_zstd z = {0}, other = {0};
	struct ml_buf body = {0};
	static uint8_t e[300];
	js_message_begin(&body, NODE, 7);
	for (int i = 0; i < 300; i++) {
		entry_of(e, 145);
		snprintf((char *)e + 1, 40, "account-%d Deposited amount %d", i % 10, i);
		js_message_add(&body, e, 145);
	}
	const void *msg, *back;
	size_t len, back_len;
	js_message_deflate(&z, &body, &msg, &len);
	ok(len < body.len / 4 && memcmp(msg, "MLZ2", 4) == 0,
	   "300 entries that repeat themselves: %zu bytes go out as %zu (MLZ2)", body.len, len);
	struct ml_buf sent = {0};
	ml_buf_add(&sent, msg, len);
	ok(js_message_inflate(&other, sent.data, sent.len, &back, &back_len) == 0 &&
	       back_len == body.len && memcmp(back, body.data, body.len) == 0,
	   "another node inflates it to the very body");
	char want[4096];
	size_t w = (size_t)snprintf(want, sizeof(want), "2 own");
	for (int i = 0; i < 300; i++)
		w += (size_t)snprintf(want + w, sizeof(want) - w, " %d:145", 7 + i);
	is_str(walk(back, back_len, NODE), want, "and its 300 entries read as they were put in");

	int damaged = 1; /* a byte flipped anywhere after the magic */
	for (size_t i = 4; i < sent.len; i++) {
		sent.data[i] ^= 0x5a;
		damaged &= js_message_inflate(&other, sent.data, sent.len, &back, &back_len) == -1;
		sent.data[i] ^= 0x5a;
	}
	ok(damaged, "a byte changed anywhere in its %zu bytes: it does not inflate", sent.len - 4);
	ok(js_message_inflate(&other, sent.data, sent.len - 1, &back, &back_len) == -1,
	   "nor one cut short");

	struct ml_buf small = {0};
	js_message_begin(&small, NODE, 1);
	js_message_add(&small, "\x01", 1);
	js_message_deflate(&z, &small, &msg, &len);
	ok(msg == small.data && len == small.len, "a body that would not shrink goes out as it is");
	ok(js_message_inflate(&other, small.data, small.len, &back, &back_len) == 0 &&
	       back == small.data,
	   "and is read as it came");

	/* A bomb: 65 MiB of zeros make a small frame that says so in its header. */
	struct ml_buf big = {0};
	size_t n = JS_MESSAGE_INFLATED_MAX + (1u << 20);
	ml_buf_reserve(&big, n);
	memset(big.data, 0, n);
	big.len = n;
	js_message_deflate(&z, &big, &msg, &len);
	ok(len < 64 * 1024 && js_message_inflate(&other, msg, len, &back, &back_len) == -1 &&
	       other.out.cap < n,
	   "a %zu-byte frame of %zu bytes is refused before it is inflated", len, n);
	ml_buf_free(&big);
	ml_buf_free(&small);
	ml_buf_free(&sent);
	ml_buf_free(&body);
	js_zstd_free(&z);
	js_zstd_free(&other);
}

int main(void)
{
	static uint8_t e[300];
	struct ml_buf body = {0};
	js_message_begin(&body, NODE, 41);
	size_t sizes[] = {5, 145, 300, 1};
	for (int i = 0; i < 4; i++) {
		entry_of(e, sizes[i]);
		js_message_add(&body, e, sizes[i]);
	}
	is_str(walk(body.data, body.len, NODE), "2 own 41:5 42:145 43:300 44:1",
	       "format 2: the entries put in, their tokens following the first, sent by this node");
	is_str(walk(body.data, body.len, OTHER), "2 41:5 42:145 43:300 44:1",
	       "read by another node: not its own");
	is_int(body.len, 4 + 16 + 1 + (1 + 5) + (2 + 145) + (2 + 300) + (1 + 1),
	       "it spends 21 bytes on itself and 1 or 2 on each entry's length");
	int whole = 1;
	for (size_t n = 0; n < body.len; n++) {
		const char *got = walk(body.data, n, NODE);
		whole &= strncmp("2 own 41:5 42:145 43:300 44:1", got, strlen(got)) == 0 ||
			 (n < 21 && strcmp(got, "0") == 0);
	}
	ok(whole, "cut at any length: whole entries, in order, or no message when the head is cut");

	/* Format 1: "MLJ1", the node's 36 characters, a count, then token, length, bytes. */
	struct ml_buf old = {0};
	ml_buf_add(&old, "MLJ1" NODE, 40);
	put_be(&old, 2, 4);
	put_be(&old, 7, 8), put_be(&old, 145, 4);
	entry_of(e, 145);
	ml_buf_add(&old, e, 145);
	put_be(&old, 9, 8), put_be(&old, 3, 4);
	entry_of(e, 3);
	ml_buf_add(&old, e, 3);
	is_str(walk(old.data, old.len, NODE), "1 own 7:145 9:3",
	       "format 1, as an older moonlog sent it: its entries and their own tokens");
	is_str(walk(old.data, old.len, OTHER), "1 7:145 9:3", "and whose they are");
	is_str(walk(old.data, old.len - 1, NODE), "1 own 7:145", "cut short: the whole entries");
	old.data[43] = 3; /* a count past the entries there */
	is_str(walk(old.data, old.len, NODE), "1 own 7:145 9:3",
	       "a count past the end stops there");

	is_str(walk("hello", 5, NODE), "0", "bytes that are no moonlog message are none");
	is_str(walk("MLJ2" NODE, 20, NODE), "0", "nor is a format-2 head without its token");
	ml_buf_free(&body);
	ml_buf_free(&old);
	test_compressed();
	return done_testing();
}
