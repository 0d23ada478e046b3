/*
 * pb_redis.c - Redis Streams over RESP, written out by hand.
 *
 * Events go to one stream "ev" with XADD ev * k KEY a AMOUNT n NOTE. The
 * reader walks it with XRANGE in chunks (exclusive "(" start ids, Redis 6.2+),
 * the fold is a Redis Function (bench/peers/redis-fold.lua) that walks the
 * stream itself, and the live subscriber is XREAD BLOCK 0 from the last id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb.h"

struct rstate {
	char last[48]; /* the last stream id seen by a reader or subscriber */
	uint64_t got;
};

/* Skips one RESP value in [p, e); NULL when it is not complete yet. */
static const char *skip(const char *p, const char *e)
{
	const char *nl = p < e ? memchr(p, '\n', (size_t)(e - p)) : NULL;
	if (nl == NULL)
		return NULL;
	long n = strtol(p + 1, NULL, 10);
	switch (*p) {
	case '$':
		return n < 0 ? nl + 1 : (e - (nl + 1) >= n + 2 ? nl + 1 + n + 2 : NULL);
	case '*':
		p = nl + 1;
		for (long i = 0; i < n && p != NULL; i++)
			p = skip(p, e);
		return p;
	default:
		return nl + 1;
	}
}

/* Takes one whole reply off c->in: its bounds in *p, *e; 1, 0 (more), -1. */
static int reply(struct pb_conn *c, const char **p, const char **e)
{
	const char *b = pb_in(c), *end = skip(b, b + pb_avail(c));
	if (end == NULL)
		return 0;
	c->in_off += (size_t)(end - b);
	*p = b, *e = end;
	if (*b == '-')
		return pb_fail("redis: %.*s", (int)(strcspn(b, "\r\n")), b);
	return 1;
}

static int wait_reply(struct pb_conn *c, const char **p, const char **e)
{
	int r;
	while ((r = reply(c, p, e)) == 0)
		if (pb_fill(c) != 0)
			return -1;
	return r < 0 ? -1 : 0;
}

static void bulk(struct ml_buf *b, const char *s, size_t n)
{
	ml_buf_addf(b, "$%zu\r\n", n);
	ml_buf_add(b, s, n);
	ml_buf_add(b, "\r\n", 2);
}

static void command(struct pb_conn *c, int argc, const char **argv)
{
	ml_buf_addf(&c->out, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++)
		bulk(&c->out, argv[i], strlen(argv[i]));
}

static int call(struct pb_conn *c, int argc, const char **argv)
{
	const char *p, *e;
	command(c, argc, argv);
	return pb_flush(c) == 0 ? wait_reply(c, &p, &e) : -1;
}

static int r_hello(struct pb_conn *c)
{
	c->state = calloc(1, sizeof(struct rstate));
	return call(c, 1, (const char *[]){"PING"});
}

static int r_reset(struct pb_conn *c, const struct pb_opts *o)
{
	(void)o;
	return call(c, 2, (const char *[]){"DEL", "ev"});
}

static void r_append(struct pb_conn *c, uint64_t seq)
{
	char key[32], amount[24];
	int kn = pb_key(seq, key), an = sprintf(amount, "%llu", (unsigned long long)pb_amount(seq));
	pb_buf_puts(&c->out, "*9\r\n$4\r\nXADD\r\n$2\r\nev\r\n$1\r\n*\r\n$1\r\nk\r\n");
	bulk(&c->out, key, (size_t)kn);
	pb_buf_puts(&c->out, "$1\r\na\r\n");
	bulk(&c->out, amount, (size_t)an);
	pb_buf_puts(&c->out, "$1\r\nn\r\n");
	bulk(&c->out, pb_note, PB_NOTE_LEN);
}

static int r_acked(struct pb_conn *c)
{
	const char *p, *e;
	return reply(c, &p, &e);
}

