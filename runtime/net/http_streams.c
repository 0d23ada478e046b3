/*
 * http_streams.c - GET /streams: the streams whose names match a pattern,
 * with their versions, a page at a time in name order (byte order). It is how
 * the web console lists and searches streams; docs/protocol.md describes it.
 *
 *   GET /streams?pattern=account-*&limit=100&after=account-41
 *   {"count":1234,"streams":[{"stream":"account-42","version":3},...],"next":"account-141"}
 *
 * pattern: as for subscriptions (default "*": every stream but system ones;
 * "$all" adds those). count: the streams that match, over every page. next:
 * the `after` of the next page (also in a Link header), or null on the last
 * one. A page keeps only its own `limit` names while the streams go by, so a
 * search among millions of streams holds a page's worth of memory here.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/route.h>

#include "net/http_internal.h"

#define PAGE_DEFAULT 100

struct name {
	char *s;
	size_t len;
	uint64_t version;
};

struct page {
	const char *pattern, *after;
	size_t plen, alen;
	struct name *v; /* sorted, at most limit + 1 of them (one more says there is a next) */
	size_t n, limit;
	uint64_t count;
};

static int cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

/* Keeps the stream if it is among the first limit + 1 names after `after`. */
static int take(const char *s, size_t len, uint64_t version, void *arg)
{
	struct page *p = arg;
	if (!ml_pattern_match(p->pattern, p->plen, s, len))
		return 0;
	p->count++;
	if (p->after && cmp(s, len, p->after, p->alen) <= 0)
		return 0;
	if (p->n == p->limit + 1 && cmp(s, len, p->v[p->n - 1].s, p->v[p->n - 1].len) > 0)
		return 0;
	size_t lo = 0, hi = p->n; /* where it goes */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cmp(p->v[mid].s, p->v[mid].len, s, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (p->n == p->limit + 1)
		free(p->v[--p->n].s);
	memmove(p->v + lo + 1, p->v + lo, (p->n - lo) * sizeof(*p->v));
	p->v[lo] = (struct name){ml_xstrndup(s, len), len, version};
	p->n++;
	return 0;
}

/*
 * The part every matching name starts with, for the log to skip the others:
 * "acc-*" -> "acc-", a category or an exact name -> itself, "*" and "$all" -> "".
 */
static char *prefix_of(const char *pattern, size_t len)
{
	if (strcmp(pattern, "$all") == 0 || strcmp(pattern, "*") == 0)
		return ml_xstrndup("", 0);
	return ml_xstrndup(pattern, pattern[len - 1] == '*' ? len - 1 : len);
}

/* A page that is not the last says where the next starts in the field `next` and, as the
 * reads do (RFC 8288), in Link: </streams?pattern=P&limit=L&after=NAME>; rel="next". */
static void link_next(struct evhttp_request *req, const struct page *p, const struct name *last)
{
	char *pattern = evhttp_uriencode(p->pattern, (ev_ssize_t)p->plen, 0);
	char *after = evhttp_uriencode(last->s, (ev_ssize_t)last->len, 0);
	struct ml_buf b = {0};
	ml_buf_addf(&b, "</streams?pattern=%s&limit=%zu&after=%s>; rel=\"next\"", pattern, p->limit,
		    after);
	ml_buf_add(&b, "", 1);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Link", b.data);
	ml_buf_free(&b);
	free(pattern);
	free(after);
}

static void answer(struct evhttp_request *req, const struct page *p)
{
	struct ml_buf b = {0};
	size_t shown = p->n > p->limit ? p->limit : p->n;
	ml_buf_addf(&b, "{\"count\":%" PRIu64 ",\"streams\":[", p->count);
	for (size_t i = 0; i < shown; i++) {
		ml_buf_add(&b, i ? ",\n{\"stream\":" : "\n{\"stream\":", i ? 12 : 11);
		ml_json_string(&b, p->v[i].s, p->v[i].len);
		ml_buf_addf(&b, ",\"version\":%" PRIu64 "}", p->v[i].version);
	}
	ml_buf_add(&b, "],\"next\":", 9);
	if (p->n > p->limit) {
		ml_json_string(&b, p->v[shown - 1].s, p->v[shown - 1].len);
		link_next(req, p, &p->v[shown - 1]);
	} else {
		ml_buf_add(&b, "null", 4);
	}
	ml_buf_add(&b, "}\n", 2);
	ml_http_send(req, 200, "OK", &b, NULL);
	ml_buf_free(&b);
}

void ml_http_streams(struct ml_server *s, struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *pattern = evhttp_find_header(q, "pattern");
	const char *limit = evhttp_find_header(q, "limit");
	struct page p = {.pattern = pattern && *pattern ? pattern : "*",
			 .after = evhttp_find_header(q, "after"),
			 .limit = PAGE_DEFAULT};
	p.plen = strlen(p.pattern);
	p.alen = p.after ? strlen(p.after) : 0;
	if (limit && *limit) {
		char *end;
		unsigned long long n = strtoull(limit, &end, 10);
		if (*end || limit[0] == '-' || n == 0)
			return ml_http_error(req, 400, ML_ERR_USAGE, 0,
					     "the query parameter limit must be a whole number "
					     "from 1 (streams in one answer)");
		p.limit = n > s->o.max_read ? s->o.max_read : (size_t)n;
	}
	if (ml_pattern_check(p.pattern, p.plen) != 0)
		return ml_http_error(req, 400, ML_ERR_USAGE, 0, ml_diag_last());
	p.v = ml_xmalloc((p.limit + 1) * sizeof(*p.v));
	char *prefix = prefix_of(p.pattern, p.plen);
	ml_log_streams(s->log, prefix, take, &p); /* take never stops it */
	answer(req, &p);
	for (size_t i = 0; i < p.n; i++)
		free(p.v[i].s);
	free(p.v);
	free(prefix);
}
