/*
 * retention.c - the streams with a deletion or retention metadata, and the
 * one predicate every reader asks whether an event is removed (ml_log_removed).
 *
 * Two parts, each guarded as it is used:
 *   cur      what readers see: every change up to the head (its own mutex, so
 *            that a reader on any thread asks without the log's).
 *   pending  the changes reserved and not yet acknowledged (the log's mutex):
 *            the head moving applies them to cur; a failed write drops them.
 * Each time the index writes a block, and at close, cur is written to
 * DATA/log/retention with the head it stands for; an open reads it and scans
 * the records after that head (none after a clean close, at most about a
 * block's worth after a crash). A file whose head is past the log's (a power loss took records
 * it counted) is not used: the open scans the whole log instead.
 * With no deletion and no metadata anywhere, `any` is 0 and every reader
 * skips the predicate: the cost of all this is one load per read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/msgpack.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"
#include "log/retention.h"

struct entry {
	uint64_t hash; /* 0: an empty slot */
	char *name;
	uint8_t len;
	struct ml_stream_meta m;
};

struct table {
	struct entry *slots;
	size_t n, mask; /* mask + 1 slots, a power of two */
};

enum { CH_DELETED, CH_META };

struct change {
	uint64_t position;
	int kind;
	char name[256];
	uint8_t len;
	uint64_t version; /* CH_DELETED: the $deleted event's */
	int hard;
	struct ml_stream_meta m; /* CH_META: the limits it sets */
};

struct ml_retention {
	pthread_mutex_t mu; /* cur */
	struct table cur;
	int any; /* cur holds an entry (read without mu: a stale 0 only misses a change
		    that is being acknowledged right now) */
	struct change *journal; /* pending: log->mu */
	size_t njournal, cap;
	int ready;		 /* ml_ret_open has run: blocks write the file from now on */
	pthread_mutex_t file_mu; /* one writer of the file at a time */
};

/* ---- the table ---- */

static uint64_t name_hash(const char *s, size_t n)
{
	uint64_t h = ml_hash64(s, n, 0x726574656e74ull);
	return h ? h : 1;
}

static struct entry *find(const struct table *t, const char *s, size_t n)
{
	if (t->n == 0)
		return NULL;
	uint64_t h = name_hash(s, n);
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct entry *e = &t->slots[i];
		if (e->hash == 0)
			return NULL;
		if (e->hash == h && e->len == n && memcmp(e->name, s, n) == 0)
			return e;
	}
}

/* Makes room for at least `want` entries (at most 3/4 full). */
static void grow_to(struct table *t, size_t want)
{
	struct table old = *t;
	size_t slots = old.slots ? (old.mask + 1) * 2 : 64;
	while (want * 4 > slots * 3)
		slots *= 2;
	t->slots = ml_xcalloc(slots, sizeof(*t->slots));
	t->mask = slots - 1;
	for (size_t i = 0; old.slots && i <= old.mask; i++) {
		struct entry *e = &old.slots[i];
		if (e->hash == 0)
			continue;
		size_t j = e->hash & t->mask;
		while (t->slots[j].hash)
			j = (j + 1) & t->mask;
		t->slots[j] = *e;
	}
	free(old.slots);
}

static struct entry *get(struct table *t, const char *s, size_t n)
{
	struct entry *e = find(t, s, n);
	if (e)
		return e;
	if (t->slots == NULL || (t->n + 1) * 4 > (t->mask + 1) * 3)
		grow_to(t, t->n + 1);
	uint64_t h = name_hash(s, n);
	size_t i = h & t->mask;
	while (t->slots[i].hash)
		i = (i + 1) & t->mask;
	e = &t->slots[i];
	*e = (struct entry){.hash = h, .name = ml_xstrndup(s, n), .len = (uint8_t)n};
	t->n++;
	return e;
}

static void table_free(struct table *t)
{
	for (size_t i = 0; t->slots && i <= t->mask; i++)
		free(t->slots[i].name);
	free(t->slots);
	*t = (struct table){0};
}

static void apply(struct table *t, const struct change *c)
{
	struct entry *e = get(t, c->name, c->len);
	if (c->kind == CH_DELETED) {
		e->m.deleted_before = c->version;
		e->m.hard |= c->hard;
	} else {
		e->m.max_age = c->m.max_age;
		e->m.max_count = c->m.max_count;
		e->m.truncate_before = c->m.truncate_before;
	}
}

