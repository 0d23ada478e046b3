/*
 * log_helpers.h - shorthands for the log's unit tests.
 */
#ifndef ML_TEST_LOG_HELPERS_H
#define ML_TEST_LOG_HELPERS_H

#include <moonlog/log.h>
#include <stdio.h>
#include <string.h>

static inline struct ml_log *open_log_fsync(const char *dir, uint64_t segment_size,
					    enum ml_fsync fsync)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.fsync = fsync;
	if (segment_size)
		o.segment_size = segment_size;
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		printf("# open failed: %s\n", ml_diag_last());
	return log;
}

static inline struct ml_event_in ev(const char *stream, const char *type, const char *id)
{
	static const char data[] = "\x81\xa6"
				   "amount"
				   "\x0a"; /* {amount = 10} */
	struct ml_event_in e = {
	    stream,	      strlen(stream), type, strlen(type), id, id ? strlen(id) : 0, data,
	    sizeof(data) - 1, NULL,	      0};
	return e;
}

static inline struct ml_log *open_log(const char *dir, uint64_t segment_size)
{
	return open_log_fsync(dir, segment_size, ML_FSYNC_ALWAYS);
}

/* Appends one event; returns its position, 0 on failure. */
static inline uint64_t append1(struct ml_log *log, const char *stream, const char *id,
			       int64_t expect)
{
	struct ml_event_in e = ev(stream, "Deposited", id);
	struct ml_expect_in x = {stream, strlen(stream), expect};
	struct ml_append req = {.events = &e, .n_events = 1, .expect = &x, .n_expect = 1};
	return ml_log_append(log, &req) == 0 ? req.first_position : 0;
}

struct collect {
	uint64_t pos[4096];
	uint64_t ver[4096];
	int n;
};

static inline int collect_fn(const struct ml_event *e, void *arg)
{
	struct collect *c = arg;
	if (c->n < 4096) {
		c->pos[c->n] = e->position;
		c->ver[c->n] = e->version;
	}
	c->n++;
	return 0;
}

#endif
