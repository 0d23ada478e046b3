/*
 * pb_nats.c - NATS JetStream over the NATS text protocol, written out by hand.
 *
 * One stream "EV" (file storage) takes the subjects ev.>; an event is
 * PUB ev.KEY ack.ID 100 with the 100-byte payload, and JetStream's
 * acknowledgement ({"stream":"EV","seq":N}) comes back on the connection's
 * reply subject ack.ID once the message is stored. The reader is a durable
 * pull consumer fetched in batches with several pulls outstanding; the live
 * subscriber is a push consumer (deliver_policy new, ack none).
 *
 * Subscription ids: 1 = acks, 2 = API replies, 3 = pulled messages,
 * 4 = pushed messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pb.h"

#define PULLS_OUTSTANDING 4

struct nmsg {
	int sid, status; /* status: the NATS/1.0 code of a header-only message, else 0 */
	const char *data;
	size_t len;
};

struct nstate {
	uint64_t got;
};

/* Parses the numbers that end a MSG/HMSG line: sid, then the sizes. */
static int msg_head(const char *line, const char *end, int hmsg, struct nmsg *m, size_t *hdr,
		    size_t *total)
{
	const char *f[6];
	int nf = 0;
	for (const char *p = line; p < end && nf < 6;) {
		while (p < end && *p == ' ')
			p++;
		if (p < end)
			f[nf++] = p;
		while (p < end && *p != ' ')
			p++;
	}
	int need = hmsg ? 5 : 4;
	if (nf < need)
		return pb_fail("nats: bad message line %.*s", (int)(end - line), line);
	m->sid = atoi(f[2]);
	*total = strtoull(f[nf - 1], NULL, 10);
	*hdr = hmsg ? strtoull(f[nf - 2], NULL, 10) : 0;
	return 0;
}

/* One protocol item off c->in: 1 with a message in *m, 0 need more, -1 error. */
static int next(struct pb_conn *c, struct nmsg *m)
{
	for (;;) {
		const char *b = pb_in(c), *nl = memchr(b, '\n', pb_avail(c));
		if (nl == NULL)
			return 0;
		size_t line = (size_t)(nl + 1 - b);
		int hmsg = strncmp(b, "HMSG ", 5) == 0;
		if (hmsg || strncmp(b, "MSG ", 4) == 0) {
			size_t hdr = 0, total = 0;
			if (msg_head(b, nl - 1, hmsg, m, &hdr, &total) != 0)
				return -1;
			if (pb_avail(c) < line + total + 2)
				return 0;
			m->data = b + line + hdr;
			m->len = total - hdr;
			m->status = hmsg && hdr > 12 ? atoi(b + line + 9) : 0;
			c->in_off += line + total + 2;
			return 1;
		}
		c->in_off += line;
		if (strncmp(b, "PING", 4) == 0)
			pb_buf_puts(&c->out, "PONG\r\n");
		else if (strncmp(b, "-ERR", 4) == 0)
			return pb_fail("nats: %.*s", (int)line - 2, b);
	}
}

static int wait_msg(struct pb_conn *c, int sid, struct nmsg *m)
{
	for (;;) {
		int r = next(c, m);
		if (r < 0)
			return -1;
		if (r == 1 && m->sid == sid)
			return 0;
		if (r == 0 && pb_fill(c) != 0)
			return -1;
	}
}

static void pub(struct pb_conn *c, const char *subject, const char *reply, const void *data,
		size_t n)
{
	ml_buf_addf(&c->out, "PUB %s %s %zu\r\n", subject, reply, n);
	ml_buf_add(&c->out, data, n);
	ml_buf_add(&c->out, "\r\n", 2);
}

/* A JetStream API request; an {"error": ...} answer fails unless `lenient`. */
static int api(struct pb_conn *c, const char *subject, const char *json, int lenient)
{
	struct nmsg m;
	char reply[32];
	snprintf(reply, sizeof(reply), "api.%d", c->id);
	pub(c, subject, reply, json, strlen(json));
	if (pb_flush(c) != 0 || wait_msg(c, 2, &m) != 0)
		return -1;
	if (!lenient && memmem(m.data, m.len, "\"error\"", 7) != NULL)
		return pb_fail("nats %s: %.*s", subject, (int)m.len, m.data);
	return 0;
}

static int n_hello(struct pb_conn *c)
{
	struct nmsg m;
	c->state = calloc(1, sizeof(struct nstate));
	ml_buf_addf(&c->out,
		    "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,"
		    "\"no_responders\":true,\"protocol\":1,\"name\":\"peerbench\"}\r\n"
		    "SUB ack.%d 1\r\nSUB api.%d 2\r\nSUB pull.%d 3\r\nSUB push.%d 4\r\n"
		    "PUB hello.%d api.%d 0\r\n\r\n",
		    c->id, c->id, c->id, c->id, c->id, c->id);
	/* no one listens on hello.ID: a 503 status on api.ID says the server is ready */
	return pb_flush(c) == 0 && wait_msg(c, 2, &m) == 0 ? 0 : -1;
}

/*
 * Waits until a publish through the server on `port` is stored: on a cluster
 * the new stream needs a leader, and every server needs to know where its
 * subjects go (until then a publish finds no responders, status 503). The
 * probe stays in the stream: one message more than the events counted.
 */
