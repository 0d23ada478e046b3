/*
 * fuzz_rpc.c - bytes from an RPC client: the framing of msgpack objects
 * (ml_msgpack_frame, codec/msgpack_read.c) and the requests of every method
 * (net/rpc.c, rpc_scripts.c, then the log, the router and the hosted scripts
 * behind them).
 *
 * The input is what a client sends on one connection, requests back to back.
 * It reaches a real server in this process (fuzz_server.c) through the same
 * path as bytes read from a socket, in two pieces, so that a request cut in
 * the middle is framed across reads; the answers come back on a socket pair.
 *
 * Promises held: framing in pieces agrees with framing at once; everything the
 * server sends is a sequence of whole msgpack-RPC messages ([1, msgid, error,
 * result] or [2, method, params]) the validator accepts; while the connection
 * stays open, every message framed from the input gets exactly one answer or
 * `error` notification; and every event that reads and subscriptions give out
 * holds data and meta of the kind the log stores (docs/codec.md).
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/server.h>

#include "fuzz.h"
#include "fuzz_server.h"
#include <moonlog/msgpack.h>
#include "net/net_internal.h"

/* Frames buf whole and in two pieces cut at `cut`: the resumed walk must agree. */
static int frame_both_ways(const uint8_t *buf, size_t n, size_t cut, size_t *len)
{
	struct ml_msgpack_walk w = {0, 0};
	size_t len2 = 0;
	int rc = ml_msgpack_frame(buf, n, len);
	int rc2 = ml_msgpack_frame_resume(buf, cut, &w, &len2);
	if (rc2 == 1)
		rc2 = ml_msgpack_frame_resume(buf, n, &w, &len2);
	FUZZ_ASSERT(rc == rc2 && (rc != 0 || *len == len2),
		    "framing %zu bytes at once gave %d (%zu bytes), cut at %zu gave %d (%zu)", n,
		    rc, *len, cut, rc2, len2);
	return rc;
}

/* The msgids of the input's requests, and which are reads, whose answers are events. */
struct asked {
	struct {
		uint64_t msgid;
		int read;
	} req[256];
	size_t n;
};

/* Opens the msgpack-RPC message p[0..len): an array of n elements, the first its type. */
static int open_message(struct ml_msgpack_reader *r, const uint8_t *p, size_t len, uint32_t *n,
			int64_t *type)
{
	ml_msgpack_reader_init(r, p, len);
	return ml_msgpack_get_array(r, n) == 0 && ml_msgpack_get_int(r, type) == 0 ? 0 : -1;
}

static void note_request(const uint8_t *p, size_t len, struct asked *asked)
{
	struct ml_msgpack_reader r;
	uint32_t n, mlen;
	int64_t type;
	uint64_t msgid;
	const char *m;
	if (asked->n == sizeof(asked->req) / sizeof(asked->req[0]) ||
	    open_message(&r, p, len, &n, &type) != 0 || n != 4 || type != 0 ||
	    ml_msgpack_get_uint(&r, &msgid) != 0)
		return;
	asked->req[asked->n].msgid = msgid;
	asked->req[asked->n++].read =
	    ml_msgpack_get_str(&r, &m, &mlen) == 0 && mlen == 4 && memcmp(m, "read", 4) == 0;
}

/* Is every request with this msgid a read (so that its answer is surely one's)? */
static int answers_a_read(const struct asked *asked, uint64_t msgid)
{
	int reads = 0;
	for (size_t i = 0; i < asked->n; i++) {
		if (asked->req[i].msgid != msgid)
			continue;
		if (!asked->req[i].read)
			return 0;
		reads++;
	}
	return reads > 0 && asked->n < sizeof(asked->req) / sizeof(asked->req[0]);
}

/* How many requests the server will dispatch from the input (it frames the same way). */
static size_t count_messages(const uint8_t *p, size_t n, size_t max_request, struct asked *asked)
{
	size_t count = 0, len;
	while (n > 0 && frame_both_ways(p, n, (size_t)p[0] % (n + 1), &len) == 0 &&
	       len <= max_request) {
		note_request(p, len, asked);
		count++;
		p += len, n -= len;
	}
	return count;
}

