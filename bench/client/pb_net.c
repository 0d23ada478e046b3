/*
 * pb_net.c - one TCP connection to 127.0.0.1 with buffered, bounded I/O.
 *
 * Sockets are non-blocking with TCP_NODELAY. The blocking helpers wait with
 * poll() and give up after PB_WAIT_MS, so a stuck peer ends the run with an
 * error instead of hanging it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pb.h"

#define PB_WAIT_MS 60000
#define PB_READ	   (256 * 1024)

int pb_connect(struct pb_conn *c, int port, int id)
{
	*c = (struct pb_conn){.fd = -1, .id = id};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0)
		return pb_fail("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return pb_fail("connect to 127.0.0.1:%d: %s", port, strerror(errno));
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	return 0;
}

void pb_close(struct pb_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	ml_buf_free(&c->in);
	ml_buf_free(&c->out);
	c->in_off = c->out_off = 0;
	c->fd = -1;
}

static int wait_fd(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n = poll(&p, 1, PB_WAIT_MS);
	if (n == 0)
		return pb_fail("no answer from the server in %d s", PB_WAIT_MS / 1000);
	return n < 0 ? pb_fail("poll: %s", strerror(errno)) : 0;
}

int pb_write_some(struct pb_conn *c)
{
	struct ml_buf *b = &c->out;
	while (c->out_off < b->len) {
		ssize_t n = write(c->fd, b->data + c->out_off, b->len - c->out_off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0)
			return pb_fail("write: %s", strerror(errno));
		c->out_off += (size_t)n;
	}
	pb_buf_compact(b, &c->out_off);
	return 0;
}

int pb_flush(struct pb_conn *c)
{
	for (;;) {
		if (pb_write_some(c) != 0)
			return -1;
		if (c->out.len == 0)
			return 0;
		if (wait_fd(c->fd, POLLOUT) != 0)
			return -1;
	}
}

/* Reads until the socket is drained or 1 MiB waits unconsumed. */
int pb_read_some(struct pb_conn *c)
{
	struct ml_buf *b = &c->in;
	pb_buf_compact(b, &c->in_off);
	size_t before = pb_avail(c); /* at most 1 MiB more per call, however much is waiting */
	while (pb_avail(c) - before < (1u << 20)) {
		ml_buf_reserve(b, PB_READ);
		ssize_t n = read(c->fd, b->data + b->len, b->cap - b->len);
		if (n > 0) {
			b->len += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return n == 0 ? pb_fail("the server closed the connection")
			      : pb_fail("read: %s", strerror(errno));
	}
	return 0;
}

int pb_fill(struct pb_conn *c)
{
	size_t before = pb_avail(c);
	while (pb_avail(c) == before) {
		if (pb_flush(c) != 0 || wait_fd(c->fd, POLLIN) != 0 || pb_read_some(c) != 0)
			return -1;
	}
	return 0;
}

const char *pb_in(const struct pb_conn *c)
{
	return c->in.data ? c->in.data + c->in_off : ""; /* nothing read yet: no buffer */
}

size_t pb_avail(const struct pb_conn *c)
{
	return c->in.len - c->in_off;
}
