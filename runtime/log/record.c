/*
 * record.c - encoding and checking segment headers and records (see record.h).
 */
#include "log/record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/util.h>

static const char seg_magic[8] = "MOONLOG";

size_t ml_rec_size(const struct ml_event_in *e, size_t id_len)
{
	return ML_REC_HEADER + e->stream_len + e->type_len + id_len + e->meta_len + e->data_len;
}

uint32_t ml_rec_crc(const uint8_t *p, uint32_t len)
{
	return ml_crc32c(ml_crc32c(0, p, 4), p + 8, len - 8);
}

void ml_rec_encode(uint8_t *out, const struct ml_event_in *e, const char *id, size_t id_len,
		   uint8_t flags, uint32_t left, uint64_t position, uint64_t version, int64_t time,
		   uint64_t seq, uint64_t synced)
{
	uint32_t len = (uint32_t)ml_rec_size(e, id_len) + (seq ? ML_REC_SEQ_SIZE : 0) +
		       (flags & ML_REC_SYNCED ? ML_REC_SYNCED_SIZE : 0);
	uint8_t *p = out + ML_REC_HEADER;

	ml_put32(out, len);
	out[8] = flags | (seq ? ML_REC_SEQ : 0);
	out[9] = (uint8_t)e->stream_len;
	out[10] = (uint8_t)e->type_len;
	out[11] = (uint8_t)id_len;
	ml_put32(out + 12, (uint32_t)e->meta_len);
	ml_put32(out + 16, (uint32_t)e->data_len);
	ml_put32(out + 20, left);
	ml_put64(out + 24, position);
	ml_put64(out + 32, version);
	ml_put64(out + 40, (uint64_t)time);
	memcpy(p, e->stream, e->stream_len), p += e->stream_len;
	memcpy(p, e->type, e->type_len), p += e->type_len;
	memcpy(p, id, id_len), p += id_len;
	if (e->meta_len)
		memcpy(p, e->meta, e->meta_len), p += e->meta_len;
	if (e->data_len)
		memcpy(p, e->data, e->data_len), p += e->data_len;
	if (seq)
		ml_put64(p, seq), p += ML_REC_SEQ_SIZE;
	if (flags & ML_REC_SYNCED)
		ml_put64(p, synced);
	ml_put32(out + 4, ml_rec_crc(out, len));
}

void ml_seg_header_encode(uint8_t out[ML_SEG_HEADER], uint64_t first_position)
{
	memset(out, 0, ML_SEG_HEADER);
	memcpy(out, seg_magic, 8);
	ml_put32(out + 8, ML_FORMAT_VERSION);
	ml_put32(out + 12, ML_SEG_HEADER);
	ml_put64(out + 16, first_position);
	ml_put64(out + 24, (uint64_t)ml_time_ms());
	ml_put32(out + 60, ml_crc32c(0, out, 60));
}

void ml_seg_header_encode_scavenged(uint8_t out[ML_SEG_HEADER], uint64_t first_position,
				    int64_t created, uint32_t scavenges)
{
	ml_seg_header_encode(out, first_position);
	ml_put32(out + 8, ML_FORMAT_SCAVENGED);
	ml_put64(out + 24, (uint64_t)created);
	ml_put32(out + 32, scavenges);
	ml_put32(out + 60, ml_crc32c(0, out, 60));
}

int ml_seg_header_parse(const uint8_t *p, size_t avail, uint64_t *first_position)
{
	if (avail < ML_SEG_HEADER)
		return ml_diag_set(ML_ERR_CORRUPT, "segment header is cut short (%zu of %d bytes)",
				   avail, ML_SEG_HEADER);
	if (memcmp(p, seg_magic, 8) != 0)
		return ml_diag_set(ML_ERR_CORRUPT, "not a moonlog segment (bad magic)");
	if (ml_crc32c(0, p, 60) != ml_le32(p + 60))
		return ml_diag_set(ML_ERR_CORRUPT, "segment header checksum mismatch");
	if (ml_le32(p + 8) < 1 || ml_le32(p + 8) > ML_FORMAT_SCAVENGED)
		return ml_diag_set(ML_ERR_CORRUPT,
				   "segment format version %u; this moonlog reads versions 1 to %d",
				   ml_le32(p + 8), ML_FORMAT_SCAVENGED);
	*first_position = ml_le64(p + 16);
	return 0;
}

void ml_seg_name(char out[32], uint64_t first_position)
{
	snprintf(out, 32, "%020" PRIu64 ".seg", first_position);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int ml_seg_list(const char *logdir, int remove_tmp, uint64_t **out, size_t *n)
{
	DIR *d = opendir(logdir);
	if (d == NULL)
		return ml_diag_set(errno == ENOENT ? ML_ERR_NOT_FOUND : ML_ERR_IO,
				   "cannot read %s: %s", logdir, strerror(errno));
	size_t cap = 16;
	*out = ml_xmalloc(cap * sizeof(**out));
	*n = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		uint64_t first;
		char tail[8];
		if (remove_tmp &&
		    (strstr(de->d_name, ".seg.tmp") || strstr(de->d_name, ".idx.tmp"))) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (sscanf(de->d_name, "%20" SCNu64 "%7s", &first, tail) != 2 ||
		    strcmp(tail, ".seg") != 0)
			continue;
		if (*n == cap)
			*out = ml_xrealloc(*out, (cap *= 2) * sizeof(**out));
		(*out)[(*n)++] = first;
	}
	closedir(d);
	qsort(*out, *n, sizeof(**out), cmp_u64);
	return 0;
}
