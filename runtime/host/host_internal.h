/*
 * host_internal.h - what the files of host/ share: the registry of hosted
 * scripts and the per-script bookkeeping of feeding and checkpoints.
 */
#ifndef ML_HOST_INTERNAL_H
#define ML_HOST_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <moonlog/host.h>

/* One script of the folder. */
struct ml_hosted {
	char *name, *file;
	struct ml_script *s; /* NULL when it failed to load */
	enum ml_script_kind kind;
	char *error;	    /* why it failed to load, or the host's own fault (an append) */
	uint64_t error_pos; /* the position of that fault */
	uint64_t pos;	    /* the last event fed */
	uint64_t saved;	    /* the position of the last checkpoint or snapshot */
	uint64_t saved_ms;  /* when it was taken (monotonic) */
	uint64_t since;	    /* handlers: events handled since the checkpoint */
	int caught_up;	    /* reached the head once */
	uint64_t fed;	    /* events fed since the host opened */
	uint64_t rate_fed, rate_ms;
	double rate; /* events per second, over the last second or so */

	/* handlers: the one append in flight */
	struct ml_host *h;
	struct ml_append req;
	int inflight;
	uint64_t inflight_pos;
	atomic_int done;
	struct ml_buf bytes; /* the checkpoint's data and the parked event's meta */
	struct ml_event_in *evs;
	size_t evs_cap;
};

struct ml_host {
	struct ml_host_options o;
	char *scripts_dir, *data_dir;
	struct ml_log *log;
	struct ml_hosted *v;
	size_t n;
	size_t turn; /* which script goes first in the next step */
	atomic_int inflight;
};

void ml_host_line(struct ml_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t ml_host_now_ms(void);
struct ml_hosted *ml_host_entry(struct ml_host *h, const struct ml_script *s);

/* step.c */
/* Reads the last checkpoint of a handler (0 if none). */
uint64_t ml_host_checkpoint_read(struct ml_host *h, const char *name);
/* Waits for a handler's append in flight and settles it. */
void ml_host_settle(struct ml_host *h, struct ml_hosted *e, int wait);
/* Writes a checkpoint (handlers, synchronously) or a snapshot (projections, reducers). */
void ml_host_save(struct ml_host *h, struct ml_hosted *e);

#endif
