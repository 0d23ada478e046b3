/*
 * client.c - the command line's msgpack-RPC client (see client.h). Blocking
 * and one request at a time, except for the notifications a subscription
 * streams, which cli_client_next hands out in order, and the pipelined calls
 * of the benchmarks, whose answers cli_client_take_answers counts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "cli/cli.h"
#include "cli/client.h"

static int connect_unix(struct cli_client *c, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path))
		return ml_diag_set(ML_ERR_USAGE, "the socket path %s is too long", path);
	strcpy(sun.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int e = errno;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return ml_diag_set(ML_ERR_IO, "cannot connect to %s: %s", path, strerror(e));
	}
	return 0;
}

static int connect_tcp(struct cli_client *c, const char *addr)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host))
		return ml_diag_set(ML_ERR_USAGE, "--connect wants HOST:PORT, not '%s'", addr);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return ml_diag_set(ML_ERR_USAGE, "cannot resolve %s", addr);
	c->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = c->fd >= 0 ? connect(c->fd, res->ai_addr, res->ai_addrlen) : -1;
	int e = errno;
	freeaddrinfo(res);
	if (rc != 0) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return ml_diag_set(ML_ERR_IO,
				   "cannot connect to %s: %s (is moonlog serve running?)", addr,
				   strerror(e));
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

int cli_client_connect(struct cli_client *c, const char *addr)
{
	*c = (struct cli_client){.fd = -1, .next_id = 1};
	return strchr(addr, '/') ? connect_unix(c, addr) : connect_tcp(c, addr);
}

int cli_client_admin(struct cli_client *c, const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/moonlog.sock", dir);
	if (access(path, F_OK) != 0)
		return -1;
	return cli_client_connect(c, path);
}

void cli_client_close(struct cli_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	ml_buf_free(&c->in);
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return ml_diag_set(ML_ERR_IO, "the server went away: %s", strerror(errno));
		p += w, n -= (size_t)w;
	}
	return 0;
}

int cli_client_next(struct cli_client *c, struct ml_msgpack_reader *msg)
{
	for (;;) {
		size_t len;
		ml_buf_reserve(&c->in, 1 << 16);
		const uint8_t *p = (const uint8_t *)c->in.data + c->in_off;
		int rc = ml_msgpack_frame_resume(p, c->in.len - c->in_off, &c->walk, &len);
		if (rc < 0)
			return ml_diag_set(ML_ERR_IO, "the server sent bytes that are not msgpack");
		if (rc == 0) {
			c->walk = (struct ml_msgpack_walk){0, 0};
			c->in_off += len;
			ml_msgpack_reader_init(msg, p, len); /* in place, until the next call */
			return 0;
		}
		if (c->in_off) {
			memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
			c->in.len -= c->in_off;
			c->in_off = 0;
		}
		/* The framing goes on where it stopped (c->walk), so a large answer is walked
		 * once however many reads it takes. */
		ml_buf_reserve(&c->in, c->in.len > (1 << 20) ? c->in.len : 1 << 20);
		ssize_t r = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return ml_diag_set(ML_ERR_IO, "the server closed the connection");
		c->in.len += (size_t)r;
	}
}

int cli_client_read_some(struct cli_client *c)
{
	if (c->in_off) { /* drop what was taken */
		memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_off = 0;
	}
	ml_buf_reserve(&c->in, 1 << 17);
	ssize_t r = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0)
		return -1;
	c->in.len += (size_t)r;
	return 1;
}

int cli_client_take_answers(struct cli_client *c, uint64_t *outstanding, uint64_t *ok,
			    uint64_t *failed)
{
	int got = cli_client_read_some(c);
	if (got <= 0)
		return got;
	for (;;) {
		size_t len;
		const uint8_t *p = (const uint8_t *)c->in.data + c->in_off;
		int rc = ml_msgpack_frame(p, c->in.len - c->in_off, &len);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		struct ml_msgpack_reader m;
		ml_msgpack_reader_init(&m, p, len);
		uint32_t n;
		uint64_t type, id;
		c->in_off += len;
		if (ml_msgpack_get_array(&m, &n) != 0 || ml_msgpack_get_uint(&m, &type) != 0 ||
		    type != 1 || ml_msgpack_get_uint(&m, &id) != 0)
			continue;
		--*outstanding;
		if (ml_msgpack_get_nil(&m) == 0)
			++*ok;
		else
			++*failed;
	}
}

