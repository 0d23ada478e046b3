/*
 * cmd_backup.c - `moonlog backup` and `moonlog restore`: a consistent copy of
 * a running server's log, and a data folder made from one.
 *
 * backup asks the server (admin socket, RPC method backup()) to pin its head
 * and list the files that hold the log up to it (ml_log_backup_files); the
 * server copies nothing. This process then hard-links each finished file into
 * DEST/log (a copy where the file system refuses a link: another device) and
 * copies the last segment up to the pinned position, and writes the retention
 * file (the deletions and metadata in force) as of that position, which the
 * server hands over as bytes. Every file is synced, then the folder. DEST is a data folder:
 * `moonlog serve --data DEST` serves it.
 *
 * restore makes DATA from a backup: the finished files linked (they are never
 * written again, by either side), the last segment copied (the server will
 * append to it), then checks the result with ml_log_check.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char backup_help[] =
    "usage: moonlog backup [--data DIR] DEST\n"
    "\n"
    "Makes DEST a consistent copy of the log of the server running on DIR, up to the\n"
    "last position it had acknowledged when asked (printed at the end), while it goes\n"
    "on serving. Finished segments and index files are hard-linked where DEST is on\n"
    "the same file system (else copied); the last segment is copied up to that\n"
    "position, and the deletions and retention limits in force at it are kept with it.\n"
    "DEST must not exist or be empty. `moonlog serve --data DEST` serves the\n"
    "copy, and `moonlog restore DEST DATA` makes a new data folder from it.\n"
    "\n"
    "  --data DIR   the data folder of the running server (default ./moonlog-data); the\n"
    "               backup goes through its admin socket, DIR/moonlog.sock\n";

static const char restore_help[] =
    "usage: moonlog restore BACKUP DATA\n"
    "\n"
    "Makes the data folder DATA from a backup (moonlog backup) and checks every record\n"
    "of it (moonlog check). DATA must not exist or be empty. A server started on DATA\n"
    "serves the same events at the same positions as the server the backup was taken\n"
    "from, up to the backup's position.\n";

/* An empty folder or none: created (0700) with its log/ folder. 0, or a status. */
static int empty_folder(const char *cmd, const char *dir, char *logdir, size_t cap)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		int nonempty = 0;
		while (!nonempty && (de = readdir(d)) != NULL)
			nonempty = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
		closedir(d);
		if (nonempty)
			return cli_fail(cmd, CLI_REFUSED,
					"%s is not empty; give a new folder (or empty this one)",
					dir);
	}
	snprintf(logdir, cap, "%s/log", dir);
	if (ml_mkdir_private(dir, NULL) != 0 || ml_mkdir_private(logdir, NULL) != 0)
		return cli_diag(cmd);
	return CLI_OK;
}

/* Copies the first `size` bytes of from into a new file `to` (size UINT64_MAX: all). */
static int copy_file(const char *from, const char *to, uint64_t size)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	uint64_t done = 0;
	char *buf = NULL;
	int rc = 0;
	while (done < size) {
		size_t want = size - done > (1u << 20) ? (1u << 20) : (size_t)(size - done);
		ssize_t n = copy_file_range(in, NULL, out, NULL, want, 0);
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
			if (buf == NULL)
				buf = ml_xmalloc(1u << 20);
			n = pread(in, buf, want, (off_t)done);
			if (n > 0 && write(out, buf, (size_t)n) != n)
				n = -1;
		}
		if (n <= 0) {
			rc = n == 0 && size != UINT64_MAX ? (errno = EIO, -1) : n < 0 ? -1 : 0;
			break;
		}
		done += (uint64_t)n;
	}
	free(buf);
	if (rc == 0 && fsync(out) != 0)
		rc = -1;
	int e = errno;
	close(in);
	close(out);
	errno = e;
	return rc;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 || fsync(fd) != 0 ? -1 : 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

struct take {
	uint64_t linked, copied, bytes, skipped;
};

/*
 * One file from `from` into `to`: a hard link when whole (a copy across devices), else
 * its first `size` bytes. A whole .run that is gone (merged) is skipped. 0 or -1 (errno).
 */