static int probe(int port)
{
	struct pb_conn c;
	int rc = pb_connect(&c, port, 999) == 0 && n_hello(&c) == 0 ? 1 : -1;
	for (int i = 0; i < 300 && rc == 1; i++) {
		struct nmsg m;
		pub(&c, "ev.probe", "ack.999", "", 0);
		if (pb_flush(&c) != 0 || wait_msg(&c, 1, &m) != 0)
			rc = -1;
		else if (m.status == 0 && memmem(m.data, m.len, "\"error\"", 7) == NULL)
			rc = 0;
		else
			usleep(100000);
	}
	free(c.state);
	pb_close(&c);
	return rc == 1 ? pb_fail("nats: the stream EV takes no publish through port %d after 30 s",
				 port)
		       : rc;
}

/* A fresh stream EV with o->replicas copies (on a cluster, 3: an R3 stream). */
static int n_reset(struct pb_conn *c, const struct pb_opts *o)
{
	char json[256];
	snprintf(json, sizeof(json),
		 "{\"name\":\"EV\",\"subjects\":[\"ev.>\"],\"storage\":\"file\","
		 "\"retention\":\"limits\",\"discard\":\"old\",\"num_replicas\":%d}",
		 o->replicas);
	api(c, "$JS.API.STREAM.DELETE.EV", "", 1);
	if (api(c, "$JS.API.STREAM.CREATE.EV", json, 0) != 0)
		return -1;
	for (int i = 0; o->replicas > 1 && i < o->nports; i++)
		if (probe(o->ports[i]) != 0)
			return -1;
	return 0;
}

static void n_append(struct pb_conn *c, uint64_t seq)
{
	char subject[48], reply[24];
	uint8_t payload[128];
	snprintf(subject, sizeof(subject), "ev.");
	pb_key(seq, subject + 3);
	snprintf(reply, sizeof(reply), "ack.%d", c->id);
	pub(c, subject, reply, payload, pb_payload(seq, payload));
}

static int n_acked(struct pb_conn *c)
{
	struct nmsg m;
	int r;
	while ((r = next(c, &m)) == 1) {
		if (m.sid != 1)
			continue;
		if (memmem(m.data, m.len, "\"error\"", 7) != NULL || m.status)
			return pb_fail("nats publish: status %d %.*s", m.status, (int)m.len,
				       m.data);
		return 1;
	}
	return r;
}

static int consumer(struct pb_conn *c, const char *name, const char *config)
{
	char subject[96], json[512];
	snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.DELETE.EV.%s", name);
	api(c, subject, "", 1);
	snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.DURABLE.CREATE.EV.%s", name);
	snprintf(json, sizeof(json),
		 "{\"stream_name\":\"EV\",\"config\":{\"durable_name\":\"%s\","
		 "\"ack_policy\":\"none\",\"replay_policy\":\"instant\",%s}}",
		 name, config);
	return api(c, subject, json, 0);
}

static void pull(struct pb_conn *c, int chunk)
{
	char reply[24], json[48];
	snprintf(reply, sizeof(reply), "pull.%d", c->id);
	snprintf(json, sizeof(json), "{\"batch\":%d}", chunk);
	pub(c, "$JS.API.CONSUMER.MSG.NEXT.EV.rd", reply, json, strlen(json));
}

static int n_read_all(struct pb_conn *c, const struct pb_opts *o)
{
	uint64_t n = o->count;
	int chunk = o->chunk;
	if (consumer(c, "rd", "\"deliver_policy\":\"all\"") != 0)
		return -1;
	uint64_t asked = 0, got = 0;
	for (int i = 0; i < PULLS_OUTSTANDING && asked < n; i++, asked += (uint64_t)chunk)
		pull(c, chunk);
	while (got < n) {
		struct nmsg m;
		if (pb_flush(c) != 0 || wait_msg(c, 3, &m) != 0)
			return -1;
		if (m.status)
			return pb_fail("nats pull: status %d after %llu events", m.status,
				       (unsigned long long)got);
		if (++got % (uint64_t)chunk == 0 && asked < n) {
			pull(c, chunk);
			asked += (uint64_t)chunk;
		}
	}
	return 0;
}

static int n_sub_open(struct pb_conn *c)
{
	char config[96];
	snprintf(config, sizeof(config),
		 "\"deliver_policy\":\"new\",\"deliver_subject\":\"push.%d\"", c->id);
	return consumer(c, "lat", config);
}

static int n_sub_recv(struct pb_conn *c, uint64_t *got)
{
	struct nstate *st = c->state;
	struct nmsg m;
	int r;
	while ((r = next(c, &m)) == 1)
		if (m.sid == 4 && m.status == 0)
			st->got++;
	*got = st->got;
	return r < 0 ? -1 : pb_write_some(c);
}

const struct pb_proto pb_nats = {
    .name = "nats",
    .hello = n_hello,
    .reset = n_reset,
    .append = n_append,
    .acked = n_acked,
    .read_all = n_read_all,
    .sub_open = n_sub_open,
    .sub_recv = n_sub_recv,
};