/* ---- what an event says ---- */

int ml_stream_meta_decode(const void *data, size_t len, struct ml_stream_meta *m)
{
	memset(m, 0, sizeof(*m));
	return ml_stream_meta_merge(data, len, m);
}

int ml_stream_meta_merge(const void *data, size_t len, struct ml_stream_meta *m)
{
	struct ml_msgpack_reader r;
	uint32_t n;
	if (len == 0)
		return 0;
	ml_msgpack_reader_init(&r, data, len);
	if (ml_msgpack_get_map(&r, &n) != 0)
		return ml_diag_set(ML_ERR_USAGE,
				   "stream metadata must be a map {max_age = seconds, "
				   "max_count = n, truncate_before = version}");
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		int64_t v = 0;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return ml_diag_set(ML_ERR_USAGE, "stream metadata keys must be strings");
		if (ml_msgpack_get_nil(&r) != 0 && (ml_msgpack_get_int(&r, &v) != 0 || v < 0))
			return ml_diag_set(ML_ERR_USAGE,
					   "stream metadata: %.*s must be a whole number of at "
					   "least 0 (0 or nil: no limit)",
					   (int)kl, k);
		if (kl == 7 && memcmp(k, "max_age", 7) == 0)
			m->max_age = v;
		else if (kl == 9 && memcmp(k, "max_count", 9) == 0)
			m->max_count = (uint64_t)v;
		else if (kl == 15 && memcmp(k, "truncate_before", 15) == 0)
			m->truncate_before = (uint64_t)v;
		else
			return ml_diag_set(
			    ML_ERR_USAGE,
			    "stream metadata has no key %.*s: use max_age (seconds), "
			    "max_count or truncate_before",
			    (int)kl, k);
	}
	if (m->max_age > INT64_MAX / 1000)
		return ml_diag_set(ML_ERR_USAGE, "stream metadata: max_age is too large");
	return 0;
}

void ml_stream_meta_encode(const struct ml_stream_meta *m, struct ml_buf *out)
{
	ml_msgpack_put_map(out, 3);
	ml_msgpack_put_cstr(out, "max_age");
	ml_msgpack_put_int(out, m->max_age);
	ml_msgpack_put_cstr(out, "max_count");
	ml_msgpack_put_uint(out, m->max_count);
	ml_msgpack_put_cstr(out, "truncate_before");
	ml_msgpack_put_uint(out, m->truncate_before);
}

static int is_hard(const void *data, size_t len)
{
	struct ml_msgpack_reader r;
	uint32_t n;
	ml_msgpack_reader_init(&r, data, len);
	if (len == 0 || ml_msgpack_get_map(&r, &n) != 0)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		int b = 0;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return 0;
		if (kl == 4 && memcmp(k, "hard", 4) == 0 && ml_msgpack_get_bool(&r, &b) == 0)
			return b;
		if (ml_msgpack_skip(&r, &(const uint8_t *){0}, &(size_t){0}) != 0)
			return 0;
	}
	return 0;
}

#define LIT_IS(s, n, lit) ((n) == sizeof(lit) - 1 && memcmp((s), (lit), sizeof(lit) - 1) == 0)
#define META_PREFIX_LEN	  (sizeof(ML_META_PREFIX) - 1)

/* The change an event makes, into c: 1, or 0 when it makes none. */
static int change_of(const char *stream, size_t slen, const char *type, size_t tlen,
		     const void *data, size_t dlen, uint64_t position, uint64_t version,
		     struct change *c)
{
	if (tlen == 0 || type[0] != '$')
		return 0;
	if (LIT_IS(type, tlen, ML_DELETED_TYPE)) {
		*c = (struct change){.position = position, .kind = CH_DELETED, .version = version};
		c->hard = is_hard(data, dlen);
	} else if (LIT_IS(type, tlen, ML_METADATA_TYPE) && slen > META_PREFIX_LEN &&
		   memcmp(stream, ML_META_PREFIX, META_PREFIX_LEN) == 0) {
		*c = (struct change){.position = position, .kind = CH_META};
		if (ml_stream_meta_decode(data, dlen, &c->m) != 0)
			memset(&c->m, 0, sizeof(c->m)); /* the front checks; an odd one sets none */
		stream += META_PREFIX_LEN, slen -= META_PREFIX_LEN;
	} else {
		return 0;
	}
	memcpy(c->name, stream, slen);
	c->len = (uint8_t)slen;
	return 1;
}

