/*
 * replicate.h - what `moonlog serve --replicate` asks of a replication plugin:
 * one function, looked up by name in the plugin's shared object, that puts a
 * replicated writer behind the log's seam (log_writer.h) and returns once this
 * node has caught up with the shared journal. docs/scale-out.md describes the
 * one plugin there is, plugins/jetstream (NATS JetStream).
 *
 * The plugin calls back into the moonlog executable (the ml_* functions marked
 * ML_API, which the executable exports), so it is built against these headers
 * and never links libmoonlog itself: there is one log, one diag, one allocator.
 */
#ifndef MOONLOG_REPLICATE_H
#define MOONLOG_REPLICATE_H

#include <moonlog/api.h>
#include <moonlog/log.h>

struct ml_replicate_options {
	const char *urls;   /* "nats://127.0.0.1:4222,nats://...": where the journal is */
	const char *stream; /* the journal's name there (default "MOONLOG") */
	int replicas;	    /* copies the journal keeps when the plugin creates it (default 3) */
	int quiet;	    /* no log lines on stderr (errors still come back through diag) */
};

/*
 * The plugin's entry point, named ML_REPLICATE_START: sets its writer on `log`
 * (an open log on which nothing was appended yet) and returns 0 once this node
 * has applied the journal as far as it reached when the call began; -1 with
 * diag (one line for a person: what is wrong, what to do) otherwise; the
 * caller then closes the log (which stops and frees a writer that was set).
 */
typedef int (*ml_replicate_start_fn)(struct ml_log *log, const struct ml_replicate_options *o);
#define ML_REPLICATE_START "ml_replicate_start"

/*
 * Optional: deletes the journal o->stream at o->urls with every entry in it,
 * once no node uses it. Only for a journal made for one run (`moonlog bench
 * cluster` makes its own); 0, or -1 with diag.
 */
typedef int (*ml_replicate_drop_fn)(const struct ml_replicate_options *o);
#define ML_REPLICATE_DROP "ml_replicate_drop"

#endif