/* An event the log gave out: its data and meta are values the log stores (docs/codec.md). */
static void check_event(struct ml_msgpack_reader *r)
{
	uint32_t n, klen;
	const char *k;
	const uint8_t *raw;
	size_t rlen;
	FUZZ_ASSERT(ml_msgpack_get_map(r, &n) == 0, "an event that is not a map");
	for (uint32_t i = 0; i < n; i++) {
		FUZZ_ASSERT(ml_msgpack_get_str(r, &k, &klen) == 0 &&
				ml_msgpack_skip(r, &raw, &rlen) == 0,
			    "an event's keys are strings");
		if ((klen == 4 && (memcmp(k, "data", 4) == 0 || memcmp(k, "meta", 4) == 0)) &&
		    !(rlen == 1 && raw[0] == 0xc0))
			FUZZ_ASSERT(
			    ml_msgpack_check_value(raw, rlen, k[0] == 'd' ? "data" : "meta") == 0,
			    "the log gave out an event the log would not store");
	}
}

/*
 * Checks what the server sent; returns the answers and `error` notifications in it. A
 * connection the server closed may end in the middle of a message (a read that failed
 * half-way, an error it could not finish sending). The events in read answers and in
 * subscriptions' notifications are checked too.
 */
static size_t check_output(const struct ml_buf *out, int closed_by_server,
			   const struct asked *asked)
{
	const uint8_t *p = (const uint8_t *)out->data, *end = p + out->len;
	size_t answers = 0, len;
	while (p < end) {
		int rc = ml_msgpack_frame(p, (size_t)(end - p), &len);
		if (rc == 1 && closed_by_server)
			break;
		FUZZ_ASSERT(rc == 0, "the server sent bytes that are not whole msgpack (%zu left)",
			    (size_t)(end - p));
		FUZZ_ASSERT(ml_msgpack_check(p, len) == 0, "the server sent invalid msgpack");
		struct ml_msgpack_reader r;
		uint32_t n, k;
		int64_t type;
		uint64_t msgid;
		const char *method;
		uint32_t mlen;
		FUZZ_ASSERT(open_message(&r, p, len, &n, &type) == 0,
			    "an answer that is not an array starting with its type");
		FUZZ_ASSERT((type == 1 && n == 4) || (type == 2 && n == 3),
			    "a message of type %lld with %u elements", (long long)type, n);
		if (type == 1) {
			answers++;
			FUZZ_ASSERT(ml_msgpack_get_uint(&r, &msgid) == 0,
				    "an answer without its msgid");
			if (answers_a_read(asked, msgid) && ml_msgpack_get_nil(&r) == 0 &&
			    ml_msgpack_get_array(&r, &k) == 0)
				for (uint32_t i = 0; i < k; i++)
					check_event(&r);
		} else {
			FUZZ_ASSERT(ml_msgpack_get_str(&r, &method, &mlen) == 0,
				    "a notification without a method name");
			answers += mlen == 5 && memcmp(method, "error", 5) == 0;
			if (mlen == 5 && memcmp(method, "event", 5) == 0) {
				FUZZ_ASSERT(ml_msgpack_get_array(&r, &k) == 0 && k == 2 &&
						ml_msgpack_skip(&r, NULL, NULL) == 0,
					    "an event notification is [subscription, event]");
				check_event(&r);
			}
		}
		p += len;
	}
	return answers;
}

/* The connection is still open (closed ones leave the server's list). */
static int is_open(struct ml_server *s, struct ml_conn *c)
{
	for (struct ml_conn *k = s->conns; k; k = k->next)
		if (k == c)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_server *s = fuzz_server(0);
	struct ml_buf out = {0};
	int fds[2];
	FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "no socket pair");
	ml_conn_accept(s, fds[0], CONN_TCP);
	struct ml_conn *c = s->conns;

	size_t cut = size ? (size_t)data[size - 1] * 131 % (size + 1) : 0;
	const uint8_t *piece[2] = {data, data + cut};
	size_t piece_len[2] = {cut, size - cut};
	for (int i = 0; i < 2 && is_open(s, c); i++) {
		ml_buf_add(&c->in, piece[i], piece_len[i]);
		ml_conn_received(c);
		fuzz_server_settle(s, fds[1], &out);
	}
	int stayed_open = is_open(s, c);
	if (stayed_open)
		ml_conn_close(c);
	fuzz_server_settle(s, fds[1], &out);
	fuzz_read_all(fds[1], &out);
	close(fds[1]);

	struct asked asked = {.n = 0};
	size_t requests = count_messages(data, size, s->o.max_request, &asked);
	size_t answers = check_output(&out, !stayed_open, &asked);
	FUZZ_ASSERT(!stayed_open || answers == requests, "%zu requests got %zu answers", requests,
		    answers);
	ml_buf_free(&out);
	return 0;
}