/* ---- the predicate ---- */

/* Is version `version` of a stream at `stream_version`, at `time`, removed by m? A hard
 * delete's tombstone never is: a scavenge keeps it, so that the name stays refused even for
 * a state built again from the log. */
static int removes(const struct ml_stream_meta *m, uint64_t version, int64_t time, int64_t now,
		   uint64_t stream_version)
{
	if (m->hard && version == m->deleted_before)
		return 0;
	if (version < m->deleted_before || version < m->truncate_before)
		return 1;
	if (m->max_count && version + m->max_count <= stream_version)
		return 1;
	return m->max_age && time < now - m->max_age * 1000;
}

int ml_log_any_removed(struct ml_log *log)
{
	return __atomic_load_n(&log->ret->any, __ATOMIC_ACQUIRE);
}

int ml_log_stream_meta(struct ml_log *log, const char *stream, size_t len,
		       struct ml_stream_meta *out)
{
	struct ml_retention *rt = log->ret;
	memset(out, 0, sizeof(*out));
	if (!ml_log_any_removed(log))
		return 0;
	pthread_mutex_lock(&rt->mu);
	struct entry *e = find(&rt->cur, stream, len);
	if (e)
		*out = e->m;
	pthread_mutex_unlock(&rt->mu);
	return e != NULL;
}

int ml_log_removed(struct ml_log *log, const char *stream, size_t len, uint64_t version,
		   int64_t time_ms, int64_t now_ms)
{
	struct ml_stream_meta m;
	if (!ml_log_stream_meta(log, stream, len, &m))
		return 0;
	uint64_t v = m.max_count ? ml_log_stream_version(log, stream, len) : 0;
	return removes(&m, version, time_ms, now_ms, v);
}

uint64_t ml_log_stream_floor(struct ml_log *log, const char *stream, size_t len, int *exact)
{
	struct ml_stream_meta m;
	*exact = 1;
	if (!ml_log_stream_meta(log, stream, len, &m))
		return 1;
	uint64_t f = m.deleted_before > m.truncate_before ? m.deleted_before : m.truncate_before;
	if (m.max_count) {
		uint64_t v = ml_log_stream_version(log, stream, len);
		if (v > m.max_count && v - m.max_count + 1 > f)
			f = v - m.max_count + 1;
	}
	*exact = m.max_age == 0;
	return f ? f : 1;
}

/* ---- kept as records are reserved, acknowledged, rolled back ---- */

struct ml_retention *ml_ret_new(struct ml_log *log)
{
	(void)log;
	struct ml_retention *rt = ml_xcalloc(1, sizeof(*rt));
	pthread_mutex_init(&rt->mu, NULL);
	pthread_mutex_init(&rt->file_mu, NULL);
	return rt;
}

void ml_ret_free(struct ml_retention *rt)
{
	if (rt == NULL)
		return;
	table_free(&rt->cur);
	free(rt->journal);
	pthread_mutex_destroy(&rt->mu);
	pthread_mutex_destroy(&rt->file_mu);
	free(rt);
}

static void apply_cur(struct ml_retention *rt, const struct change *c)
{
	pthread_mutex_lock(&rt->mu);
	apply(&rt->cur, c);
	__atomic_store_n(&rt->any, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&rt->mu);
}

void ml_ret_note(struct ml_log *log, const struct ml_event_in *e, uint64_t position,
		 uint64_t version)
{
	struct change c;
	struct ml_retention *rt = log->ret;
	if (!change_of(e->stream, e->stream_len, e->type, e->type_len, e->data, e->data_len,
		       position, version, &c))
		return;
	if (rt->njournal == rt->cap) {
		rt->cap = rt->cap ? rt->cap * 2 : 8;
		rt->journal = ml_xrealloc(rt->journal, rt->cap * sizeof(*rt->journal));
	}
	rt->journal[rt->njournal++] = c;
}

/* Is the stream hard-deleted, by an acknowledged change or one in flight? (mutex held) */
static int tombstoned(struct ml_log *log, const char *s, size_t n)
{
	struct ml_retention *rt = log->ret;
	for (size_t i = 0; i < rt->njournal; i++) {
		const struct change *c = &rt->journal[i];
		if (c->kind == CH_DELETED && c->hard && c->len == n && !memcmp(c->name, s, n))
			return 1;
	}
	struct ml_stream_meta m;
	return ml_log_stream_meta(log, s, n, &m) && m.hard;
}

