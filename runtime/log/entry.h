/*
 * entry.h - a journal entry decoded (private to log/; the formats are in
 * entry.c, and format 1, which older moonlogs wrote, in entry1.c).
 */
#ifndef ML_LOG_ENTRY_H
#define ML_LOG_ENTRY_H

#include <moonlog/log_writer.h>

/* Events and guards an entry holds in place: most batches are one event (no allocation). */
#define ML_ENTRY_INLINE 2

/*
 * A decoded entry. The events point into the entry's bytes; the arrays are its own,
 * inside it when they fit (so decode in place: a copy of the struct would point into
 * the original).
 */
struct ml_entry {
	struct ml_event_in *events; /* a made id is left out (NULL), as a client leaves it */
	struct ml_expect_in *expect;
	char (*ids)[37]; /* the made ids, at the index of their event (and ids sent as 16 bytes) */
	size_t n_events, n_expect;
	int system;
	int64_t time;
	const uint8_t *first_id16; /* the first event's id as 16 bytes, if sent so */
	struct ml_event_in events_in[ML_ENTRY_INLINE];
	struct ml_expect_in expect_in[ML_ENTRY_INLINE];
	char ids_in[ML_ENTRY_INLINE][37];
};

/* 0, or -1 with diag (ML_ERR_CORRUPT) when the bytes are not an entry; ml_entry_free either way. */
int ml_entry_decode(const void *bytes, size_t len, struct ml_entry *d);
void ml_entry_free(struct ml_entry *d);

/* ---- for the decoders of each format ---- */

/* A cursor over the entry's bytes: each take fails once past the end. */
struct ml_entry_cursor {
	const uint8_t *p;
	size_t left;
};

static inline const uint8_t *ml_entry_take(struct ml_entry_cursor *c, size_t n)
{
	if (n > c->left)
		return NULL;
	const uint8_t *p = c->p;
	c->p += n, c->left -= n;
	return p;
}

/* -1 with diag: the bytes are no entry, for the reason `why`. */
int ml_entry_bad(const char *why);

/* The arrays for counts already bounded by the entry's length. */
void ml_entry_alloc(struct ml_entry *d);
/*
 * An event's last step in either format: a made id goes to `id` and the event keeps none
 * (as if the client gave none: the log makes it, here with these bytes); an empty meta or
 * data is none.
 */
void ml_entry_event_finish(struct ml_event_in *e, int made, char id[37]);

/* The rest of a format-1 entry, after its format byte (entry1.c). */
int ml_entry_decode1(struct ml_entry_cursor *c, size_t len, struct ml_entry *d);

#endif
