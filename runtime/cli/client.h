/*
 * client.h - a small blocking msgpack-RPC client for the command line:
 * --connect ADDR, and the admin socket of a server that holds a data folder.
 */
#ifndef ML_CLI_CLIENT_H
#define ML_CLI_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/log.h>
#include <moonlog/util.h>

#include <moonlog/msgpack.h>

struct cli_client {
	int fd;
	uint32_t next_id;
	struct ml_buf in; /* bytes read, not yet taken */
	size_t in_off;
	struct ml_msgpack_walk walk; /* how far the next message has been framed */
};

/* Connects to HOST:PORT or to a Unix socket path (anything with a '/'). -1 with diag. */
int cli_client_connect(struct cli_client *c, const char *addr);
/* The admin socket of a server holding DIR, if one answers there: 0, else -1 (quietly). */
int cli_client_admin(struct cli_client *c, const char *dir);
void cli_client_close(struct cli_client *c);

/*
 * Sends [0, id, method, params] where params is the msgpack array already in `params`,
 * and waits for its answer. Returns 0 with *result pointing at the result; -1 with diag
 * (the server's error message, its code as the diag code; *actual set on conflicts).
 */
int cli_client_call(struct cli_client *c, const char *method, const struct ml_buf *params,
		    struct ml_msgpack_reader *result);
/*
 * Waits for the next message of any kind; 0 with *msg at it, -1 when the connection ends.
 * The message stays in the client's buffer: it is valid until the next call on c.
 */
int cli_client_next(struct cli_client *c, struct ml_msgpack_reader *msg);

/*
 * For a client that pipelines calls on a non-blocking socket (the benchmarks):
 * cli_client_read_some reads what has arrived into c->in, after what is not taken yet:
 * 1 when bytes came, 0 when none were waiting, -1 when the connection ended or failed.
 * cli_client_take_answers reads what has arrived and takes every whole answer
 * [1, id, error, result] out of c->in: one call less *outstanding, and one more *ok (no
 * error) or *failed. 0, or -1 when the connection ended or sent what is not msgpack.
 */
int cli_client_read_some(struct cli_client *c);
int cli_client_take_answers(struct cli_client *c, uint64_t *outstanding, uint64_t *ok,
			    uint64_t *failed);

/* Reads one event map into e (pointers into the message). */
int cli_client_event(struct ml_msgpack_reader *r, struct ml_event *e);

/*
 * `append` and `read` through a server: over --connect ADDR, or (addr NULL) through
 * the admin socket of the server holding dir. Return the exit status, or -1 when
 * addr is NULL and no server holds dir (the command then opens the log itself).
 */
/* The connection a command asked for: --connect ADDR (1, or -1 with diag), else the admin
 * socket of the server holding dir (1), or 0 when none does. */
int cli_remote_open(struct cli_client *c, const char *addr, const char *dir);
/* For commands that need a running server: --connect ADDR, else the admin socket of the
 * server holding dir, else the default 127.0.0.1:7420. 0, or -1 with diag. */
int cli_server_open(struct cli_client *c, const char *addr, const char *dir);
/* Reads an append's answer {position, version, duplicate, ...}: what it holds of them. */
void cli_append_result(struct ml_msgpack_reader *r, uint64_t *pos, uint64_t *ver, int *dup);
int cli_remote_append(const char *addr, const char *dir, const struct ml_event_in *e,
		      int64_t expect, int json);
int cli_remote_read(const char *addr, const char *dir, const char *stream, uint64_t from,
		    uint64_t limit, int back, int json);

/* bench_net.c: `bench append --connect [ADDR]` and `bench subscribe`. */
int cli_bench_net(int argc, char **argv, int subscribe);

#endif
