/*
 * pb.h - the peer bench client: shared pieces of `moonlog-peerbench`.
 *
 * One small C program drives moonlog, Redis, NATS JetStream and Tarantool
 * over 127.0.0.1 with hand-written protocol code (msgpack-RPC, RESP, the NATS
 * text protocol, Tarantool's msgpack iproto), so that the client costs little
 * next to the server it measures, and every system meets the same driver. A protocol fills in a
 * `struct pb_proto`; the drivers in pb_drive.c run the same workloads through it for every system.
 */
#ifndef PB_H
#define PB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <moonlog/util.h> /* struct ml_buf and its ml_buf_add, ml_buf_addf, ... */

static inline void pb_buf_puts(struct ml_buf *b, const char *s)
{
	ml_buf_add(b, s, strlen(s));
}

/* Drops the consumed front (*off bytes) of b once it is worth the copy. */
void pb_buf_compact(struct ml_buf *b, size_t *off);

/* One TCP connection with its buffers (in_off, out_off: how much of each is consumed), and
 * a protocol's own state. */
struct pb_conn {
	int fd, id;
	struct ml_buf in, out;
	size_t in_off, out_off;
	int inflight;
	void *state;
};

int pb_connect(struct pb_conn *c, int port, int id);
void pb_close(struct pb_conn *c);
int pb_flush(struct pb_conn *c);	    /* write out all of c->out, waiting as needed */
int pb_fill(struct pb_conn *c);		    /* read at least one more byte, waiting (bounded) */
int pb_write_some(struct pb_conn *c);	    /* write what the socket takes now */
int pb_read_some(struct pb_conn *c);	    /* read what is there now; -1 on EOF or error */
const char *pb_in(const struct pb_conn *c); /* first unconsumed input byte */
size_t pb_avail(const struct pb_conn *c);   /* unconsumed input bytes */

/* The event every system stores: key "account-(seq % 1000)", amount, note. */
#define PB_KEYS	    1000
#define PB_NOTE_LEN 82
extern const char pb_note[PB_NOTE_LEN + 1];
int pb_key(uint64_t seq, char *out); /* writes the key, returns its length */
uint64_t pb_amount(uint64_t seq);
size_t pb_payload(uint64_t seq, uint8_t *out); /* the 100-byte msgpack {amount, note} */
uint64_t pb_expected_sum(uint64_t n);	       /* sum of amounts of events 0..n-1 */

/* Results of a fold: number of keys and the sum over all of them. */
struct pb_fold {
	uint64_t keys, total;
};

#define PB_MAX_PORTS 8

struct pb_opts {
	int ports[PB_MAX_PORTS],
	    nports; /* --port P[,P...]: connection i goes to ports[i % nports] */
	int conns, window, chunk, rate;
	int replicas; /* nats: the copies of the stream reset makes (a cluster: 3) */
	uint64_t count;
	double seconds;
	const char *arg;    /* the fold's function file (Redis) */
	const char *fields; /* moonlog: the fields a read asks for, comma-separated */
};

/* The port of connection i: the connections are spread over the ports given. */
static inline int pb_port(const struct pb_opts *o, int i)
{
	return o->ports[i % o->nports];
}

/* What a system offers to the drivers; every call returns 0 / -1 unless said. */
struct pb_proto {
	const char *name;
	int (*hello)(struct pb_conn *c);			  /* handshake after connect */
	int (*reset)(struct pb_conn *c, const struct pb_opts *o); /* empty the log (blocking) */
	void (*append)(struct pb_conn *c, uint64_t seq);	  /* queue one append */
	int (*acked)(struct pb_conn *c); /* 1 one ack consumed, 0 need more */
	int (*read_all)(struct pb_conn *c, const struct pb_opts *o); /* read o->count back */
	int (*consume_all)(struct pb_conn *c, uint64_t n); /* as a consumer (NULL: read_all) */
	int (*fold)(struct pb_conn *c, const char *arg, struct pb_fold *out);
	int (*sub_open)(struct pb_conn *c);		   /* latency: start a live subscription */
	int (*sub_recv)(struct pb_conn *c, uint64_t *got); /* deliveries consumed so far */
};

extern const struct pb_proto pb_redis, pb_nats, pb_tnt, pb_moonlog;

int pb_run_append(const struct pb_proto *p, const struct pb_opts *o);
int pb_run_load(const struct pb_proto *p, const struct pb_opts *o);
int pb_run_read(const struct pb_proto *p, const struct pb_opts *o);
int pb_run_consume(const struct pb_proto *p, const struct pb_opts *o);
int pb_run_fold(const struct pb_proto *p, const struct pb_opts *o);
int pb_run_latency(const struct pb_proto *p, const struct pb_opts *o);

/* Latency samples (ns), grown as they come; percentiles once sorted. */
struct pb_samples {
	uint64_t *v;
	uint64_t n, cap;
};
void pb_sample(struct pb_samples *s, uint64_t ns);
void pb_samples_sort(struct pb_samples *s);
double pb_pct_us(const struct pb_samples *s, double p); /* of sorted samples */

uint64_t pb_now_ns(void);
extern int pb_quiet; /* pb_fail prints nothing while set */
int pb_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* prints, returns -1 */

#endif
