/*
 * check_index.c - `moonlog check` for the index files: every block against
 * the records it stands for, and every run's own order and checksums.
 *
 * The open trusts a block whose header reads well (it reads only headers, to
 * open in a blink), so this is where the rest is looked at: the sections'
 * checksum, the order of the tables and their filters, and, record by record,
 * the offset of each position, the stream and version of each position a
 * stream's list names, and the key of each id. What the open itself would
 * replace is not damage: a missing index file, one of another seed, a block
 * whose header does not read (a crash while it was written). A damaged one
 * is: check fails naming it, and --repair removes it (it is derived from the
 * segment, and the next open builds it again).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"

int ml_index_read_seed(int dirfd, uint64_t *seed)
{
	uint8_t b[12];
	int fd = openat(dirfd, "index.seed", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, b, sizeof(b), 0) : -1;
	if (fd >= 0)
		close(fd);
	if (n != sizeof(b) || ml_le32(b + 8) != ml_crc32c(0, b, 8))
		return -1;
	*seed = ml_le64(b);
	return 0;
}

/* The record at `off` of the segment, or NULL when there is none there. */
static int rec_at(const uint8_t *p, uint64_t size, uint64_t off, struct ml_rec *r)
{
	return off < size && ml_rec_parse(p + off, size - off, 0, r) == ML_REC_OK ? 0 : -1;
}

/* Checks one block against the segment's records: NULL, or what is wrong. */
static const char *block_problem(const struct ml_block *b, uint64_t seed, const uint8_t *p,
				 uint64_t size)
{
	static __thread char why[160];
	struct ml_rec r;
	uint64_t count = b->t.last - b->t.first + 1, ids = 0, stub_ids = 0, listed = 0;
	if (ml_table_verify(&b->t) != 0) {
		snprintf(why, sizeof(why), "%s", ml_diag_last());
		return why;
	}
	for (uint64_t i = 0; i < count; i++) {
		uint64_t off = ml_block_offset(b, b->t.first + i);
		uint64_t end = i + 1 < count ? ml_block_offset(b, b->t.first + i + 1) : b->data_end;
		if (rec_at(p, size, off, &r) != 0 || r.ev.position != b->t.first + i ||
		    r.len != end - off) {
			snprintf(why, sizeof(why), "position %" PRIu64 " is not at offset %" PRIu64,
				 b->t.first + i, off);
			return why;
		}
		/* a stub keeps whether its event had a client id; a block written before the
		 * scavenge keeps that id's key, one built again from the stub does not */
		if (r.flags & ML_REC_REMOVED)
			stub_ids += !r.ev.id_generated;
		else
			ids += !r.ev.id_generated;
	}
	for (uint64_t k = 0; k < b->t.nstreams; k++) {
		const uint8_t *e = b->t.streams + ML_SENTRY * k;
		size_t len;
		const char *name = ml_se_name(&b->t, e, &len);
		uint32_t n = ml_se_count(e);
		listed += n;
		if (ml_se_hash(e) != ml_index_hash_seed(seed, name, len) || n == 0 ||
		    (uint64_t)ml_se_list(e) + n > count || ml_se_version(e) < n)
			return "a stream entry does not add up";
		for (uint32_t j = 0; j < n; j++) {
			uint64_t pos = ml_block_pos(b, e, j);
			/* (versions count a stream's events; the records' own are not
			 * compared: a log moonlog wrote has them equal, one made by hand
			 * may not) */
			if (pos > b->t.last || (j > 0 && pos <= ml_block_pos(b, e, j - 1)) ||
			    rec_at(p, size, ml_block_offset(b, pos), &r) != 0 ||
			    r.ev.stream_len != len || memcmp(r.ev.stream, name, len) != 0) {
				snprintf(why, sizeof(why),
					 "stream %.*s: its event %u is not where its list says",
					 (int)len, name, j + 1);
				return why;
			}
		}
		if (ml_se_link(e) >= b->t.first)
			return "a stream's link points forward";
	}
	if (listed != count)
		return "its streams do not list every position";
	if (b->t.nids < ids || b->t.nids > ids + stub_ids)
		return "its ids are not those of its records";
	for (uint64_t k = 0; k < b->t.nids; k++) {
		const uint8_t *e = b->t.ids + ML_IENTRY * k;
		uint64_t pos = ml_tload64(e + 8);
		if (pos < b->t.first || pos > b->t.last ||
		    rec_at(p, size, ml_block_offset(b, pos), &r) != 0 || r.ev.id_generated)
			return "an id entry is not its record's";
		if (r.flags & ML_REC_REMOVED)
			continue; /* the key of a removed event's id: no bytes left to compare */
		if (ml_tload64(e) !=
		    ml_index_id_key_seed(seed, r.ev.stream, r.ev.stream_len, r.ev.id, r.ev.id_len))
			return "an id entry is not its record's";
	}
	return NULL;
}

