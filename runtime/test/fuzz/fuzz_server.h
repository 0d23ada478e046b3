/*
 * fuzz_server.h - a real server in the fuzz target's own process, for the
 * targets that feed it requests (fuzz_rpc.c, fuzz_http.c).
 *
 * It serves a log in the scratch folder with hosted scripts (a decider, a
 * projection and a handler, so that commands and queries reach Lua), no
 * listeners but HTTP on an unused port of 127.0.0.1 when asked, and --fsync
 * never. Connections are socket pairs whose far end the target holds; the
 * loop is turned by hand until the server has nothing left to do. A server
 * serves a few hundred inputs, then a fresh one takes over, so that the log
 * stays small and one input's leftovers do not pile up.
 */
#ifndef ML_TEST_FUZZ_SERVER_H
#define ML_TEST_FUZZ_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/util.h>

struct ml_server;

/* The server for this run (new, or the last one), with HTTP when `http` is set. */
struct ml_server *fuzz_server(int http);
/*
 * Turns the loop until nothing is active and no append is in flight, reading what the
 * server sends to `peer` (when >= 0) into `out`. Asserts that this ends (a generous bound).
 */
void fuzz_server_settle(struct ml_server *s, int peer, struct ml_buf *out);
/* Reads what is waiting on fd (non-blocking) into out; 1 if the far end closed. */
int fuzz_read_all(int fd, struct ml_buf *out);

#endif
