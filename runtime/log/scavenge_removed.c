/*
 * scavenge_removed.c - `moonlog scavenge`'s predicate: a scavenge drops what
 * the log's own predicate (ml_log_removed, retention.c) says is removed when
 * the scavenge starts, so that every reader sees the same before and after.
 */
#include <moonlog/log.h>
#include <moonlog/util.h>

struct as_of {
	struct ml_log *log;
	int64_t now;
};

static int removed(const struct ml_event *e, void *arg)
{
	const struct as_of *a = arg;
	return ml_log_removed(a->log, e->stream, e->stream_len, e->version, e->time, a->now);
}

int ml_log_scavenge_removed(struct ml_log *log, struct ml_scavenge_stats *out)
{
	struct as_of a = {log, ml_time_ms()};
	return ml_log_scavenge(log, removed, &a, out);
}
