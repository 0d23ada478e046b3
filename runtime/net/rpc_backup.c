/*
 * rpc_backup.c - the RPC method backup() (admin socket only): pins the head
 * and lists the files of the log that hold it (ml_log_backup_files), for
 * `moonlog backup` to hard-link or copy on the same machine. The server copies
 * nothing itself, so that a backup of a large log never holds its loop; the
 * one thing it hands over as bytes is the retention file as of that head.
 */
#include <moonlog/log.h>

#include "net/ops.h"

/* backup() -> {position, first, dir, files = [{name, size, whole}], retention = bin} (the
 * retention file's bytes as of position, which the copy writes as its own; absent: none) */
int ml_rpc_backup(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	(void)r, (void)np;
	struct ml_backup b;
	ml_log_backup_files(c->srv->log, &b);
	struct ml_buf *o = &c->out;
	ml_msgpack_put_array(o, 4);
	ml_msgpack_put_uint(o, 1);
	ml_msgpack_put_uint(o, msgid);
	ml_msgpack_put_nil(o);
	int ret = b.retention && b.retention_len <= UINT32_MAX;
	ml_msgpack_put_map(o, ret ? 5 : 4);
	ml_msgpack_put_cstr(o, "position");
	ml_msgpack_put_uint(o, b.position);
	ml_msgpack_put_cstr(o, "first");
	ml_msgpack_put_uint(o, b.first);
	ml_msgpack_put_cstr(o, "dir");
	ml_msgpack_put_cstr(o, b.dir);
	ml_msgpack_put_cstr(o, "files");
	ml_msgpack_put_array(o, (uint32_t)b.n);
	for (size_t i = 0; i < b.n; i++) {
		ml_msgpack_put_map(o, 3);
		ml_msgpack_put_cstr(o, "name");
		ml_msgpack_put_cstr(o, b.files[i].name);
		ml_msgpack_put_cstr(o, "size");
		ml_msgpack_put_uint(o, b.files[i].size);
		ml_msgpack_put_cstr(o, "whole");
		ml_msgpack_put_bool(o, b.files[i].whole);
	}
	if (ret) {
		ml_msgpack_put_cstr(o, "retention");
		ml_msgpack_done(o, ml_msgpack_write_tagged(ml_msgpack_room(o, 5), 0xc6,
							   b.retention_len, 4)); /* bin 32 */
		ml_buf_add(o, b.retention, b.retention_len);
	}
	ml_backup_free(&b);
	return 0;
}