/* Damage in an index file: fails the check, or removes the file under repair. */
static int damaged(int dirfd, const char *name, const char *why, int repair,
		   struct ml_check_report *r)
{
	if (!r->bad_index[0])
		snprintf(r->bad_index, sizeof(r->bad_index), "%s", name);
	if (repair && unlinkat(dirfd, name, 0) == 0 && fsync(dirfd) == 0) {
		r->index_removed++;
		return 0;
	}
	return ml_diag_set(ML_ERR_CORRUPT,
			   "index file %s is damaged: %s; 'moonlog check --repair' removes it, and "
			   "the next open of the log builds it again",
			   name, why);
}

int ml_check_index(int dirfd, uint64_t seed, int have_seed, uint64_t first, const uint8_t *p,
		   uint64_t size, uint64_t end, int repair, struct ml_check_report *r)
{
	char name[48];
	snprintf(name, sizeof(name), "%020" PRIu64 ".idx", first);
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t head[64];
	if (fd < 0 || !have_seed || fstat(fd, &st) != 0 || pread(fd, head, 64, 0) != 64 ||
	    memcmp(head, "MLINDEX", 8) != 0 || ml_le32(head + 60) != ml_crc32c(0, head, 60) ||
	    ml_le64(head + 16) != first || ml_le64(head + 24) != seed ||
	    ml_le32(head + 32) != ml_seg_scavenges(p)) {
		if (fd >= 0)
			close(fd);
		r->unindexed += end - first; /* the open indexes the segment again */
		return 0;
	}
	uint64_t fsize = (uint64_t)st.st_size, at = ML_IDX_ALIGN, next = first;
	uint64_t data = ML_SEG_HEADER, removed = r->index_removed;
	int rc = 0;
	while (rc == 0 && at + ML_TABLE_HEADER <= fsize && next < end) {
		uint8_t bh[ML_TABLE_HEADER];
		if (pread(fd, bh, sizeof(bh), (off_t)at) != sizeof(bh))
			break;
		uint64_t len = ml_tload64(bh + 16);
		if (len < ML_TABLE_HEADER || len > fsize - at)
			break; /* a header that does not read: the open cuts it */
		void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)at);
		if (map == MAP_FAILED)
			break;
		struct ml_block b;
		if (ml_block_open(&b, map, len, seed) != 0 || b.t.first != next ||
		    b.data_start != data) {
			munmap(map, len);
			break;
		}
		const char *why = block_problem(&b, seed, p, size);
		if (why) {
			char what[256];
			snprintf(what, sizeof(what),
				 "the block of positions %" PRIu64 "-%" PRIu64 ": %s", b.t.first,
				 b.t.last, why);
			rc = damaged(dirfd, name, what, repair, r);
			munmap(map, len);
			break;
		}
		r->index_blocks++;
		next = b.t.last + 1;
		data = b.data_end;
		at = (at + len + ML_IDX_ALIGN - 1) & ~(uint64_t)(ML_IDX_ALIGN - 1);
		munmap(map, len);
	}
	close(fd);
	if (r->index_removed > removed) /* removed: the open indexes the whole segment again */
		next = first;
	if (next < end)
		r->unindexed += end - next;
	return rc;
}

int ml_check_runs(int dirfd, const char *logdir, uint64_t seed, int have_seed, int repair,
		  struct ml_check_report *r)
{
	DIR *d = opendir(logdir);
	int rc = 0;
	for (struct dirent *de; d && rc == 0 && (de = readdir(d)) != NULL;) {
		size_t len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 4, ".run") != 0 || !have_seed)
			continue;
		int fd = openat(dirfd, de->d_name, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < ML_TABLE_HEADER) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (map == MAP_FAILED)
			continue;
		struct ml_table t;
		char why[256];
		if (ml_tload64((const uint8_t *)map + 40) != seed) {
			/* of another seed: the open removes it (not damage) */
		} else if (ml_table_open(&t, map, (size_t)st.st_size, ML_RUN_MAGIC, seed) != 0 ||
			   ml_table_verify(&t) != 0) {
			snprintf(why, sizeof(why), "%s", ml_diag_last());
			rc = damaged(dirfd, de->d_name, why, repair, r);
		} else {
			r->index_runs++;
		}
		munmap(map, (size_t)st.st_size);
	}
	if (d)
		closedir(d);
	return rc;
}
