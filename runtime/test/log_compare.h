/*
 * log_compare.h - are two logs the same: the same events at the same positions
 * (every field, byte for byte), and the same records in the same segment files
 * (byte for byte but for what is each node's own: a record's synced position,
 * and so its crc). For the tests of replicated logs, whose nodes must all hold
 * one history.
 */
#ifndef ML_TEST_LOG_COMPARE_H
#define ML_TEST_LOG_COMPARE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/log.h>
#include <moonlog/util.h>

static inline void dump_field(struct ml_buf *b, const void *p, size_t n)
{
	uint32_t len = (uint32_t)n;
	ml_buf_add(b, &len, sizeof(len));
	if (n)
		ml_buf_add(b, p, n);
}

static inline int dump_event(const struct ml_event *e, void *arg)
{
	struct ml_buf *b = arg;
	ml_buf_add(b, &e->position, sizeof(e->position));
	ml_buf_add(b, &e->version, sizeof(e->version));
	ml_buf_add(b, &e->time, sizeof(e->time));
	ml_buf_add(b, &e->id_generated, 1);
	dump_field(b, e->stream, e->stream_len);
	dump_field(b, e->type, e->type_len);
	dump_field(b, e->id, e->id_len);
	dump_field(b, e->data, e->data_len);
	dump_field(b, e->meta, e->meta_len);
	return 0;
}

/* Every event of the log, each field with its length, in one buffer (free it). */
static inline struct ml_buf dump_log(struct ml_log *log)
{
	struct ml_buf b = {0};
	ml_log_read_all(log, 1, 0, dump_event, &b);
	return b;
}

/* 1 if the two logs hold the same events at the same positions. */
static inline int same_events(struct ml_log *a, struct ml_log *b)
{
	struct ml_buf x = dump_log(a), y = dump_log(b);
	int same = x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
	ml_buf_free(&x);
	ml_buf_free(&y);
	return same && ml_log_head(a) == ml_log_head(b);
}

/*
 * A segment file's records, as every node writes them alike: each record's
 * bytes without its crc and without the synced position a batch's first
 * record carries (flag 16: when that node had synced what, its own matter).
 */
static inline struct ml_buf node_records(const struct ml_buf *raw)
{
	struct ml_buf out = {0};
	const uint8_t *p = (const uint8_t *)raw->data;
	for (size_t o = 0; o + 48 <= raw->len;) {
		uint32_t len = (uint32_t)p[o] | (uint32_t)p[o + 1] << 8 | (uint32_t)p[o + 2] << 16 |
			       (uint32_t)p[o + 3] << 24;
		if (len < 48 || len > raw->len - o)
			break;
		size_t keep = len - ((p[o + 8] & 16) ? 8 : 0), seq = (p[o + 8] & 8) ? 8 : 0;
		ml_buf_add(&out, p + o, 4);
		ml_buf_add(&out, p + o + 8, keep - 8 - seq); /* up to the trailers */
		if (seq)
			ml_buf_add(&out, p + o + len - 8 - ((p[o + 8] & 16) ? 8 : 0), 8);
		o += len;
	}
	return out;
}

/* A segment file's records: the bytes after its 64-byte header, zeros at the end cut. */
static inline struct ml_buf segment_records(const char *path)
{
	struct ml_buf b = {0};
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return b;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ml_buf_add(&b, chunk, n);
	fclose(f);
	size_t end = b.len;
	while (end > 64 && b.data[end - 1] == 0)
		end--;
	if (b.len >= 64)
		memmove(b.data, b.data + 64, end - 64);
	b.len = b.len >= 64 ? end - 64 : 0;
	return b;
}

static inline int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The segment files of DIR/log, sorted; *n of them (free each and the array). */
static inline char **segment_files(const char *dir, size_t *n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/log", dir);
	DIR *d = opendir(path);
	char **names = NULL;
	*n = 0;
	for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
		size_t len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 4, ".seg") != 0)
			continue;
		names = realloc(names, (*n + 1) * sizeof(*names));
		names[(*n)++] = strdup(de->d_name);
	}
	if (d)
		closedir(d);
	if (*n)
		qsort(names, *n, sizeof(*names), cmp_names);
	return names;
}

/*
 * 1 if the closed logs in two data folders have the same segment files holding
 * the same records, byte for byte (the headers hold each file's creation time).
 */
static inline int same_records(const char *dir_a, const char *dir_b)
{
	size_t na, nb;
	char **a = segment_files(dir_a, &na), **b = segment_files(dir_b, &nb);
	int same = na == nb && na > 0;
	for (size_t i = 0; i < na; i++) {
		if (same && i < nb && strcmp(a[i], b[i]) == 0) {
			char pa[512], pb[512];
			snprintf(pa, sizeof(pa), "%s/log/%s", dir_a, a[i]);
			snprintf(pb, sizeof(pb), "%s/log/%s", dir_b, b[i]);
			struct ml_buf rx = segment_records(pa), ry = segment_records(pb);
			struct ml_buf x = node_records(&rx), y = node_records(&ry);
			same = x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
			ml_buf_free(&rx);
			ml_buf_free(&ry);
			ml_buf_free(&x);
			ml_buf_free(&y);
		} else {
			same = 0;
		}
		free(a[i]);
	}
	for (size_t i = 0; i < nb; i++)
		free(b[i]);
	free(a);
	free(b);
	return same;
}

#endif
