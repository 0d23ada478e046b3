/*
 * crc32c.c - CRC32C (Castagnoli polynomial), the checksum of every log record.
 *
 * Debian ships no CRC32C library, so it lives here: the SSE4.2 crc32
 * instruction where the CPU has it (chosen once at run time), and a
 * byte-at-a-time table otherwise.
 */
#include <moonlog/util.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static uint32_t table[256];

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		table[i] = c;
	}
}

static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p,
							    size_t len)
{
	uint64_t c = crc;
	for (; len >= 32; p += 32, len -= 32) { /* (a record is 100 to 300 bytes) */
		uint64_t v[4];
		memcpy(v, p, 32);
		c = __builtin_ia32_crc32di(c, v[0]);
		c = __builtin_ia32_crc32di(c, v[1]);
		c = __builtin_ia32_crc32di(c, v[2]);
		c = __builtin_ia32_crc32di(c, v[3]);
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}
#endif

typedef uint32_t (*crc_fn)(uint32_t, const uint8_t *, size_t);
static uint32_t crc_first(uint32_t crc, const uint8_t *p, size_t len);

/* The implementation, chosen at the first call (crc_first): after that, one load a call. */
static _Atomic(crc_fn) impl = crc_first;

static void choose(void)
{
	crc_fn best = crc_table;
	table_init();
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		best = crc_sse42;
#endif
	atomic_store_explicit(&impl, best, memory_order_release);
}

static uint32_t crc_first(uint32_t crc, const uint8_t *p, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, choose);
	return atomic_load_explicit(&impl, memory_order_acquire)(crc, p, len);
}

uint32_t ml_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return ~atomic_load_explicit(&impl, memory_order_acquire)(~crc, buf, len);
}
