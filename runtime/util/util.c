/*
 * util.c - allocation that never fails, lines on stderr, clocks, UUIDs, varints, the descriptor
 * limit.
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

/* The two hex digits of each byte value: one load and one store a byte. */
#define HEX_DIGIT(n) ((char)((n) < 10 ? '0' + (n) : 'a' - 10 + (n)))
#define HEX_PAIR(x)                                                                                \
	{                                                                                          \
		HEX_DIGIT((x) >> 4), HEX_DIGIT((x)&15)                                             \
	}
#define HEX_PAIR4(x)  HEX_PAIR(x), HEX_PAIR(x + 1), HEX_PAIR(x + 2), HEX_PAIR(x + 3)
#define HEX_PAIR16(x) HEX_PAIR4(x), HEX_PAIR4(x + 4), HEX_PAIR4(x + 8), HEX_PAIR4(x + 12)
#define HEX_PAIR64(x) HEX_PAIR16(x), HEX_PAIR16(x + 16), HEX_PAIR16(x + 32), HEX_PAIR16(x + 48)
static const char hex_pair[256][2] = {HEX_PAIR64(0), HEX_PAIR64(64), HEX_PAIR64(128),
				      HEX_PAIR64(192)};

/* The 36-character text of the UUID whose first 8 bytes are hi and last 8 lo (big-endian). */
static void uuid_text(uint64_t hi, uint64_t lo, char out[37])
{
#define PUT(at, v, shift) memcpy(out + (at), hex_pair[(uint8_t)((v) >> (shift))], 2)
	PUT(0, hi, 56), PUT(2, hi, 48), PUT(4, hi, 40), PUT(6, hi, 32);
	PUT(9, hi, 24), PUT(11, hi, 16), PUT(14, hi, 8), PUT(16, hi, 0);
	PUT(19, lo, 56), PUT(21, lo, 48), PUT(24, lo, 40), PUT(26, lo, 32);
	PUT(28, lo, 24), PUT(30, lo, 16), PUT(32, lo, 8), PUT(34, lo, 0);
#undef PUT
	out[8] = out[13] = out[18] = out[23] = '-';
	out[36] = '\0';
}

/*
 * UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter, then 62
 * random bits. The counter keeps the ids of one process ordered (RFC 9562's
 * method 1): it starts at a random value below 1024 in each new millisecond,
 * and past 4095 it carries into the millisecond, which keeps the order when a
 * millisecond holds more ids than the counter counts. The last (millisecond,
 * counter) is one atomic word, taken with a compare-and-swap rather than a lock:
 * an append generates one id an event.
 */
void ml_uuid7_at(int64_t time_ms, char out[37])
{
	static _Atomic uint64_t last; /* ms << 12 | counter */
	uint64_t ms = (uint64_t)time_ms, r = random64();
	uint64_t was = atomic_load_explicit(&last, memory_order_relaxed), now;
	do {
		now = was >> 12 >= ms ? was + 1 : ms << 12 | (random64() & 0x3ff);
	} while (!atomic_compare_exchange_weak_explicit(&last, &was, now, memory_order_relaxed,
							memory_order_relaxed));
	/* ms, version 7, counter | variant 10, random */
	uint64_t hi = (now >> 12) << 16 | 0x7000 | (now & 0xfff);
	uint64_t lo = (r >> 2) | 0x8000000000000000ull;
	uuid_text(hi, lo, out);
}

void ml_uuid7(char out[37])
{
	ml_uuid7_at(ml_time_ms(), out);
}

/* Each hex digit's value plus one; 0 for every other byte. */
static const uint8_t hex_value1[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/*
 * Unrolled, with one test over every digit at the end: an append packs each
 * event's made id, so this runs once an event (docs/log.md, "The journal entry").
 * A byte that is not a lower-case hex digit wraps to a value above 15.
 */
int ml_uuid_pack(const char *text, size_t len, uint8_t out[16])
{
	if (len != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')
		return -1;
	const uint8_t *t = (const uint8_t *)text;
	unsigned bad = 0;
#define PAIR(i, at)                                                                                \
	do {                                                                                       \
		unsigned h = hex_value1[t[at]] - 1u, l = hex_value1[t[(at) + 1]] - 1u;             \
		bad |= h | l;                                                                      \
		out[i] = (uint8_t)(h << 4 | l);                                                    \
	} while (0)
	PAIR(0, 0);
	PAIR(1, 2);
	PAIR(2, 4);
	PAIR(3, 6);
	PAIR(4, 9);
	PAIR(5, 11);
	PAIR(6, 14);
	PAIR(7, 16);
	PAIR(8, 19);
	PAIR(9, 21);
	PAIR(10, 24);
	PAIR(11, 26);
	PAIR(12, 28);
	PAIR(13, 30);
	PAIR(14, 32);
	PAIR(15, 34);
#undef PAIR
	return bad > 15 ? -1 : 0;
}

void ml_uuid_unpack(const uint8_t in[16], char out[37])
{
	uint64_t hi = 0, lo = 0;
	for (int i = 0; i < 8; i++)
		hi = hi << 8 | in[i], lo = lo << 8 | in[8 + i];
	uuid_text(hi, lo, out);
}

void ml_buf_add_varint(struct ml_buf *b, uint64_t v)
{
	uint8_t p[10];
	size_t n = 0;
	for (; v >= 0x80; v >>= 7)
		p[n++] = (uint8_t)(v | 0x80);
	p[n++] = (uint8_t)v;
	ml_buf_add(b, p, n);
}

size_t ml_varint_get(const uint8_t *p, size_t n, uint64_t *v)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n && i < 10; i++) {
		if (i == 9 && p[i] > 1)
			return 0; /* bits past the 64th */
		x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
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
