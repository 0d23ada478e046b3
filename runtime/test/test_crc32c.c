/* CRC32C against the published check values, and agreement of split and whole runs. */
#include <moonlog/util.h>

#include "test/unit.h"

int main(void)
{
	plan(5);
	is_int(ml_crc32c(0, "123456789", 9), 0xe3069283u, "check value of \"123456789\"");
	is_int(ml_crc32c(0, "", 0), 0, "empty input");
	uint8_t zeros[32] = {0};
	is_int(ml_crc32c(0, zeros, 32), 0x8a9136aau, "32 zero bytes (RFC 3720)");

	char buf[1000];
	for (int i = 0; i < 1000; i++)
		buf[i] = (char)(i * 7);
	uint32_t whole = ml_crc32c(0, buf, sizeof(buf));
	uint32_t split = ml_crc32c(ml_crc32c(0, buf, 333), buf + 333, 667);
	is_int(split, whole, "a run split in two gives the same crc");
	/* Whole runs of every length up to 200 take the 32- and 8-byte steps; a byte at a time
	 * takes none: both must agree. */
	int agree = 1;
	for (size_t n = 0; n <= 200; n++) {
		uint32_t bytewise = 0;
		for (size_t i = 0; i < n; i++)
			bytewise = ml_crc32c(bytewise, buf + 7 + i, 1);
		agree &= ml_crc32c(0, buf + 7, n) == bytewise;
	}
	ok(agree, "runs of 0 to 200 bytes: the same crc whole and a byte at a time");
	return done_testing();
}
