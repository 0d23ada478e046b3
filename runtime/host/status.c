/*
 * status.c - what the host tells about its scripts: one map per script for
 * scripts() and GET /scripts, and moonlog_script_* gauges for /metrics.
 *
 * A script's state is "running" (at the head, or as close as the log moves),
 * "catching up" (not yet at the head since it started: a rebuild, or a
 * restart far behind), or "faulted" (with the error and the position).
 * Reloads add `reloads` (versions swapped in), `reload_error` (the last new
 * version that did not load; the old one runs on) and `rebuild_position`
 * (how far a new version replaying beside the old one has got). On a log
 * shared by several nodes a handler runs on one of them (lease.c): elsewhere
 * its state is "standby", and every node's status has `lease` ("running here",
 * "taking over", "standby") and `holder` (the node id that runs it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "host/host_internal.h"
#include <moonlog/msgpack.h>

static const char *state_of(const struct ml_hosted *e)
{
	if (e->s == NULL || e->error || ml_script_fault(e->s))
		return "faulted";
	if (!ml_lease_runs(e))
		return "standby";
	if (!e->caught_up)
		return "catching up";
	return "running";
}

static uint64_t position_of(struct ml_host *h, const struct ml_hosted *e, uint64_t head)
{
	return e->kind == ML_SCRIPT_DECIDER ? head : e->pos;
}

/* A handler whose batch is in flight is not done with its event: lag 0 means what it
 * emitted is visible. */
static uint64_t lag_of(const struct ml_hosted *e, uint64_t head, uint64_t pos)
{
	return (head > pos ? head - pos : 0) + (e->inflight ? 1 : 0);
}

static void one(struct ml_host *h, const struct ml_hosted *e, uint64_t head, struct ml_buf *b)
{
	struct ml_script_stats st = {0};
	const char *why = e->error ? e->error : e->s ? ml_script_fault(e->s) : NULL;
	uint64_t pos = position_of(h, e, head);
	if (e->s)
		ml_script_stats(e->s, &st);
	const char *lease = ml_lease_name(e);
	uint32_t extra = (why ? 2 : 0) + (e->reload_error ? 1 : 0) + (e->next ? 1 : 0) +
			 (lease ? 2 : 0) + (e->dry ? 1 : 0);
	ml_msgpack_put_map(b, 12 + extra);
	ml_msgpack_put_cstr(b, "name");
	ml_msgpack_put_cstr(b, e->name);
	ml_msgpack_put_cstr(b, "file");
	ml_msgpack_put_cstr(b, e->file);
	ml_msgpack_put_cstr(b, "kind");
	if (e->s)
		ml_msgpack_put_cstr(b, ml_script_kind_name(e->kind));
	else
		ml_msgpack_put_nil(b);
	ml_msgpack_put_cstr(b, "hash");
	if (e->s)
		ml_msgpack_put_cstr(b, ml_script_hash(e->s));
	else
		ml_msgpack_put_nil(b);
	ml_msgpack_put_cstr(b, "state");
	ml_msgpack_put_cstr(b, state_of(e));
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, pos);
	ml_msgpack_put_cstr(b, "lag");
	ml_msgpack_put_uint(b, lag_of(e, head, pos));
	ml_msgpack_put_cstr(b, "checkpoint");
	ml_msgpack_put_uint(b, e->saved);
	ml_msgpack_put_cstr(b, "events_per_second");
	ml_msgpack_put_double(b, e->rate);
	ml_msgpack_put_cstr(b, "events");
	ml_msgpack_put_uint(b, st.events);
	ml_msgpack_put_cstr(b, "memory");
	ml_msgpack_put_uint(b, st.memory);
	ml_msgpack_put_cstr(b, "reloads");
	ml_msgpack_put_uint(b, e->reloads);
	if (e->reload_error) { /* the last new version that did not load: the old one runs */
		ml_msgpack_put_cstr(b, "reload_error");
		ml_msgpack_put_cstr(b, e->reload_error);
	}
	if (e->next) { /* a new version replaying the log beside this one */
		ml_msgpack_put_cstr(b, "rebuild_position");
		ml_msgpack_put_uint(b, e->next_pos);
	}
	if (e->dry) { /* a dry run of a new version beside this one */
		ml_msgpack_put_cstr(b, "dry_run");
		ml_dryrun_put_status(e, head, b);
	}
	if (lease) { /* a handler on a shared log: where it runs */
		ml_msgpack_put_cstr(b, "lease");
		ml_msgpack_put_cstr(b, lease);
		ml_msgpack_put_cstr(b, "holder");
		if (e->lease.holder[0])
			ml_msgpack_put_cstr(b, e->lease.holder);
		else
			ml_msgpack_put_nil(b);
	}
	if (why) {
		ml_msgpack_put_cstr(b, "error");
		ml_msgpack_put_cstr(b, why);
		ml_msgpack_put_cstr(b, "error_position");
		ml_msgpack_put_uint(b, e->error ? e->error_pos : e->pos + 1);
	}
}

