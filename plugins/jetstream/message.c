/*
 * message.c - the body of one JetStream message, written (format 2) and read
 * (formats 1 and 2): see message.h.
 */
#include <string.h>

#include "message.h"

#define MAGIC1	   "MLJ1"
#define MAGIC2	   "MLJ2"
#define MAGICZ	   "MLZ2"
#define ZSTD_LEVEL 1 /* ~400 MB/s on one core here: a node's share of a message is cheap */
#define HEAD1_LEN  (4 + JS_NODE_LEN + 4)
#define ENTRY1	   (8 + 4) /* format 1: an entry's token and length */

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

void js_message_begin(struct ml_buf *body, const char *node, uint64_t first_token)
{
	uint8_t id[16] = {0};
	ml_uuid_pack(node, JS_NODE_LEN, id); /* a node's id is always such a UUID */
	body->len = 0;
	ml_buf_add(body, MAGIC2, 4);
	ml_buf_add(body, id, sizeof(id));
	ml_buf_add_varint(body, first_token);
}

void js_message_add(struct ml_buf *body, const void *entry, size_t len)
{
	ml_buf_add_varint(body, len);
	ml_buf_add(body, entry, len);
}

int js_message_open(struct js_message_reader *r, const void *body, size_t len, const char *node)
{
	const uint8_t *p = body;
	memset(r, 0, sizeof(*r));
	if (len >= HEAD1_LEN && memcmp(p, MAGIC1, 4) == 0) {
		r->own = memcmp(p + 4, node, JS_NODE_LEN) == 0;
		r->remaining = (uint32_t)get_be(p + 4 + JS_NODE_LEN, 4);
		r->p = p + HEAD1_LEN, r->left = len - HEAD1_LEN;
		return r->format = 1;
	}
	size_t n;
	if (len >= 4 + 16 && memcmp(p, MAGIC2, 4) == 0 &&
	    (n = ml_varint_get(p + 20, len - 20, &r->token)) > 0) {
		uint8_t id[16];
		r->own = ml_uuid_pack(node, JS_NODE_LEN, id) == 0 && memcmp(p + 4, id, 16) == 0;
		r->p = p + 20 + n, r->left = len - 20 - n;
		return r->format = 2;
	}
	return 0;
}

static int next1(struct js_message_reader *r, uint64_t *token, const uint8_t **entry, size_t *len)
{
	if (r->remaining == 0 || r->left < ENTRY1)
		return 0;
	uint64_t n = get_be(r->p + 8, 4);
	if (n > r->left - ENTRY1)
		return 0;
	*token = get_be(r->p, 8);
	*entry = r->p + ENTRY1, *len = (size_t)n;
	r->p += ENTRY1 + n, r->left -= ENTRY1 + n;
	r->remaining--;
	return 1;
}

static int next2(struct js_message_reader *r, uint64_t *token, const uint8_t **entry, size_t *len)
{
	uint64_t n;
	size_t used = ml_varint_get(r->p, r->left, &n);
	if (used == 0 || n > r->left - used)
		return 0;
	*token = r->token++;
	*entry = r->p + used, *len = (size_t)n;
	r->p += used + n, r->left -= used + n;
	return 1;
}

int js_message_next(struct js_message_reader *r, uint64_t *token, const uint8_t **entry,
		    size_t *len)
{
	if (r->format == 1)
		return next1(r, token, entry, len);
	return r->format == 2 ? next2(r, token, entry, len) : 0;
}

/* ---- compression ---- */

void js_zstd_free(struct js_zstd *z)
{
	ZSTD_freeCCtx(z->deflate);
	ZSTD_freeDCtx(z->inflate);
	ml_buf_free(&z->out);
	memset(z, 0, sizeof(*z));
}

void js_message_deflate(struct js_zstd *z, const struct ml_buf *body, const void **msg, size_t *len)
{
	*msg = body->data, *len = body->len;
	if (z->deflate == NULL) {
		if ((z->deflate = ZSTD_createCCtx()) == NULL)
			return; /* no memory for it: the body goes out as it is */
		/* with a checksum of the content: a damaged frame does not inflate */
		ZSTD_CCtx_setParameter(z->deflate, ZSTD_c_compressionLevel, ZSTD_LEVEL);
		ZSTD_CCtx_setParameter(z->deflate, ZSTD_c_checksumFlag, 1);
	}
	size_t bound = ZSTD_compressBound(body->len);
	z->out.len = 0;
	ml_buf_reserve(&z->out, 4 + bound);
	memcpy(z->out.data, MAGICZ, 4);
	size_t n =
	    ZSTD_compress2(z->deflate, (char *)z->out.data + 4, bound, body->data, body->len);
	if (!ZSTD_isError(n) && 4 + n < body->len) {
		z->out.len = 4 + n;
		*msg = z->out.data, *len = z->out.len;
	}
}

int js_message_inflate(struct js_zstd *z, const void *msg, size_t len, const void **body,
		       size_t *body_len)
{
	*body = msg, *body_len = len;
	if (len < 4 || memcmp(msg, MAGICZ, 4) != 0)
		return 0;
	const char *frame = (const char *)msg + 4;
	unsigned long long size = ZSTD_getFrameContentSize(frame, len - 4);
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
	    size > JS_MESSAGE_INFLATED_MAX)
		return -1;
	if (z->inflate == NULL && (z->inflate = ZSTD_createDCtx()) == NULL)
		return -1;
	z->out.len = 0;
	ml_buf_reserve(&z->out, (size_t)size);
	size_t n = ZSTD_decompressDCtx(z->inflate, z->out.data, (size_t)size, frame, len - 4);
	if (ZSTD_isError(n) || n != size)
		return -1;
	z->out.len = n;
	*body = z->out.data, *body_len = n;
	return 0;
}
