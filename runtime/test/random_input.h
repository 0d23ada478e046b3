/*
 * random_input.h - reproducible random inputs for the codec tests: a xorshift sequence, and
 * short byte strings that are now and then msgpack, each in a heap block of its exact size
 * so that ASan sees any read past its end.
 */
#ifndef ML_TEST_RANDOM_INPUT_H
#define ML_TEST_RANDOM_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* The next number of the xorshift64 sequence kept in *x (seeded with anything but 0). */
static inline uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/*
 * 1 to `max` random bytes in a new heap block of exactly that size (the caller frees it);
 * *n is their number. Small counts and lengths are favoured so that some inputs are valid
 * msgpack. `bend` (or NULL) may change each byte, given the random number it came from.
 */
static inline unsigned char *random_msgpack(uint64_t *x, size_t max, size_t *n,
					    unsigned char (*bend)(unsigned char byte, uint64_t r))
{
	*n = 1 + xorshift(x) % max;
	unsigned char *p = malloc(*n);
	for (size_t k = 0; k < *n; k++) {
		uint64_t r = xorshift(x);
		unsigned char b = (unsigned char)(r % 3 ? r >> 8 : r % 0x20);
		p[k] = bend ? bend(b, r) : b;
	}
	return p;
}

#endif
