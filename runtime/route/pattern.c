/*
 * pattern.c - stream patterns and filters: which streams and event types a
 * subscription, a group or a script (its `from`) takes. The one C copy of the
 * rules of lua/moonlog/filter.lua; spec/data/stream_patterns.lua holds the
 * cases both are tested against, so a script and a network subscriber given
 * the same pattern see the same events.
 */
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>
#include <moonlog/route.h>

enum kind { K_ALL, K_VISIBLE, K_PREFIX, K_CATEGORY, K_EXACT };

struct pat {
	enum kind kind;
	char *s; /* prefix, category or exact name */
	size_t len;
};

/* Event types by length, so that most misses compare one number. */
struct type {
	size_t len;
	char *s;
};

struct ml_filter {
	struct pat *pats;
	size_t npats;
	struct type *types;
	size_t ntypes;
	int typed; /* only the types listed match (none listed: nothing does) */
};

static enum kind classify(const char *p, size_t len)
{
	if (len == 4 && memcmp(p, "$all", 4) == 0)
		return K_ALL;
	if (len == 1 && p[0] == '*')
		return K_VISIBLE;
	if (p[len - 1] == '*')
		return K_PREFIX;
	return memchr(p, '-', len) ? K_EXACT : K_CATEGORY;
}

int ml_pattern_check(const char *p, size_t len)
{
	if (len == 0)
		return ml_diag_set(ML_ERR_USAGE, "a stream pattern cannot be empty; use \"*\" for "
						 "every stream or \"$all\" for the whole log");
	const char *star = memchr(p, '*', len);
	if (star && star != p + len - 1)
		return ml_diag_set(ML_ERR_USAGE,
				   "invalid stream pattern \"%.*s\": \"*\" only at the end",
				   (int)(len > 200 ? 200 : len), p);
	if (memchr(p, '\0', len))
		return ml_diag_set(ML_ERR_USAGE, "a stream pattern cannot hold a NUL byte");
	return 0;
}

static int pat_match(enum kind k, const char *p, size_t plen, const char *s, size_t slen)
{
	switch (k) {
	case K_ALL:
		return 1;
	case K_VISIBLE:
		return slen == 0 || s[0] != '$';
	case K_PREFIX: /* p includes the trailing '*' */
		return slen >= plen - 1 && memcmp(s, p, plen - 1) == 0;
	case K_CATEGORY:
		return slen >= plen && memcmp(s, p, plen) == 0 && (slen == plen || s[plen] == '-');
	case K_EXACT:
		return slen == plen && memcmp(s, p, plen) == 0;
	}
	return 0;
}

int ml_pattern_match(const char *p, size_t plen, const char *stream, size_t slen)
{
	if (ml_pattern_check(p, plen) != 0)
		return 0;
	return pat_match(classify(p, plen), p, plen, stream, slen);
}

struct ml_filter *ml_filter_new(void)
{
	return ml_xcalloc(1, sizeof(struct ml_filter));
}

void ml_filter_free(struct ml_filter *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->npats; i++)
		free(f->pats[i].s);
	for (size_t i = 0; i < f->ntypes; i++)
		free(f->types[i].s);
	free(f->pats);
	free(f->types);
	free(f);
}

int ml_filter_add_stream(struct ml_filter *f, const char *p, size_t len)
{
	if (ml_pattern_check(p, len) != 0)
		return -1;
	f->pats = ml_xrealloc(f->pats, (f->npats + 1) * sizeof(*f->pats));
	f->pats[f->npats++] = (struct pat){classify(p, len), ml_xstrndup(p, len), len};
	return 0;
}

void ml_filter_types_only(struct ml_filter *f)
{
	f->typed = 1;
}

void ml_filter_add_type(struct ml_filter *f, const char *t, size_t len)
{
	size_t i = f->ntypes;
	f->types = ml_xrealloc(f->types, (f->ntypes + 1) * sizeof(*f->types));
	for (; i > 0 && f->types[i - 1].len > len; i--) /* kept sorted by length */
		f->types[i] = f->types[i - 1];
	f->types[i] = (struct type){len, ml_xstrndup(t, len)};
	f->ntypes++;
	f->typed = 1;
}

int ml_filter_match_stream(const struct ml_filter *f, const char *stream, size_t slen)
{
	for (size_t i = 0; i < f->npats; i++)
		if (pat_match(f->pats[i].kind, f->pats[i].s, f->pats[i].len, stream, slen))
			return 1;
	return 0;
}

int ml_filter_match(const struct ml_filter *f, const char *stream, size_t slen, const char *type,
		    size_t tlen)
{
	if (f->typed) {
		size_t i = 0;
		while (i < f->ntypes && f->types[i].len < tlen) /* shorter ones */
			i++;
		for (; i < f->ntypes && f->types[i].len == tlen; i++)
			if (memcmp(f->types[i].s, type, tlen) == 0)
				return ml_filter_match_stream(f, stream, slen);
		return 0;
	}
	return ml_filter_match_stream(f, stream, slen);
}

void ml_filter_describe(const struct ml_filter *f, struct ml_buf *out)
{
	for (size_t i = 0; i < f->npats; i++)
		ml_buf_addf(out, "%s%s", i ? ", " : "", f->pats[i].s);
	for (size_t i = 0; i < f->ntypes; i++)
		ml_buf_addf(out, "%s%s", i ? "|" : " types ", f->types[i].s);
}

struct ml_filter *ml_filter_dup(const struct ml_filter *f)
{
	struct ml_filter *d = ml_filter_new();
	for (size_t i = 0; i < f->npats; i++)
		ml_filter_add_stream(d, f->pats[i].s, f->pats[i].len);
	for (size_t i = 0; i < f->ntypes; i++)
		ml_filter_add_type(d, f->types[i].s, f->types[i].len);
	d->typed = f->typed;
	return d;
}