static int take_file(const char *from, const char *to, const char *name, int whole, uint64_t size,
		     struct take *t)
{
	char src[PATH_MAX], dst[PATH_MAX];
	snprintf(src, sizeof(src), "%s/%s", from, name);
	snprintf(dst, sizeof(dst), "%s/%s", to, name);
	struct stat st;
	if (whole && link(src, dst) == 0) {
		t->linked++;
		if (stat(dst, &st) == 0)
			t->bytes += (uint64_t)st.st_size;
		return 0;
	}
	if (whole && errno == ENOENT && strstr(name, ".run")) {
		t->skipped++;
		return 0;
	}
	if (whole && errno != EXDEV && errno != EPERM && errno != EMLINK)
		return -1;
	if (copy_file(src, dst, whole ? UINT64_MAX : size) != 0)
		return -1;
	t->copied++;
	t->bytes += stat(dst, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

/*
 * The deletions and retention metadata in force at the backup's position, as the server
 * handed them over: DEST/log/retention (the name the log gives that file, docs/log.md), so
 * that the copy keeps them even where it could not rebuild them from its segments (a log
 * whose first segments were dropped). 0 or -1 (errno).
 */
static int write_retention(const char *logdir, const struct ml_backup *b)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/retention", logdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	const char *p = b->retention;
	size_t left = b->retention_len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n, left -= (size_t)n;
	}
	int rc = left == 0 && fsync(fd) == 0 ? 0 : -1;
	int e = left ? EIO : errno;
	close(fd);
	errno = e;
	return rc;
}

/* The backup() answer: its position, first, dir, files and retention, read into b. 0 or -1. */
static int read_listing(struct ml_msgpack_reader *r, struct ml_backup *b)
{
	uint32_t n, kl, sl, nf;
	const char *k, *s;
	*b = (struct ml_backup){0};
	if (ml_msgpack_get_map(r, &n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		if (ml_msgpack_get_str(r, &k, &kl) != 0)
			return -1;
		if (kl == 8 && memcmp(k, "position", 8) == 0) {
			if (ml_msgpack_get_uint(r, &b->position) != 0)
				return -1;
		} else if (kl == 9 && memcmp(k, "retention", 9) == 0) {
			struct ml_msgpack_obj o;
			if (ml_msgpack_read(r, &o) != 0 || o.kind != ML_MP_BIN)
				return -1;
			b->retention = ml_xmalloc(o.n ? o.n : 1);
			memcpy(b->retention, o.ptr, o.n);
			b->retention_len = o.n;
		} else if (kl == 3 && memcmp(k, "dir", 3) == 0) {
			if (ml_msgpack_get_str(r, &s, &sl) != 0 || sl >= sizeof(b->dir))
				return -1;
			memcpy(b->dir, s, sl), b->dir[sl] = '\0';
		} else if (kl == 5 && memcmp(k, "files", 5) == 0) {
			if (ml_msgpack_get_array(r, &nf) != 0)
				return -1;
			b->files = ml_xcalloc(nf ? nf : 1, sizeof(*b->files));
			for (uint32_t f = 0; f < nf; f++, b->n++) {
				struct ml_backup_file *bf = &b->files[f];
				uint32_t fk;
				if (ml_msgpack_get_map(r, &fk) != 0)
					return -1;
				for (uint32_t j = 0; j < fk; j++) {
					if (ml_msgpack_get_str(r, &k, &kl) != 0)
						return -1;
					if (kl == 4 && memcmp(k, "name", 4) == 0 &&
					    ml_msgpack_get_str(r, &s, &sl) == 0 &&
					    sl < sizeof(bf->name) && !memchr(s, '/', sl))
						memcpy(bf->name, s, sl), bf->name[sl] = '\0';
					else if (kl == 4 && memcmp(k, "size", 4) == 0)
						ml_msgpack_get_uint(r, &bf->size);
					else if (kl == 5 && memcmp(k, "whole", 5) == 0)
						ml_msgpack_get_bool(r, &bf->whole);
					else if (ml_msgpack_skip(r, NULL, NULL) != 0)
						return -1;
				}
			}
		} else if (ml_msgpack_skip(r, NULL, NULL) != 0) {
			return -1;
		}
	}
	return b->dir[0] ? 0 : -1;
}

int cmd_backup(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-data";
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'd')
			dir = optarg;
		else if (c == 'h')
			return fputs(backup_help, stdout), CLI_OK;
		else
			return cli_fail("backup", CLI_USAGE, "see moonlog backup --help");
	}
	if (optind + 1 != argc)
		return cli_fail("backup", CLI_USAGE, "needs one DEST folder for the copy");
	const char *dest = argv[optind];
	struct cli_client cl;
	if (cli_client_admin(&cl, dir) != 0)
		return cli_fail(
		    "backup", CLI_REFUSED,
		    "no server answers on %s/moonlog.sock; start it (or give its folder "
		    "with --data DIR), or copy a stopped log's folder as it is",
		    dir);
	uint64_t t0 = ml_clock_ns();
	struct ml_buf p = {0};
	ml_msgpack_put_array(&p, 0);
	struct ml_msgpack_reader r;
	struct ml_backup b = {0};
	int rc = cli_client_call(&cl, "backup", &p, &r);
	ml_buf_free(&p);
	if (rc != 0) {
		rc = cli_diag("backup");
		cli_client_close(&cl);
		return rc;
	}
	if (read_listing(&r, &b) != 0) {
		ml_backup_free(&b);
		cli_client_close(&cl);
		return cli_fail("backup", CLI_REFUSED,
				"the server's answer to backup() is not a file list; is it the "
				"same moonlog version as this one?");
	}
	cli_client_close(&cl);
	char logdir[PATH_MAX];
	struct take t = {0};
	rc = empty_folder("backup", dest, logdir, sizeof(logdir));
	for (size_t i = 0; rc == CLI_OK && i < b.n; i++)
		if (take_file(b.dir, logdir, b.files[i].name, b.files[i].whole, b.files[i].size,
			      &t) != 0)
			rc = cli_fail("backup", CLI_REFUSED, "cannot copy %s/%s to %s: %s", b.dir,
				      b.files[i].name, logdir, strerror(errno));
	if (rc == CLI_OK && b.retention && write_retention(logdir, &b) != 0)
		rc = cli_fail("backup", CLI_REFUSED, "cannot write %s/retention: %s", logdir,
			      strerror(errno));
	if (rc == CLI_OK && (sync_dir(logdir) != 0 || sync_dir(dest) != 0))
		rc = cli_fail("backup", CLI_REFUSED, "cannot sync %s: %s", logdir, strerror(errno));
	if (rc == CLI_OK) {
		double s = (double)(ml_clock_ns() - t0) / 1e9;
		printf("backup: %s holds the log up to position %" PRIu64 ": %" PRIu64
		       " files linked, %" PRIu64 " copied, %.1f MB in %.2f s (%.0f MB/s)\n",
		       dest, b.position, t.linked, t.copied, (double)t.bytes / 1e6, s,
		       s > 0 ? (double)t.bytes / 1e6 / s : 0.0);
	}
	ml_backup_free(&b);
	return rc;
}

