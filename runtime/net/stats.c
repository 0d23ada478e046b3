/*
 * stats.c - what the server tells about itself, the stats operation of
 * ops.h: the `stats` method, GET /stats (one msgpack map, shown as JSON over
 * HTTP) and stats() in an evaluated chunk, and GET /metrics in the Prometheus
 * text format.
 */
#include <inttypes.h>
#include <string.h>

#include <moonlog/log_writer.h>

#include "net/ops.h"

struct stat_row {
	const char *name, *help; /* help NULL: in stats only (metrics.c says it in its units) */
	uint64_t v;
	int counter;
};

static size_t rows(struct ml_server *s, struct stat_row *out)
{
	struct ml_log_stats ls;
	struct ml_router_stats rs;
	ml_log_stats(s->log, &ls);
	ml_router_stats(s->router, &rs);
	struct stat_row all[] = {
	    {"head", "the last durable position", ls.head, 0},
	    {"streams", "streams in the log", ls.streams, 0},
	    {"segments", "segment files", ls.segments, 0},
	    {"bytes", "bytes in the log", ls.bytes, 0},
	    {"appends", "append batches since start", ls.appends, 1},
	    {"events", "events appended since start", ls.events, 1},
	    {"syncs", "fdatasync calls since start", ls.syncs, 1},
	    {"flush_groups", "group commits since start", ls.groups, 1},
	    {"connections", "open RPC connections", s->nconns, 0},
	    {"http_connections", "open HTTP connections (server-sent events included)", s->nhttp,
	     0},
	    {"max_conns", "the TCP and HTTP connection limit (--max-conns)", s->max_conns, 0},
	    {"refused_connections", "connections refused at the limit", s->refused, 1},
	    {"timed_out", "slow or idle connections closed by a timeout", s->timed_out, 1},
	    {"requests", "RPC and HTTP requests since start", s->requests, 1},
	    {"errors", "requests answered with an error", s->errors, 1},
	    {"inflight", "appends waiting for the disk", s->inflight, 0},
	    {"subscriptions", "live subscriptions, group members included", rs.subs, 0},
	    {"groups", "consumer groups", rs.groups, 0},
	    {"delivered", "events delivered to subscribers", rs.delivered, 1},
	    {"redelivered", "group events delivered again", rs.redelivered, 1},
	    {"parked",
	     "group events parked after max_deliveries (a handler's: moonlog_script_parked)",
	     rs.parked, 1},
	    {"group_takeovers", "group ranges taken over from a node gone (a shared log)",
	     rs.taken_over, 1},
	    {"uptime_ms", NULL, (uint64_t)ml_time_ms() - s->started_ms, 0},
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		out[i] = all[i];
	return sizeof(all) / sizeof(all[0]);
}

void ml_op_stats(struct ml_server *s, struct ml_buf *b)
{
	struct stat_row r[32];
	size_t n = rows(s, r);
	const char *node = ml_log_node(s->log); /* a node of several (docs/scale-out.md) */
	ml_msgpack_put_map(b, (uint32_t)n + 3 + (node != NULL));
	for (size_t i = 0; i < n; i++) {
		ml_msgpack_put_cstr(b, r[i].name);
		ml_msgpack_put_uint(b, r[i].v);
	}
	ml_msgpack_put_cstr(b, "fsync");
	ml_msgpack_put_cstr(b, ml_fsync_name(ml_log_fsync(s->log)));
	ml_msgpack_put_cstr(b, "writer");
	ml_msgpack_put_cstr(b, ml_log_writer_name(s->log));
	ml_msgpack_put_cstr(b, "scavenge"); /* running, or the last one's result */
	ml_op_scavenge_status(s, b);
	if (node) {
		ml_msgpack_put_cstr(b, "node");
		ml_msgpack_put_cstr(b, node);
	}
}

/* A figure's name in /metrics, where it must say more than in stats: what it counts. */
static const char *metric_name(const char *name)
{
	if (strcmp(name, "parked") == 0)
		return "group_parked";
	if (strcmp(name, "redelivered") == 0)
		return "group_redelivered";
	return name;
}

void ml_op_metrics(struct ml_server *s, struct ml_buf *b)
{
	struct stat_row r[32];
	size_t n = rows(s, r);
	for (size_t i = 0; i < n; i++) {
		const char *suffix = r[i].counter ? "_total" : "";
		if (r[i].help == NULL)
			continue;
		const char *name = metric_name(r[i].name);
		ml_buf_addf(
		    b, "# HELP moonlog_%s%s %s\n# TYPE moonlog_%s%s %s\nmoonlog_%s%s %" PRIu64 "\n",
		    name, suffix, r[i].help, name, suffix, r[i].counter ? "counter" : "gauge", name,
		    suffix, r[i].v);
	}
	ml_metrics_more(s, b);
	const struct ml_server_scripts *sc = ml_net_scripts(s);
	if (sc)
		sc->metrics(sc->arg, b);
}
