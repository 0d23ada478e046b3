/*
 * util.h - small services every module uses: allocation that never returns NULL,
 * lines on stderr, CRC32C, clocks, UUIDv7, varints, and the data folder's permissions.
 */
#ifndef MOONLOG_UTIL_H
#define MOONLOG_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <moonlog/api.h>

/* Allocation for the core's own memory: aborts with a message when memory runs out. */
ML_API void *ml_xmalloc(size_t n);
ML_API void *ml_xcalloc(size_t n, size_t size);
ML_API void *ml_xrealloc(void *p, size_t n);
ML_API char *ml_xstrndup(const char *s, size_t n);

/* A growing byte buffer. Zero-initialise it; ml_buf_free releases it. */
struct ml_buf {
	char *data;
	size_t len, cap;
};
ML_API void ml_buf_reserve(struct ml_buf *b, size_t extra);
ML_API void ml_buf_add(struct ml_buf *b, const void *p, size_t n);
ML_API void ml_buf_addf(struct ml_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
ML_API void ml_buf_free(struct ml_buf *b);

/* Writes the line "prefix: message" to stderr, as one piece among threads: the log lines
 * of `moonlog serve` (prefix "moonlog serve") and the errors of the other commands. */
ML_API void ml_line(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ML_API void ml_vline(const char *prefix, const char *fmt, va_list ap);

/* CRC32C (Castagnoli), continuing from `crc` (0 to start). */
ML_API uint32_t ml_crc32c(uint32_t crc, const void *buf, size_t len);

/* A fast 64-bit hash of a byte string (not cryptographic). */
ML_API uint64_t ml_hash64(const void *p, size_t len, uint64_t seed);

/* Clocks: wall time in milliseconds since the Unix epoch, monotonic time in nanoseconds. */
ML_API int64_t ml_time_ms(void);
ML_API uint64_t ml_clock_ns(void);

/*
 * How many of the first bytes of s[0..n) are printable ASCII (0x20 to 0x7e).
 * Names and map keys are mostly such bytes: this checks them a word at time (a
 * byte below 0x20 borrows into its top bit when 0x20 is taken from it; one
 * above 0x7e, or with its top bit set, has it set once 1 is added), and the
 * callers check what follows, if anything, as UTF-8.
 */
static inline int ml_printable_word(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, tops = 0x8080808080808080ull;
	return ((((w - 0x20 * ones) & ~w) | (w + ones) | w) & tops) == 0;
}

static inline size_t ml_printable_ascii(const void *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	uint64_t w;
	uint32_t lo, hi;
	if (n >= 8) { /* whole words, then the last 8 bytes, overlapping */
		for (; i + 8 <= n; i += 8) {
			__builtin_memcpy(&w, p + i, 8);
			if (!ml_printable_word(w))
				break;
		}
		if (i + 8 > n) {
			__builtin_memcpy(&w, p + n - 8, 8);
			if (ml_printable_word(w))
				return n;
		}
	} else if (n >= 4) { /* two 4-byte halves, overlapping */
		__builtin_memcpy(&lo, p, 4);
		__builtin_memcpy(&hi, p + n - 4, 4);
		if (ml_printable_word((uint64_t)hi << 32 | lo))
			return n;
	}
	while (i < n && p[i] >= 0x20 && p[i] < 0x7f) /* short, or to find the first other byte */
		i++;
	return i;
}

/* A new UUIDv7 in its 36-character text form, written to out[37]. */
ML_API void ml_uuid7(char out[37]);
/* The same, for the Unix time time_ms (in ms), read once for a batch of ids. */
ML_API void ml_uuid7_at(int64_t time_ms, char out[37]);

/*
 * A UUID's 16 bytes from its text, when the text is exactly the form ml_uuid7
 * writes (36 characters: lower-case hex digits, dashes at 8, 13, 18 and 23), so
 * that ml_uuid_unpack gives the same text back: 0, or -1 for any other text.
 */
ML_API int ml_uuid_pack(const char *text, size_t len, uint8_t out[16]);
/* The 36-character text of a UUID's 16 bytes, to out[37]. */
ML_API void ml_uuid_unpack(const uint8_t in[16], char out[37]);

/*
 * Variable-length unsigned integers (LEB128): 7 bits a byte, the lowest first,
 * the top bit set on every byte but the last; 1 byte below 128, at most 10.
 * ml_varint_get reads one from p[0..n) to *v: the bytes it took, or 0 when it is
 * cut short or longer than 64 bits.
 */
ML_API void ml_buf_add_varint(struct ml_buf *b, uint64_t v);
ML_API size_t ml_varint_get(const uint8_t *p, size_t n, uint64_t *v);

/*
 * The data folder is its owner's alone (runtime/util/private.c): folders in it
 * are created with mode 0700 and files with ML_FILE_MODE, whatever the umask.
 */
#define ML_FILE_MODE 0600

/*
 * Creates the folder `path` and its missing parents with mode 0700. A folder
 * that exists is left as it is. 0, or -1 with errno; *created (if not NULL)
 * says whether `path` itself was made.
 */
ML_API int ml_mkdir_private(const char *path, int *created);

/*
 * Creates the data folder `dir` (0700) if it is missing. If it exists and other
 * users can enter it, writes a one-line warning to warning[cap] (else "") and
 * changes nothing. 0, or -1 with errno.
 */
ML_API int ml_data_dir_prepare(const char *dir, char *warning, size_t cap);

/* Raises the soft RLIMIT_NOFILE to the hard one where allowed; returns the soft limit after.
 * A server calls it before it opens anything (the log keeps a descriptor per segment). */
ML_API uint64_t ml_raise_fd_limit(void);

#endif