/* Turns an error map into the diag. */
static int server_error(struct ml_msgpack_reader *e)
{
	static const char *const names[] = {"ok",      "bad_request", "conflict", "refused", "io",
					    "corrupt", "not_found",   "busy",	  "script"};
	uint32_t n;
	enum ml_err code = ML_ERR_REFUSED;
	const char *msg = "the server refused", *k, *v;
	uint32_t mlen = (uint32_t)strlen(msg), kl, vl;
	if (ml_msgpack_get_map(e, &n) == 0)
		for (uint32_t i = 0; i < n; i++) {
			if (ml_msgpack_get_str(e, &k, &kl) != 0)
				break;
			if (ml_msgpack_get_str(e, &v, &vl) != 0) {
				ml_msgpack_skip(e, NULL, NULL);
				continue;
			}
			if (kl == 7 && memcmp(k, "message", 7) == 0)
				msg = v, mlen = vl;
			else if (kl == 4 && memcmp(k, "code", 4) == 0)
				for (size_t j = 1; j < sizeof(names) / sizeof(names[0]); j++)
					if (strlen(names[j]) == vl && memcmp(names[j], v, vl) == 0)
						code = (enum ml_err)j;
		}
	return ml_diag_set(code, "%.*s", (int)mlen, msg);
}

int cli_client_call(struct cli_client *c, const char *method, const struct ml_buf *params,
		    struct ml_msgpack_reader *result)
{
	struct ml_buf req = {0};
	uint32_t id = c->next_id++;
	ml_msgpack_put_array(&req, 4);
	ml_msgpack_put_uint(&req, 0);
	ml_msgpack_put_uint(&req, id);
	ml_msgpack_put_cstr(&req, method);
	ml_buf_add(&req, params->data, params->len);
	int rc = send_all(c->fd, req.data, req.len);
	ml_buf_free(&req);
	if (rc != 0)
		return -1;
	for (;;) {
		struct ml_msgpack_reader m;
		uint32_t n;
		int64_t type;
		uint64_t msgid;
		if (cli_client_next(c, &m) != 0)
			return -1;
		if (ml_msgpack_get_array(&m, &n) != 0 || ml_msgpack_get_int(&m, &type) != 0 ||
		    type != 1 || ml_msgpack_get_uint(&m, &msgid) != 0 || msgid != id)
			continue; /* a notification, or another answer */
		if (ml_msgpack_get_nil(&m) != 0)
			return server_error(&m);
		*result = m;
		return 0;
	}
}

/* Reads an event map (as the server writes them) into e; pointers into the message. */
int cli_client_event(struct ml_msgpack_reader *r, struct ml_event *e)
{
	uint32_t n, kl, sl;
	const char *k, *s;
	*e = (struct ml_event){0};
	if (ml_msgpack_get_map(r, &n) != 0)
		return ml_diag_set(ML_ERR_IO, "the server sent an event that is not a map");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *raw;
		size_t rl;
		uint64_t u;
		if (ml_msgpack_get_str(r, &k, &kl) != 0)
			return ml_diag_set(ML_ERR_IO, "bad event from the server");
#define KEY(name) (kl == sizeof(name) - 1 && memcmp(k, name, kl) == 0)
		if ((KEY("position") || KEY("version") || KEY("time")) &&
		    ml_msgpack_get_uint(r, &u) == 0) {
			if (KEY("position"))
				e->position = u;
			else if (KEY("version"))
				e->version = u;
			else
				e->time = (int64_t)u;
		} else if ((KEY("stream") || KEY("type") || KEY("id")) &&
			   ml_msgpack_get_str(r, &s, &sl) == 0) {
			if (KEY("stream"))
				e->stream = s, e->stream_len = (uint8_t)sl;
			else if (KEY("type"))
				e->type = s, e->type_len = (uint8_t)sl;
			else
				e->id = s, e->id_len = (uint8_t)sl;
		} else if (ml_msgpack_skip(r, &raw, &rl) == 0) {
			int nil = rl == 1 && raw[0] == 0xc0;
			if (KEY("data") && !nil)
				e->data = raw, e->data_len = (uint32_t)rl;
			else if (KEY("meta") && !nil)
				e->meta = raw, e->meta_len = (uint32_t)rl;
		} else {
			return ml_diag_set(ML_ERR_IO, "bad event from the server");
		}
#undef KEY
	}
	return 0;
}

int cli_remote_open(struct cli_client *c, const char *addr, const char *dir)
{
	if (addr)
		return cli_client_connect(c, addr) == 0 ? 1 : -1;
	return cli_client_admin(c, dir) == 0 ? 1 : 0;
}

int cli_server_open(struct cli_client *c, const char *addr, const char *dir)
{
	if (addr)
		return cli_client_connect(c, addr);
	return cli_client_admin(c, dir) == 0 ? 0 : cli_client_connect(c, "127.0.0.1:7420");
}

void cli_append_result(struct ml_msgpack_reader *r, uint64_t *pos, uint64_t *ver, int *dup)
{
	uint32_t n, kl;
	const char *k;
	if (ml_msgpack_get_map(r, &n) != 0)
		return;
	for (uint32_t i = 0; i < n && ml_msgpack_get_str(r, &k, &kl) == 0; i++) {
		if (kl == 8 && memcmp(k, "position", 8) == 0)
			ml_msgpack_get_uint(r, pos);
		else if (kl == 7 && memcmp(k, "version", 7) == 0)
			ml_msgpack_get_uint(r, ver);
		else if (kl == 9 && memcmp(k, "duplicate", 9) == 0)
			ml_msgpack_get_bool(r, dup);
		else
			ml_msgpack_skip(r, NULL, NULL);
	}
}

