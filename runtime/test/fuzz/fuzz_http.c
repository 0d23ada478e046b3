/*
 * fuzz_http.c - bytes from an HTTP client: requests as libevent's evhttp
 * reads them, then our routes (net/http_route.c, http.c, http_scripts.c,
 * sse.c) with their paths, query strings, headers and JSON bodies.
 *
 * The input is what a client sends on one connection, requests back to back;
 * once the server has answered what it can, the client hangs up. It reaches a real server in this
 * process (fuzz_server.c) through a TCP connection to its HTTP port on 127.0.0.1.
 *
 * Promises held: nothing crashes or hangs; what comes back is a sequence of
 * HTTP responses, each body declared JSON reads as JSON (the JSON Lines and
 * arrays the routes write included), and each server-sent event's data line
 * too.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/server.h>

#include "fuzz.h"
#include "fuzz_server.h"

static const char *find(const char *p, const char *end, const char *what)
{
	size_t n = strlen(what);
	for (; p + n <= end; p++)
		if (memcmp(p, what, n) == 0)
			return p;
	return NULL;
}

/* The value of header `name` in the head [p, end), or NULL. */
static const char *header(const char *p, const char *end, const char *name, size_t *len)
{
	size_t n = strlen(name);
	for (const char *line = p; line && line < end;) {
		const char *eol = find(line, end, "\r\n");
		if (eol == NULL)
			break;
		if ((size_t)(eol - line) > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1;
			while (v < eol && *v == ' ')
				v++;
			*len = (size_t)(eol - v);
			return v;
		}
		line = eol + 2;
	}
	return NULL;
}

static void check_json(const char *p, size_t n, const char *what)
{
	struct ml_buf mp = {0};
	FUZZ_ASSERT(ml_json_to_msgpack(p, n, &mp) == 0, "%s is not JSON: %.*s", what, (int)n, p);
	ml_buf_free(&mp);
}

/* Server-sent events: each `data:` line is one event's JSON. */
static void check_events(const char *p, const char *end)
{
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break; /* a last line cut off when the stream was closed */
		if (eol - p > 6 && memcmp(p, "data: ", 6) == 0)
			check_json(p + 6, (size_t)(eol - p - 6), "an event's data");
		p = eol + 1;
	}
}

/* Joins the chunks of a chunked body into out; returns where the body ends. */
static const char *unchunk(const char *p, const char *end, struct ml_buf *out)
{
	while (p < end) {
		char *after;
		unsigned long n = strtoul(p, &after, 16);
		const char *eol = find(p, end, "\r\n");
		if (eol == NULL || after == p)
			return end;
		p = eol + 2;
		if (n == 0)
			return p + 2 <= end ? p + 2 : end;
		if ((size_t)(end - p) < n)
			n = (unsigned long)(end - p);
		ml_buf_add(out, p, n);
		p += n + 2;
	}
	return end;
}

/*
 * Walks the responses. The requests are not parsed here, so an answer to HEAD is known
 * by its form: no length and no body, the next response right after its head.
 */
static void check_responses(const char *p, const char *end)
{
	while (p < end) {
		/* libevent answers in the request's version, HTTP/0.1 and HTTP/1.31 included */
		FUZZ_ASSERT(end - p >= 5 && memcmp(p, "HTTP/", 5) == 0,
			    "the server sent something that is not an HTTP response: %.*s",
			    (int)(end - p < 80 ? end - p : 80), p);
		const char *head_end = find(p, end, "\r\n\r\n");
		if (head_end == NULL)
			return; /* cut off: the far end stopped reading */
		const char *body = head_end + 4, *next = end;
		size_t tlen = 0, clen = 0, elen = 0;
		const char *type = header(p, head_end + 2, "Content-Type", &tlen);
		const char *length = header(p, head_end + 2, "Content-Length", &clen);
		const char *enc = header(p, head_end + 2, "Transfer-Encoding", &elen);
		struct ml_buf b = {0};
		if (enc && elen == 7 && strncasecmp(enc, "chunked", 7) == 0) {
			next = unchunk(body, end, &b);
		} else if (length) {
			size_t n = strtoul(length, NULL, 10);
			if ((size_t)(end - body) < n)
				n = (size_t)(end - body);
			ml_buf_add(&b, body, n);
			next = body + n;
		} else if (memcmp(p, "HTTP/1.", 7) == 0) {
			/* HTTP/1.0: the body runs to the end; or HEAD's answer, with none */
			ml_buf_add(&b, body, (size_t)(end - body));
		} else {
			return; /* an answer in a version libevent took (HTTP/-129.1): unframed */
		}
		int head_only =
		    (!length && b.len == 0) || (b.len >= 5 && memcmp(b.data, "HTTP/", 5) == 0);
		if (head_only) {
			next = body;
		} else if (type && tlen >= 16 && memcmp(type, "application/json", 16) == 0) {
			check_json(b.data ? b.data : "", b.len, "a JSON body");
		} else if (type && tlen >= 17 && memcmp(type, "text/event-stream", 17) == 0) {
			check_events(b.data, b.data + b.len);
		}
		ml_buf_free(&b);
		p = next;
	}
}

/* A client connection to the server's HTTP port; closed with a reset, so that thousands
 * of them a second leave no TIME_WAIT behind. */
static int connect_http(struct ml_server *s)
{
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)ml_server_http_port(s)),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct linger reset = {1, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FUZZ_ASSERT(fd >= 0, "no socket");
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	int rc = connect(fd, (struct sockaddr *)&to, sizeof(to));
	FUZZ_ASSERT(rc == 0 || errno == EINPROGRESS, "cannot connect to the server: %s",
		    strerror(errno));
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ml_server *s = fuzz_server(1);
	struct ml_buf out = {0};
	int fd = connect_http(s);
	fuzz_server_settle(s, fd, &out);      /* accepted */
	for (size_t sent = 0; sent < size;) { /* more than the socket holds: let the server read */
		ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
		if (w > 0)
			sent += (size_t)w;
		else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			fuzz_server_settle(s, fd, &out);
		else
			break; /* the server has closed: it took what it wanted */
	}
	/* No half-close: evhttp drops the pipelined requests it has not begun once it sees
	 * the end of the input. The server answers what it can, then we hang up. */
	fuzz_server_settle(s, fd, &out);
	close(fd);
	fuzz_server_settle(s, -1, NULL);
	check_responses(out.data, out.data + out.len);
	ml_buf_free(&out);
	return 0;
}
