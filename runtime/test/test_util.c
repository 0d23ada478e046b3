/*
 * The small helpers of util/: UUIDv7 ids (their form, their time, their order
 * within and across threads), and the printable-ASCII scan of names and keys.
 */
#include <pthread.h>

#include <moonlog/util.h>

#include "test/unit.h"

#define PER_THREAD 100000

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* 8-4-4-4-12 lowercase hex, version 7, variant 10. */
static int well_formed(const char *id)
{
	if (strlen(id) != 36)
		return 0;
	for (int i = 0; i < 36; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? id[i] != '-' : !is_hex(id[i]))
			return 0;
	return id[14] == '7' && strchr("89ab", id[19]) != NULL;
}

static uint64_t ms_of(const char *id)
{
	char hex[13];
	memcpy(hex, id, 8);
	memcpy(hex + 8, id + 9, 4);
	hex[12] = 0;
	return strtoull(hex, NULL, 16);
}

struct run {
	char (*ids)[37];
	int ordered;
};

static void *generate(void *arg)
{
	struct run *r = arg;
	r->ordered = 1;
	for (int i = 0; i < PER_THREAD; i++) {
		ml_uuid7(r->ids[i]);
		if (i > 0 && strcmp(r->ids[i - 1], r->ids[i]) >= 0)
			r->ordered = 0;
	}
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* For every length to 24 and every place of one other byte (or none): the count of the
 * printable bytes before it, whichever of the scan's paths (words, halves, bytes) it takes. */
static void test_printable(void)
{
	static const uint8_t others[] = {0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff};
	int right = 1;
	for (size_t n = 0; n <= 24; n++)
		for (size_t at = 0; at <= n; at++)
			for (size_t k = 0; k < sizeof(others); k++) {
				uint8_t *buf = malloc(n ? n : 1); /* its exact size, for ASan */
				for (size_t i = 0; i < n; i++)
					buf[i] = (uint8_t)(0x20 + (i * 7) % 95);
				if (at < n)
					buf[at] = others[k];
				right &= ml_printable_ascii(buf, n) == at;
				free(buf);
			}
	ok(right, "ml_printable_ascii counts the printable bytes before the first other one");
}

/* ml_uuid_pack takes exactly ml_uuid7's form, and ml_uuid_unpack gives the same text back. */
static void test_uuid_bytes(void)
{
	int back = 1;
	for (int i = 0; i < 1000; i++) {
		char id[37], again[37];
		uint8_t b[16];
		ml_uuid7(id);
		back &= ml_uuid_pack(id, 36, b) == 0;
		ml_uuid_unpack(b, again);
		back &= strcmp(id, again) == 0;
	}
	ok(back, "1000 made ids go to 16 bytes and back to the same text");
	const uint8_t ff[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
	char text[37];
	ml_uuid_unpack(ff, text);
	is_str(text, "01234567-89ab-cdef-fedc-ba9876543210",
	       "the bytes in order, as lower-case hex");
	static const char *const others[] = {
	    "01234567-89AB-cdef-fedc-ba9876543210", /* upper case: given back otherwise */
	    "01234567-89ab-cdef-fedc-ba987654321",  /* short */
	    "0123456789ab-cdef-fedc-ba9876543210-", /* dashes elsewhere */
	    "01234567-89ab-cdef-fedc-ba987654321g", /* not hex */
	    "{1234567-89ab-cdef-fedc-ba9876543210",
	};
	int refused = 1;
	uint8_t b[16];
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		refused &= ml_uuid_pack(others[i], strlen(others[i]), b) == -1;
	ok(refused, "any other text is refused, so that what is packed comes back the same");
}

/* Varints: every length from 1 to 10 bytes goes and comes back; cut or too long is refused. */
static void test_varints(void)
{
	int back = 1;
	for (int bits = 0; bits <= 64; bits++) {
		uint64_t v = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
		for (uint64_t k = 0; k < (bits < 64 ? 2u : 1u); k++) {
			uint64_t w = v + k;
			struct ml_buf b = {0};
			ml_buf_add_varint(&b, w);
			uint64_t got = 0;
			size_t want = 1;
			for (uint64_t x = w; x >= 0x80; x >>= 7)
				want++;
			back &= b.len == want &&
				ml_varint_get((const uint8_t *)b.data, b.len, &got) == b.len &&
				got == w;
			back &= ml_varint_get((const uint8_t *)b.data, b.len - 1, &got) == 0;
			ml_buf_free(&b);
		}
	}
	ok(back, "0, 2^k - 1 and 2^k for every k: the fewest bytes, read back the same, and "
		 "refused when cut short");
	uint64_t got;
	is_int(ml_varint_get((const uint8_t *)"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10, &got),
	       0, "a varint past 64 bits is refused");
	is_int(ml_varint_get((const uint8_t *)"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11,
			     &got),
	       0, "and so is one of 11 bytes");
	ok(ml_varint_get((const uint8_t *)"\xac\x02", 2, &got) == 2 && got == 300,
	   "300 is 0xac 0x02");
}

int main(void)
{
	plan(15);
	test_printable();
	test_uuid_bytes();
	test_varints();
	char id[37];
	uint64_t before = (uint64_t)ml_time_ms();
	ml_uuid7(id);
	uint64_t after = (uint64_t)ml_time_ms();
	ok(well_formed(id), "a UUIDv7 is 8-4-4-4-12 lowercase hex, version 7, variant 10: %s", id);
	ok(ms_of(id) >= before && ms_of(id) <= after, "its first 48 bits are the time in ms");

	/* Two threads at once: each one's ids in order, none twice, all well formed. */
	struct run runs[2];
	pthread_t t[2];
	char(*all)[37] = malloc(2 * PER_THREAD * 37);
	for (int i = 0; i < 2; i++) {
		runs[i].ids = all + i * PER_THREAD;
		pthread_create(&t[i], NULL, generate, &runs[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	after = (uint64_t)ml_time_ms();
	ok(runs[0].ordered && runs[1].ordered,
	   "each thread's %d ids are in order (the counter carries into the ms)", PER_THREAD);
	int formed = 1;
	for (int i = 0; i < 2 * PER_THREAD; i++)
		formed &= well_formed(all[i]);
	ok(formed, "all %d are well formed", 2 * PER_THREAD);
	/* A counter of 4096 a ms that carries can run ahead of the clock, by at most this. */
	uint64_t ahead = 2 * PER_THREAD / 3072 + 1;
	ok(ms_of(all[PER_THREAD - 1]) <= after + ahead && ms_of(all[0]) >= before,
	   "their times are the clock's, or ahead of it by the carries only");
	qsort(all, 2 * PER_THREAD, 37, cmp_id);
	int twice = 0;
	for (int i = 1; i < 2 * PER_THREAD; i++)
		twice += strcmp(all[i - 1], all[i]) == 0;
	is_int(twice, 0, "no id is made twice");
	free(all);
	/* Last: the ids made after this one carry its (later) time, as ids stay in order. */
	int64_t later = ml_time_ms() + 60000;
	ml_uuid7_at(later, id);
	ok(well_formed(id) && ms_of(id) == (uint64_t)later,
	   "ml_uuid7_at makes one for the time given");
	return done_testing();
}