int cli_remote_append(const char *addr, const char *dir, const struct ml_event_in *e,
		      int64_t expect, int json)
{
	struct cli_client c;
	int rc = cli_remote_open(&c, addr, dir);
	if (rc <= 0)
		return rc < 0 ? cli_diag("append") : -1;
	struct ml_buf p = {0};
	ml_msgpack_put_array(&p, 3);
	ml_msgpack_put_str(&p, e->stream, e->stream_len);
	ml_msgpack_put_map(&p, 2 + (e->meta_len > 0) + (e->id != NULL));
	ml_msgpack_put_cstr(&p, "type");
	ml_msgpack_put_str(&p, e->type, e->type_len);
	ml_msgpack_put_cstr(&p, "data");
	ml_buf_add(&p, e->data, e->data_len);
	if (e->meta_len)
		ml_msgpack_put_cstr(&p, "meta"), ml_buf_add(&p, e->meta, e->meta_len);
	if (e->id) /* even empty: the server says what is wrong with it */
		ml_msgpack_put_cstr(&p, "id"), ml_msgpack_put_str(&p, e->id, e->id_len);
	if (expect == ML_EXPECT_ANY)
		ml_msgpack_put_nil(&p);
	else if (expect == ML_EXPECT_EXISTS)
		ml_msgpack_put_cstr(&p, "exists");
	else
		ml_msgpack_put_int(&p, expect);
	struct ml_msgpack_reader r;
	rc = cli_client_call(&c, "append", &p, &r);
	ml_buf_free(&p);
	if (rc != 0) {
		rc = cli_diag("append");
		cli_client_close(&c);
		return rc;
	}
	uint64_t pos = 0, ver = 0;
	int dup = 0;
	cli_append_result(&r, &pos, &ver, &dup);
	if (json) {
		struct ml_buf out = {0};
		ml_buf_add(&out, "{\"stream\":", 10);
		ml_json_string(&out, e->stream, e->stream_len);
		ml_buf_addf(&out, ",\"position\":%llu,\"version\":%llu,\"duplicate\":%s}\n",
			    (unsigned long long)pos, (unsigned long long)ver,
			    dup ? "true" : "false");
		fwrite(out.data, 1, out.len, stdout);
		ml_buf_free(&out);
	} else {
		printf("%s %.*s@%llu at position %llu\n", dup ? "already appended:" : "appended",
		       (int)e->stream_len, e->stream, (unsigned long long)ver,
		       (unsigned long long)pos);
	}
	cli_client_close(&c);
	return CLI_OK;
}

/* One page of a read: prints it, returns how many events and the last one's number. */
static int64_t read_page(struct cli_client *c, const char *stream, uint64_t from, uint64_t limit,
			 int back, int json, uint64_t *last)
{
	struct ml_buf p = {0}, out = {0};
	ml_msgpack_put_array(&p, 4);
	ml_msgpack_put_cstr(&p, stream);
	ml_msgpack_put_uint(&p, from);
	ml_msgpack_put_uint(&p, limit);
	ml_msgpack_put_bool(&p, back);
	struct ml_msgpack_reader r;
	uint32_t n;
	int rc = cli_client_call(c, "read", &p, &r);
	ml_buf_free(&p);
	if (rc != 0 || ml_msgpack_get_array(&r, &n) != 0)
		return -1;
	int all = strcmp(stream, "$all") == 0;
	for (uint32_t i = 0; i < n; i++) {
		struct ml_event e;
		if (cli_client_event(&r, &e) != 0)
			return -1;
		if ((json ? cli_event_json(&e, &out) : cli_event_line(&e, &out)) != 0)
			return -1;
		*last = all ? e.position : e.version;
	}
	fwrite(out.data, 1, out.len, stdout);
	ml_buf_free(&out);
	return n;
}

int cli_remote_read(const char *addr, const char *dir, const char *stream, uint64_t from,
		    uint64_t limit, int back, int json)
{
	struct cli_client c;
	int rc = cli_remote_open(&c, addr, dir);
	if (rc <= 0)
		return rc < 0 ? cli_diag("read") : -1;
	uint64_t done = 0, last = 0, start = from;
	for (;;) {
		uint64_t want = limit ? limit - done : 0;
		int64_t n = read_page(&c, stream, from, want, back, json, &last);
		if (n < 0) {
			cli_client_close(&c);
			return cli_diag("read");
		}
		done += (uint64_t)n;
		if (n == 0 || (limit && done >= limit) || (back && last <= 1))
			break;
		from = back ? last - 1 : last + 1;
	}
	cli_client_close(&c);
	/* nothing from the start of a stream: there is no such stream */
	if (done == 0 && start == 0 && strcmp(stream, "$all") != 0)
		return cli_no_stream(stream);
	return CLI_OK;
}