int ml_ret_check(struct ml_log *log, struct ml_append *req)
{
	struct ml_retention *rt = log->ret;
	if (!ml_log_any_removed(log) && rt->njournal == 0)
		return 0;
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		const char *s = e->stream;
		size_t n = e->stream_len;
		if (n > META_PREFIX_LEN && memcmp(s, ML_META_PREFIX, META_PREFIX_LEN) == 0)
			s += META_PREFIX_LEN, n -= META_PREFIX_LEN;
		if (tombstoned(log, s, n))
			return ml_append_refuse(
			    req, ML_ERR_REFUSED,
			    "the stream %.*s was deleted for good (a hard delete); its name "
			    "cannot be written again: use another stream name",
			    (int)n, s);
	}
	return 0;
}

void ml_ret_ack(struct ml_log *log, uint64_t head)
{
	struct ml_retention *rt = log->ret;
	size_t k = 0;
	while (k < rt->njournal && rt->journal[k].position <= head)
		apply_cur(rt, &rt->journal[k++]);
	if (k == 0)
		return;
	memmove(rt->journal, rt->journal + k, (rt->njournal - k) * sizeof(*rt->journal));
	rt->njournal -= k;
}

void ml_ret_rollback(struct ml_log *log, uint64_t position)
{
	struct ml_retention *rt = log->ret;
	while (rt->njournal > 0 && rt->journal[rt->njournal - 1].position > position)
		rt->njournal--;
}

/* ---- the file: DATA/log/retention ---- */

/*
 * All integers little-endian. A 32-byte header: "MLRETN\0\0", u32 format (1),
 * u32 entries, u64 the head the state stands for, u32 crc32c of the entries,
 * u32 crc32c of bytes 0..27. Then per stream: u8 name length, u8 hard, u16 0,
 * u64 deleted_before, u64 truncate_before, u64 max_count, i64 max_age, name.
 */
#define FILE_MAGIC  "MLRETN\0\0"
#define FILE_HEADER 32
#define ENTRY_FIXED 36

static void encode(const struct table *t, uint64_t position, struct ml_buf *out)
{
	ml_buf_reserve(out, FILE_HEADER + t->n * (ENTRY_FIXED + 32));
	memset(out->data, 0, FILE_HEADER);
	out->len = FILE_HEADER;
	for (size_t i = 0; t->slots && i <= t->mask; i++) {
		const struct entry *e = &t->slots[i];
		if (e->hash == 0)
			continue;
		uint8_t b[ENTRY_FIXED] = {e->len, (uint8_t)e->m.hard};
		ml_put64(b + 4, e->m.deleted_before);
		ml_put64(b + 12, e->m.truncate_before);
		ml_put64(b + 20, e->m.max_count);
		ml_put64(b + 28, (uint64_t)e->m.max_age);
		ml_buf_add(out, b, ENTRY_FIXED);
		ml_buf_add(out, e->name, e->len);
	}
	uint8_t *h = (uint8_t *)out->data;
	memcpy(h, FILE_MAGIC, 8);
	ml_put32(h + 8, 1);
	ml_put32(h + 12, (uint32_t)t->n);
	ml_put64(h + 16, position);
	ml_put32(h + 24, ml_crc32c(0, h + FILE_HEADER, out->len - FILE_HEADER));
	ml_put32(h + 28, ml_crc32c(0, h, 28));
}

/* Reads the file into t: 1 and *position (the head it stands for), or 0 when there is none
 * or it does not read (t is then empty: the open scans the whole log). */
