/*
 * rpc_backup.c - the RPC method backup() (admin socket only): pins the head
 * and lists the files of the log that hold it (ml_log_backup_files), for
 * `moonlog backup` to hard-link or copy on the same machine. The server copies
 * nothing itself, so that a backup of a large log never holds its loop.
 */
#include <moonlog/log.h>

#include "net/ops.h"

/* backup() -> {position, first, dir, files = [{name, size, whole}]} */
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
	ml_msgpack_put_map(o, 4);
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
	ml_backup_free(&b);
	return 0;
}
