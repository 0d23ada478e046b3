/*
 * rpc_put.h - the stores that rpc.c (an append's answer) and rpc_read.c (events
 * out) write their msgpack with: a key together with the header byte of the
 * value after it as one constant block, and 64-bit numbers in one store.
 */
#ifndef ML_NET_RPC_PUT_H
#define ML_NET_RPC_PUT_H

#include <stdint.h>
#include <string.h>

#define KEY(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

/* v in 8 bytes, big-endian, after a tag written with the key. */
static inline uint8_t *be64(uint8_t *p, uint64_t v)
{
	uint64_t be = __builtin_bswap64(v);
	memcpy(p, &be, 8);
	return p + 8;
}

#endif