static int load(struct ml_log *log, struct table *t, uint64_t *position)
{
	int fd = openat(log->dirfd, ML_RET_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct ml_buf b = {0};
	for (;;) {
		ml_buf_reserve(&b, 1 << 20);
		ssize_t n = read(fd, b.data + b.len, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		b.len += (size_t)n;
	}
	close(fd);
	const uint8_t *p = (const uint8_t *)b.data;
	int good = b.len >= FILE_HEADER && memcmp(p, FILE_MAGIC, 8) == 0 && ml_le32(p + 8) == 1 &&
		   ml_le32(p + 28) == ml_crc32c(0, p, 28) &&
		   ml_le32(p + 24) == ml_crc32c(0, p + FILE_HEADER, b.len - FILE_HEADER);
	if (good) {
		uint32_t n = ml_le32(p + 12);
		size_t off = FILE_HEADER;
		good = n <= (b.len - FILE_HEADER) / (ENTRY_FIXED + 1); /* before sizing by it */
		if (good)
			grow_to(t, n);
		for (uint32_t i = 0; i < n && good; i++) {
			const uint8_t *q = p + off;
			good = off + ENTRY_FIXED <= b.len && q[0] > 0 &&
			       off + ENTRY_FIXED + q[0] <= b.len;
			if (!good)
				break;
			struct entry *e = get(t, (const char *)q + ENTRY_FIXED, q[0]);
			e->m.hard = q[1];
			e->m.deleted_before = ml_le64(q + 4);
			e->m.truncate_before = ml_le64(q + 12);
			e->m.max_count = ml_le64(q + 20);
			e->m.max_age = (int64_t)ml_le64(q + 28);
			off += ENTRY_FIXED + q[0];
		}
		good = good && off == b.len;
		*position = ml_le64(p + 16);
	}
	ml_buf_free(&b);
	if (!good)
		table_free(t);
	return good;
}

/* Writes the state readers see with the head it stands for: a temporary file, synced,
 * renamed. 0, or -1 with diag. (file_mu held) */
static int store(struct ml_log *log)
{
	struct ml_retention *rt = log->ret;
	struct ml_buf b = {0};
	/* under the log's mutex every change up to the head is in cur; holding cur's then
	 * keeps it so (an acknowledgement waits for it) while it is copied */
	pthread_mutex_lock(&log->mu);
	uint64_t head = log->head;
	pthread_mutex_lock(&rt->mu);
	pthread_mutex_unlock(&log->mu);
	encode(&rt->cur, head, &b);
	pthread_mutex_unlock(&rt->mu);
	int fd =
	    openat(log->dirfd, ML_RET_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd < 0 || ml_pwrite_all(fd, b.data, b.len, 0) != 0 || fdatasync(fd) != 0 ||
			 renameat(log->dirfd, ML_RET_FILE ".tmp", log->dirfd, ML_RET_FILE) != 0 ||
			 fsync(log->dirfd) != 0
		     ? -1
		     : 0;
	if (rc != 0)
		ml_diag_set(ML_ERR_IO, "cannot write %s/%s: %s", log->logdir, ML_RET_FILE,
			    strerror(errno));
	if (fd >= 0)
		close(fd);
	ml_buf_free(&b);
	return rc;
}

void ml_ret_file_bytes(struct ml_log *log, struct ml_buf *out)
{
	struct ml_retention *rt = log->ret;
	if (!rt->ready)
		return;
	pthread_mutex_lock(&rt->mu);
	encode(&rt->cur, log->head, out);
	pthread_mutex_unlock(&rt->mu);
}

void ml_ret_save(struct ml_log *log)
{
	struct ml_retention *rt = log->ret;
	if (!rt->ready || log->opt.readonly)
		return;
	pthread_mutex_lock(&rt->file_mu);
	if (store(log) != 0) /* the next block tries again; an open scans what it lacks */
		snprintf(log->index_error, sizeof(log->index_error), "%s", ml_diag_last());
	pthread_mutex_unlock(&rt->file_mu);
}

/* ---- at open ---- */

static int scan_one(const struct ml_event *e, void *arg)
{
	struct ml_retention *rt = arg;
	struct change c;
	if (change_of(e->stream, e->stream_len, e->type, e->type_len, e->data, e->data_len,
		      e->position, e->version, &c)) {
		apply(&rt->cur, &c);
		rt->any = 1;
	}
	return 0;
}

int ml_ret_open(struct ml_log *log)
{
	struct ml_retention *rt = log->ret;
	uint64_t head = log->head, pos = 0;
	if (load(log, &rt->cur, &pos) && pos > head) {
		table_free(&rt->cur); /* it counts records the log no longer holds */
		pos = 0;
	}
	rt->any = rt->cur.n > 0;
	if (head > pos && ml_log_scan(log, pos + 1, head, scan_one, rt) < 0)
		return -1;
	rt->ready = 1;
	/* a scan longer than a block's worth is not done again at the next open */
	if (head - pos > log->index_block && !log->opt.readonly) {
		pthread_mutex_lock(&rt->file_mu);
		int rc = store(log);
		pthread_mutex_unlock(&rt->file_mu);
		return rc;
	}
	return 0;
}