int cmd_restore(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return fputs(restore_help, stdout), CLI_OK;
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-')
		return cli_fail("restore", CLI_USAGE, "needs BACKUP and DATA; see --help");
	const char *from = argv[1], *to = argv[2];
	char src[PATH_MAX], logdir[PATH_MAX];
	snprintf(src, sizeof(src), "%s/log", from);
	struct ml_check_report rep;
	if (ml_log_check(from, 0, &rep) != 0 || rep.segments == 0)
		return rep.segments == 0 && ml_diag_code() == ML_OK
			   ? cli_fail("restore", CLI_REFUSED,
				      "%s holds no log (no %s/*.seg); give the folder a moonlog "
				      "backup made",
				      from, src)
			   : cli_diag("restore");
	int rc = empty_folder("restore", to, logdir, sizeof(logdir));
	struct dirent **names = NULL;
	int n = rc == CLI_OK ? scandir(src, &names, NULL, alphasort) : 0;
	if (n < 0)
		rc = cli_fail("restore", CLI_REFUSED, "cannot list %s: %s", src, strerror(errno)),
		n = 0;
	/* the last segment (names sort by position) is copied: the server appends to it */
	const char *last_seg = "";
	for (int i = 0; i < n; i++)
		if (strstr(names[i]->d_name, ".seg"))
			last_seg = names[i]->d_name;
	struct take t = {0};
	for (int i = 0; i < n && rc == CLI_OK; i++) {
		const char *name = names[i]->d_name;
		if (name[0] == '.' || strcmp(name, "LOCK") == 0 || strstr(name, ".tmp"))
			continue;
		if (take_file(src, logdir, name, strcmp(name, last_seg) != 0, UINT64_MAX, &t) != 0)
			rc = cli_fail("restore", CLI_REFUSED, "cannot copy %s/%s to %s: %s", src,
				      name, logdir, strerror(errno));
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc == CLI_OK && (sync_dir(logdir) != 0 || sync_dir(to) != 0))
		rc =
		    cli_fail("restore", CLI_REFUSED, "cannot sync %s: %s", logdir, strerror(errno));
	if (rc == CLI_OK && ml_log_check(to, 0, &rep) != 0)
		rc = cli_diag("restore");
	if (rc == CLI_OK)
		printf("restore: %s holds %" PRIu64 " events, last position %" PRIu64 " (%" PRIu64
		       " files linked, %" PRIu64 " copied); check: ok\n",
		       to, rep.records, rep.last_position, t.linked, t.copied);
	return rc;
}
