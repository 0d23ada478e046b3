/*
 * entry.h - a journal entry decoded (private to log/; the format is in entry.c).
 */
#ifndef ML_LOG_ENTRY_H
#define ML_LOG_ENTRY_H

#include <moonlog/log_writer.h>

/* A decoded entry. The events point into the entry's bytes; the arrays are its own. */
struct ml_entry {
	struct ml_event_in *events; /* a made id is left out (NULL), as a client leaves it */
	struct ml_expect_in *expect;
	char (*ids)[37]; /* the made ids, at the index of their event */
	size_t n_events, n_expect;
	int system;
	int64_t time;
};

/* 0, or -1 with diag (ML_ERR_CORRUPT) when the bytes are not an entry; ml_entry_free either way. */
int ml_entry_decode(const void *bytes, size_t len, struct ml_entry *d);
void ml_entry_free(struct ml_entry *d);

#endif