void ml_host_status(struct ml_host *h, struct ml_buf *out)
{
	uint64_t head = ml_log_head(h->log);
	ml_msgpack_put_array(out, (uint32_t)h->n);
	for (size_t i = 0; i < h->n; i++)
		one(h, h->v[i], head, out);
}

/* A handler's parked events, as many as $parked-NAME holds: the same on every node. */
static uint64_t parked_count(struct ml_host *h, const struct ml_hosted *e)
{
	char stream[300];
	int n = snprintf(stream, sizeof(stream), "$parked-%s", e->name);
	return e->kind == ML_SCRIPT_HANDLER ? ml_log_stream_version(h->log, stream, (size_t)n) : 0;
}

void ml_host_metrics(struct ml_host *h, struct ml_buf *b)
{
	static const struct {
		const char *name, *help;
	} g[] = {
	    {"position", "the last position fed to the script"},
	    {"lag", "events between the script's position and the head"},
	    {"events_per_second", "events fed per second, lately"},
	    {"memory_bytes", "bytes of Lua memory"},
	    {"faulted", "1 when the script is faulted"},
	    {"catching_up", "1 until the script first reaches the head"},
	    {"standby", "1 when the handler runs on another node of the shared log"},
	    {"reload_failed", "1 when the script's last new version did not load (the old runs)"},
	    {"parked", "events the handler has parked in $parked-NAME, ever (from the log)"},
	};
	uint64_t head = ml_log_head(h->log);
	for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
		ml_buf_addf(b, "# HELP moonlog_script_%s %s\n# TYPE moonlog_script_%s gauge\n",
			    g[k].name, g[k].help, g[k].name);
		for (size_t i = 0; i < h->n; i++) {
			const struct ml_hosted *e = h->v[i];
			struct ml_script_stats st = {0};
			if (e->s)
				ml_script_stats(e->s, &st);
			uint64_t pos = position_of(h, e, head);
			const char *state = state_of(e);
			ml_buf_addf(b, "moonlog_script_%s{script=\"%s\",kind=\"%s\"} ", g[k].name,
				    e->name, e->s ? ml_script_kind_name(e->kind) : "unknown");
			switch (k) {
			case 0:
				ml_buf_addf(b, "%" PRIu64 "\n", pos);
				break;
			case 1:
				ml_buf_addf(b, "%" PRIu64 "\n", lag_of(e, head, pos));
				break;
			case 2:
				ml_buf_addf(b, "%.1f\n", e->rate);
				break;
			case 3:
				ml_buf_addf(b, "%zu\n", st.memory);
				break;
			case 4:
				ml_buf_addf(b, "%d\n", strcmp(state, "faulted") == 0);
				break;
			case 5:
				ml_buf_addf(b, "%d\n", strcmp(state, "catching up") == 0);
				break;
			case 6:
				ml_buf_addf(b, "%d\n", strcmp(state, "standby") == 0);
				break;
			case 7:
				ml_buf_addf(b, "%d\n", e->reload_error != NULL);
				break;
			default:
				ml_buf_addf(b, "%" PRIu64 "\n", parked_count(h, e));
			}
		}
	}
}
