/*
 * util.c - allocation that never fails, lines on stderr, clocks, UUIDv7, the descriptor limit.
 */
#include <moonlog/util.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

static void oom(size_t n)
{
	fprintf(stderr, "moonlog: out of memory (asked for %zu bytes)\n", n);
	abort();
}

void *ml_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *ml_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		oom(n * size);
	return p;
}

void *ml_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

char *ml_xstrndup(const char *s, size_t n)
{
	char *p = ml_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void ml_buf_reserve(struct ml_buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra)
		cap *= 2;
	b->data = ml_xrealloc(b->data, cap);
	b->cap = cap;
}

void ml_buf_add(struct ml_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	ml_buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void ml_buf_addf(struct ml_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	ml_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void ml_buf_free(struct ml_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void ml_vline(const char *prefix, const char *fmt, va_list ap)
{
	flockfile(stderr);
	fputs(prefix, stderr);
	fputs(": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void ml_line(const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ml_vline(prefix, fmt, ap);
	va_end(ap);
}

/* Multiply-and-fold over 8-byte words: fast, and good enough for hash tables. */
static inline uint64_t mix(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t ml_hash64(const void *p, size_t len, uint64_t seed)
{
	const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
	const uint8_t *s = p;
	uint64_t h = seed ^ mix(seed ^ k0, len ^ k1);

	while (len >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = mix(h ^ w ^ k0, k1);
		s += 8;
		len -= 8;
	}
	uint64_t w = 0;
	for (size_t i = 0; i < len; i++)
		w |= (uint64_t)s[i] << (8 * i);
	return mix(h ^ w ^ k1, k0 ^ len);
}

int64_t ml_time_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t ml_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A per-thread xorshift generator seeded from the kernel: ids need no syscall each. */
static uint64_t random64(void)
{
	static _Thread_local uint64_t state;
	if (state == 0 && (getrandom(&state, sizeof(state), 0) != sizeof(state) || state == 0))
		state = ml_clock_ns() | 1;
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state * 0x2545f4914f6cdd1dull;
}

/* Two hex digits a byte: a table, so that an id is written without a branch a digit. */
static const char hex_pairs[] = "000102030405060708090a0b0c0d0e0f"
				"101112131415161718191a1b1c1d1e1f"
				"202122232425262728292a2b2c2d2e2f"
				"303132333435363738393a3b3c3d3e3f"
				"404142434445464748494a4b4c4d4e4f"
				"505152535455565758595a5b5c5d5e5f"
				"606162636465666768696a6b6c6d6e6f"
				"707172737475767778797a7b7c7d7e7f"
				"808182838485868788898a8b8c8d8e8f"
				"909192939495969798999a9b9c9d9e9f"
				"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
				"b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
				"c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
				"d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
				"e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
				"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/*
 * UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter, then 62
 * random bits. The counter keeps the ids of one process ordered (RFC 9562's
 * method 1): it starts at a random value below 1024 in each new millisecond,
 * and past 4095 it carries into the millisecond, which keeps the order when a
 * millisecond holds more ids than the counter counts. The last (millisecond,
 * counter) is one atomic word, taken with a compare-and-swap rather than a lock:
 * an append generates one id an event.
 */
void ml_uuid7(char out[37])
{
	static _Atomic uint64_t last; /* ms << 12 | counter */
	uint64_t ms = (uint64_t)ml_time_ms(), r = random64();
	uint64_t was = atomic_load_explicit(&last, memory_order_relaxed), now;
	do {
		now = was >> 12 >= ms ? was + 1 : ms << 12 | (random64() & 0x3ff);
	} while (!atomic_compare_exchange_weak_explicit(&last, &was, now, memory_order_relaxed,
							memory_order_relaxed));
	uint8_t b[16];
	ms = now >> 12;
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | ((now >> 8) & 0x0f));
	b[7] = (uint8_t)now;
	memcpy(b + 8, &r, 8);
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));

	static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
	for (int i = 0; i < 16; i++)
		memcpy(out + at[i], hex_pairs + 2 * b[i], 2);
	out[8] = out[13] = out[18] = out[23] = '-';
	out[36] = '\0';
}

uint64_t ml_raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};
		if (want.rlim_cur == RLIM_INFINITY) /* the kernel caps at fs.nr_open */
			want.rlim_cur = want.rlim_max = 1u << 20;
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = want.rlim_cur;
	}
	return rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : (uint64_t)rl.rlim_cur;
}
