/*
 * snapshot.c - a script's state on disk: DATA/scripts/NAME.snap.
 *
 * The file is one msgpack map: { moonlog = "snapshot", version = 1, script,
 * kind, hash, position, state }. It is written atomically (a temporary file,
 * fsync, rename, fsync of the folder), so a crash leaves the old snapshot or
 * the new one, never a mix. The hash is that of the script's code and of the
 * library: a snapshot taken by other code is refused, and the caller rebuilds
 * the state from the log instead of trusting a state the new code would not
 * have produced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include <moonlog/codec.h>

#include "script_internal.h"

#define SNAP_VERSION 1

static void snap_path(char *out, size_t n, const char *dir, const char *name, const char *ext)
{
	snprintf(out, n, "%s/scripts/%s.snap%s", dir, name, ext);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Writes bytes to path atomically. */
static int write_atomic(const char *dir, const char *path, const char *tmp, const struct ml_buf *b)
{
	char folder[4096];
	snprintf(folder, sizeof(folder), "%s/scripts", dir);
	if (ml_mkdir_private(folder, NULL) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot create %s: %s", folder, strerror(errno));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, ML_FILE_MODE);
	if (fd < 0)
		return ml_diag_set(ML_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
	if (write_all(fd, b->data, b->len) != 0 || fsync(fd) != 0) {
		int err = errno;
		close(fd);
		unlink(tmp);
		return ml_diag_set(ML_ERR_IO, "cannot write %s: %s", tmp, strerror(err));
	}
	close(fd);
	if (rename(tmp, path) != 0 || sync_dir(folder) != 0) {
		int err = errno;
		unlink(tmp);
		return ml_diag_set(ML_ERR_IO, "cannot put the snapshot in place at %s: %s", path,
				   strerror(err));
	}
	return 0;
}

int ml_script_snapshot_save(struct ml_script *s, const char *data_dir)
{
	struct ml_buf state = {0}, file = {0};
	if (ml_script_state(s, &state) != 0)
		return -1;
	ml_msgpack_put_map(&file, 7);
	ml_msgpack_put_cstr(&file, "moonlog");
	ml_msgpack_put_cstr(&file, "snapshot");
	ml_msgpack_put_cstr(&file, "version");
	ml_msgpack_put_uint(&file, SNAP_VERSION);
	ml_msgpack_put_cstr(&file, "script");
	ml_msgpack_put_cstr(&file, s->name);
	ml_msgpack_put_cstr(&file, "kind");
	ml_msgpack_put_cstr(&file, ml_script_kind_name(s->kind));
	ml_msgpack_put_cstr(&file, "hash");
	ml_msgpack_put_cstr(&file, s->hash);
	ml_msgpack_put_cstr(&file, "position");
	ml_msgpack_put_uint(&file, s->position);
	ml_msgpack_put_cstr(&file, "state");
	ml_buf_add(&file, state.data, state.len);
	ml_buf_free(&state);

	char path[4096], tmp[4096];
	snap_path(path, sizeof(path), data_dir, s->name, "");
	snap_path(tmp, sizeof(tmp), data_dir, s->name, ".tmp");
	int rc = write_atomic(data_dir, path, tmp, &file);
	ml_buf_free(&file);
	return rc;
}

/* The header fields of a snapshot, and where its state's bytes are. */
struct snap {
	const char *hash, *script;
	uint32_t hash_len, script_len;
	uint64_t position, version;
	const uint8_t *state;
	size_t state_len;
	int marked;
};

static int parse_field(struct ml_msgpack_reader *r, const struct ml_msgpack_obj *k, struct snap *sn)
{
	struct ml_msgpack_obj v = {0}; /* ml_msgpack_read sets it; gcc -O3 cannot tell */
	const uint8_t *at = r->p;
#define KEY(s) (k->n == sizeof(s) - 1 && memcmp(k->ptr, s, k->n) == 0)
	if (KEY("state")) {
		if (ml_msgpack_skip(r, NULL, NULL) != 0)
			return -1;
		sn->state = at;
		sn->state_len = (size_t)(r->p - at);
		return 0;
	}
	if (ml_msgpack_read(r, &v) != 0)
		return -1;
	if (KEY("moonlog"))
		sn->marked = v.kind == ML_MP_STR && v.n == 8 && memcmp(v.ptr, "snapshot", 8) == 0;
	else if (KEY("version") && v.kind == ML_MP_INT)
		sn->version = (uint64_t)v.v.i;
	else if (KEY("position") && v.kind == ML_MP_INT)
		sn->position = (uint64_t)v.v.i;
	else if (KEY("hash") && v.kind == ML_MP_STR)
		sn->hash = v.ptr, sn->hash_len = v.n;
	else if (KEY("script") && v.kind == ML_MP_STR)
		sn->script = v.ptr, sn->script_len = v.n;
	else if (v.kind == ML_MP_ARRAY || v.kind == ML_MP_MAP)
		/* a field of a later version: its elements (or pairs) too */
		return ml_msgpack_skip_n(r, v.kind == ML_MP_MAP ? 2 * (uint64_t)v.n : v.n);
#undef KEY
	return 0;
}

static int parse(const struct ml_buf *b, struct snap *sn, const char *path)
{
	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	memset(sn, 0, sizeof(*sn));
	ml_msgpack_reader_init(&r, b->data, b->len);
	if (ml_msgpack_read(&r, &o) != 0 || o.kind != ML_MP_MAP)
		goto bad;
	for (uint32_t i = 0; i < o.n; i++) {
		struct ml_msgpack_obj k;
		if (ml_msgpack_read(&r, &k) != 0 || k.kind != ML_MP_STR || parse_field(&r, &k, sn))
			goto bad;
	}
	if (sn->marked && sn->version == SNAP_VERSION && sn->hash && sn->state)
		return 0;
bad:
	return ml_diag_set(ML_ERR_CORRUPT,
			   "%s is not a moonlog snapshot this version can read; delete it to "
			   "rebuild the state from the log",
			   path);
}

static int read_file(const char *path, struct ml_buf *b)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return errno == ENOENT
			   ? 0
			   : ml_diag_set(ML_ERR_IO, "cannot read %s: %s", path, strerror(errno));
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ml_buf_add(b, chunk, n);
	int err = ferror(f);
	fclose(f);
	return err ? ml_diag_set(ML_ERR_IO, "cannot read %s", path) : 1;
}

struct restore {
	const struct snap *sn;
};

static int l_restore(lua_State *L)
{
	struct restore *r = lua_touserdata(L, 2);
	lua_getfield(L, 1, "set");
	if (ml_lua_push_msgpack(L, r->sn->state, r->sn->state_len) != 0)
		luaL_error(L, "the snapshot's state: %s", ml_diag_last());
	lua_call(L, 1, 0);
	return 0;
}

int ml_script_snapshot_load(struct ml_script *s, const char *data_dir)
{
	char path[4096];
	struct ml_buf b = {0};
	struct snap sn;
	snap_path(path, sizeof(path), data_dir, s->name, "");
	int rc = read_file(path, &b);
	if (rc <= 0 || parse(&b, &sn, path) != 0) {
		ml_buf_free(&b);
		return rc <= 0 ? rc : -1;
	}
	if (sn.hash_len != strlen(s->hash) || memcmp(sn.hash, s->hash, sn.hash_len) != 0) {
		rc = ml_diag_set(
		    ML_ERR_REFUSED,
		    "the snapshot %s was taken with other code (hash %.*s, the script's "
		    "is %s): rebuild the state from the log",
		    path, (int)sn.hash_len, sn.hash, s->hash);
	} else {
		struct restore r = {&sn};
		rc = ml_script_pcall(s, l_restore, &r, 0, "restoring the snapshot", 0);
		if (rc == 0) {
			s->position = sn.position;
			rc = 1;
		}
	}
	ml_buf_free(&b);
	return rc;
}

/*
 * Fault records: DATA/scripts/NAME.fault, two lines of text, "HASH POSITION" and
 * the reason. A script that reached a limit at an event (or got stuck there and
 * took the process down) would only do it again after a restart, stalling the
 * loop each time; with the record, the same code starts faulted at that event
 * instead (a handler that skips or parks does that without running it).
 */
static void fault_path(char *out, size_t n, const char *dir, const char *name, const char *ext)
{
	snprintf(out, n, "%s/scripts/%s.fault%s", dir, name, ext);
}

int ml_script_fault_record(const char *data_dir, const char *name, const char *hash,
			   uint64_t position, const char *reason)
{
	char path[4096], tmp[4096];
	struct ml_buf b = {0};
	ml_buf_addf(&b, "%s %llu\n%s\n", hash, (unsigned long long)position, reason);
	fault_path(path, sizeof(path), data_dir, name, "");
	fault_path(tmp, sizeof(tmp), data_dir, name, ".tmp");
	int rc = write_atomic(data_dir, path, tmp, &b);
	ml_buf_free(&b);
	return rc;
}

int ml_script_fault_recorded(const struct ml_script *s, const char *data_dir, uint64_t *position,
			     char **reason)
{
	char path[4096];
	struct ml_buf b = {0};
	fault_path(path, sizeof(path), data_dir, s->name, "");
	int rc = read_file(path, &b);
	if (rc <= 0)
		return rc;
	ml_buf_add(&b, "", 1);
	char hash[17];
	unsigned long long pos;
	char *nl = strchr(b.data, '\n');
	rc = 0;
	if (nl && sscanf(b.data, "%16s %llu", hash, &pos) == 2 && strcmp(hash, s->hash) == 0) {
		char *end = strchr(nl + 1, '\n');
		*position = pos;
		*reason = ml_xstrndup(nl + 1, end ? (size_t)(end - nl - 1) : strlen(nl + 1));
		rc = 1;
	}
	ml_buf_free(&b);
	return rc;
}

void ml_script_fault_forget(const char *data_dir, const char *name)
{
	char path[4096];
	fault_path(path, sizeof(path), data_dir, name, "");
	unlink(path);
}
