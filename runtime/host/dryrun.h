/*
 * dryrun.h - what the files of a dry run share (dryrun.c runs it,
 * dryrun_diff.c compares two states, dryrun_emits.c compares what two versions
 * of a handler emit).
 *
 * A dry run builds a candidate version of a hosted script beside the live one
 * and says what would change without swapping it in (docs/scripts-in-server.md,
 * "A dry run of a reload"). Its report is a msgpack map built a field at a
 * time: ml_kv counts the fields so that the map's header can go first.
 */
#ifndef ML_HOST_DRYRUN_H
#define ML_HOST_DRYRUN_H

#include <stdint.h>

#include <moonlog/log.h>
#include <moonlog/script.h>
#include <moonlog/util.h>

#define ML_DRY_EXAMPLES 10 /* examples of each kind of difference, by default */

/* The fields of a msgpack map, counted as they are added. */
struct ml_kv {
	struct ml_buf b;
	uint32_t n;
};
/* Adds a key (its value is written next, into kv->b). */
void ml_kv_key(struct ml_kv *kv, const char *key);
void ml_kv_uint(struct ml_kv *kv, const char *key, uint64_t v);
void ml_kv_str(struct ml_kv *kv, const char *key, const char *s);
/* Writes the map (header and fields) to out. */
void ml_kv_put(const struct ml_kv *kv, struct ml_buf *out);

/* ---- dryrun_diff.c: two msgpack values, key by key ---- */

/*
 * The keys that differ between two states: maps are walked key by key (in
 * any order), anything else is a value compared whole, maps inside it in any
 * order. A key is a path such as accounts["account-3"] or total; a key whose
 * value is a map on one side only is one key added or removed. The first
 * `examples` of each kind are kept with their values.
 */
struct ml_diff {
	uint32_t examples;
	uint64_t added, removed, changed, same;
	struct ml_buf added_ex, removed_ex, changed_ex; /* msgpack maps {key, old?, new?} */
	uint32_t n_added_ex, n_removed_ex, n_changed_ex;
};
/* Compares old with new; -1 with a diag when either is not msgpack. */
int ml_diff_states(struct ml_diff *d, const void *old, size_t old_len, const void *new_,
		   size_t new_len);
/* keys = {added, removed, changed, same}, added = [...], removed = [...], changed = [...]. */
void ml_diff_put(const struct ml_diff *d, struct ml_kv *kv);
void ml_diff_free(struct ml_diff *d);
/* Whether two msgpack values are equal, maps compared whatever the order of their keys. */
int ml_msgpack_same(const void *a, size_t alen, const void *b, size_t blen);

/* ---- dryrun_emits.c: a handler's candidate over the last events ---- */

struct ml_dry_emits;
/*
 * Sets up the comparison of candidate `s` with what the handler `name` emitted
 * (read from the log: its batches, told by their checkpoints) for the events
 * from..to. `file` names the candidate in the faults' lines. s is consumed
 * (freed with the comparison).
 */
struct ml_dry_emits *ml_dry_emits_new(struct ml_log *log, const char *name, struct ml_script *s,
				      const char *file, uint64_t from, uint64_t to,
				      uint32_t examples);
/* Runs the candidate over at most `budget` more events: 1 while there are more. */
int ml_dry_emits_step(struct ml_dry_emits *d, uint32_t budget, uint64_t deadline_ns);
/* The last event gone through. */
uint64_t ml_dry_emits_position(const struct ml_dry_emits *d);
/* The report's fields: handled, emits = {added, dropped, changed, same}, ... */
void ml_dry_emits_put(const struct ml_dry_emits *d, struct ml_kv *kv);
void ml_dry_emits_free(struct ml_dry_emits *d);

/* A fault for the report: {position, stream, type, error, line}; ev may be NULL. */
void ml_dry_put_fault(struct ml_buf *b, const struct ml_event *ev, const char *error,
		      const char *file);

#endif
