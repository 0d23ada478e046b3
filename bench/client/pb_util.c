/*
 * pb_util.c - buffer compaction, the clock, latency samples, error lines and the
 * benchmark event.
 *
 * The event is the same for every system: a key "account-N" (N = seq % 1000),
 * an amount 1..100 and an 82-character note. As msgpack {amount, note} it is
 * exactly the 100-byte payload that `moonlog bench append` writes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pb.h"

const char pb_note[PB_NOTE_LEN + 1] =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
_Static_assert(sizeof(pb_note) == 83 && PB_NOTE_LEN == 82, "the note is 82 bytes");

/* Drops the consumed front once it is worth the copy. */
void pb_buf_compact(struct ml_buf *b, size_t *off)
{
	if (*off == b->len) {
		*off = b->len = 0;
	} else if (*off > b->cap / 2) {
		memmove(b->data, b->data + *off, b->len - *off);
		b->len -= *off;
		*off = 0;
	}
}

uint64_t pb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define PB_MAX_SAMPLES (1u << 26) /* 512 MiB of samples at most; later ones are dropped */

void pb_sample(struct pb_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		uint64_t cap = s->cap ? s->cap * 2 : 65536;
		uint64_t *v = cap <= PB_MAX_SAMPLES ? realloc(s->v, cap * sizeof(*v)) : NULL;
		if (v == NULL)
			return;
		s->v = v, s->cap = cap;
	}
	s->v[s->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void pb_samples_sort(struct pb_samples *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
}

double pb_pct_us(const struct pb_samples *s, double p)
{
	return s->n ? (double)s->v[(uint64_t)((double)(s->n - 1) * p)] / 1000.0 : 0;
}

int pb_quiet;

int pb_fail(const char *fmt, ...)
{
	va_list ap;
	if (pb_quiet)
		return -1;
	va_start(ap, fmt);
	fputs("peerbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

int pb_key(uint64_t seq, char *out)
{
	return sprintf(out, "account-%u", (unsigned)(seq % PB_KEYS));
}

uint64_t pb_amount(uint64_t seq)
{
	return seq % 100 + 1;
}

uint64_t pb_expected_sum(uint64_t n)
{
	uint64_t sum = 0;
	for (uint64_t i = 0; i < n; i++)
		sum += pb_amount(i);
	return sum;
}

/* {"amount": uint16, "note": str8(82)}: 16 + 2 + 82 = 100 bytes. */
size_t pb_payload(uint64_t seq, uint8_t *out)
{
	static const uint8_t head[] = {0x82, 0xa6, 'a', 'm', 'o', 'u', 'n', 't', 0xcd};
	size_t n = 0;
	memcpy(out, head, sizeof(head));
	n += sizeof(head);
	uint64_t a = pb_amount(seq);
	out[n++] = (uint8_t)(a >> 8);
	out[n++] = (uint8_t)a;
	memcpy(out + n, "\xa4note\xd9", 6);
	n += 6;
	out[n++] = PB_NOTE_LEN;
	memcpy(out + n, pb_note, PB_NOTE_LEN);
	return n + PB_NOTE_LEN;
}