/* Walks an array of stream entries [[id, [f, v, ...]], ...]: count and last id. */
static long entries(const char *p, const char *e, char *last)
{
	long n = strtol(p + 1, NULL, 10);
	p = memchr(p, '\n', (size_t)(e - p)) + 1;
	for (long i = 0; i < n; i++) {
		const char *id = memchr(p, '\n', (size_t)(e - p)) + 1; /* past "*2" */
		long len = strtol(id + 1, NULL, 10);
		const char *s = memchr(id, '\n', (size_t)(e - id)) + 1;
		snprintf(last, 48, "%.*s", (int)len, s);
		p = skip(id, e);
		p = skip(p, e);
	}
	return n;
}

static int r_read_all(struct pb_conn *c, const struct pb_opts *o)
{
	uint64_t n = o->count;
	int chunk = o->chunk;
	struct rstate *st = c->state;
	char from[64] = "-", count[16];
	snprintf(count, sizeof(count), "%d", chunk);
	for (uint64_t got = 0; got < n;) {
		const char *p, *e;
		command(c, 6, (const char *[]){"XRANGE", "ev", from, "+", "COUNT", count});
		if (pb_flush(c) != 0 || wait_reply(c, &p, &e) != 0)
			return -1;
		long k = entries(p, e, st->last);
		if (k == 0)
			return pb_fail("redis: the stream ended after %llu events",
				       (unsigned long long)got);
		got += (uint64_t)k;
		snprintf(from, sizeof(from), "(%s", st->last);
	}
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *s = calloc(1, (size_t)n + 1);
	if (fread(s, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	fclose(f);
	return s;
}

/* FUNCTION LOAD REPLACE the file, then FCALL mlbench_fold: a flat [k, sum, ...]. */
static int r_fold(struct pb_conn *c, const char *file, struct pb_fold *out)
{
	char *code = file ? slurp(file) : NULL;
	if (code == NULL)
		return pb_fail("redis: cannot read the function file %s", file ? file : "(none)");
	int rc = call(c, 4, (const char *[]){"FUNCTION", "LOAD", "REPLACE", code});
	free(code);
	const char *p, *e;
	command(c, 4, (const char *[]){"FCALL", "mlbench_fold", "1", "ev"});
	if (rc != 0 || pb_flush(c) != 0 || wait_reply(c, &p, &e) != 0)
		return -1;
	long n = strtol(p + 1, NULL, 10);
	p = memchr(p, '\n', (size_t)(e - p)) + 1;
	for (long i = 0; i < n; i += 2) {
		p = skip(p, e); /* the key */
		out->total += (uint64_t)strtoull(p + 1, NULL, 10);
		out->keys++;
		p = skip(p, e);
	}
	return 0;
}

static void xread(struct pb_conn *c)
{
	struct rstate *st = c->state;
	command(
	    c, 8,
	    (const char *[]){"XREAD", "BLOCK", "0", "COUNT", "1000", "STREAMS", "ev", st->last});
}

static int r_sub_open(struct pb_conn *c)
{
	struct rstate *st = c->state;
	strcpy(st->last, "0-0");
	xread(c);
	return pb_flush(c);
}

/* An XREAD reply: [[key, [entries]]]; count them and ask for what follows. */
static int r_sub_recv(struct pb_conn *c, uint64_t *got)
{
	struct rstate *st = c->state;
	const char *p, *e;
	int r;
	while ((r = reply(c, &p, &e)) == 1) {
		p = memchr(p, '\n', (size_t)(e - p)) + 1; /* *1 */
		p = memchr(p, '\n', (size_t)(e - p)) + 1; /* *2 */
		p = skip(p, e);				  /* the key */
		st->got += (uint64_t)entries(p, e, st->last);
		xread(c);
	}
	*got = st->got;
	return r < 0 ? -1 : pb_write_some(c);
}

const struct pb_proto pb_redis = {
    .name = "redis",
    .hello = r_hello,
    .reset = r_reset,
    .append = r_append,
    .acked = r_acked,
    .read_all = r_read_all,
    .fold = r_fold,
    .sub_open = r_sub_open,
    .sub_recv = r_sub_recv,
};
