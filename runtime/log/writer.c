/*
 * writer.c - the log's writer seam (see log_writer.h): the local writer, the
 * one every log starts with, and what lets another one take its place.
 *
 * The local writer is the store (store.c) and the flusher (flush.c) put
 * behind the seam: a batch is checked against the log and reserved under the
 * log's mutex on the submitter's thread, then written and synced by the
 * flusher, or by the kicking thread when it comes alone. A replicated writer
 * uses the same store and flusher, but only from ml_log_apply (entry.c), once
 * its journal has ordered the batch.
 */
#include <string.h>

#include <moonlog/log_writer.h>

#include "log/log_internal.h"

static int local_submit(struct ml_log_writer *w, struct ml_append *req, char (*ids)[37])
{
	return ml_store_submit(w->log, req, ids, NULL);
}

static void local_kick(struct ml_log_writer *w)
{
	ml_store_kick(w->log);
}

/* Nothing of its own to stop or free: the flusher stops after the writer, at close. */
static void local_stop(struct ml_log_writer *w)
{
	(void)w;
}

static void local_free(struct ml_log_writer *w)
{
	(void)w;
}

static const struct ml_log_writer_ops local_ops = {
    .name = "local",
    .submit = local_submit,
    .kick = local_kick,
    .stop = local_stop,
    .free = local_free,
};

void ml_log_writer_local_init(struct ml_log *log)
{
	log->local_writer = (struct ml_log_writer){.ops = &local_ops, .log = log};
	log->writer = &log->local_writer;
}

int ml_log_set_writer(struct ml_log *log, struct ml_log_writer *w)
{
	if (log->opt.readonly)
		return ml_diag_set(ML_ERR_REFUSED,
				   "the log in %s was opened read-only: no writer can be set",
				   log->dir);
	w->log = log;
	if (log->writer != &log->local_writer) {
		log->writer->ops->stop(log->writer);
		log->writer->ops->free(log->writer);
	}
	log->writer = w;
	return 0;
}

void ml_log_stop_writer(struct ml_log *log)
{
	log->writer->ops->stop(log->writer);
}

const char *ml_log_writer_name(struct ml_log *log)
{
	return log->writer->ops->name;
}

const char *ml_log_node(struct ml_log *log)
{
	const struct ml_log_writer_ops *ops = log->writer->ops;
	return ops->node ? ops->node(log->writer) : NULL;
}

enum ml_node_state ml_log_node_state(struct ml_log *log, const char *node, size_t len)
{
	const struct ml_log_writer_ops *ops = log->writer->ops;
	if (!ops->node_state) /* alone: no node but this one */
		return ML_NODE_GONE;
	return ops->node_state(log->writer, node, len);
}

void ml_log_writer_done(struct ml_append *req, const struct ml_append *outcome)
{
	if (outcome != req) {
		req->err = outcome->err;
		memcpy(req->errmsg, outcome->errmsg, sizeof(req->errmsg));
		req->first_position = outcome->first_position;
		req->last_position = outcome->last_position;
		req->duplicate = outcome->duplicate;
		req->actual_version = outcome->actual_version;
	}
	ml_append_finish(req);
}
