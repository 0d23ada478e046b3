/*
 * journal_writer.h - a second writer behind the log's seam, for the tests: a
 * replicated log modelled in one process.
 *
 * A journal is a shared, ordered list of encoded batches (entries), numbered
 * from 1, behind a mutex: what JetStream is to the plugin. A node is one log
 * (its own data folder) with a journal writer set behind its front: a batch
 * submitted to the log is encoded and published to the journal (at once, or at
 * ml_log_kick for kick_later ones, all of them at one go), and the node's tail
 * thread applies every entry of the journal, in order, to its log
 * (ml_log_apply). A submitter's request completes when its own node's apply
 * reaches its entry, with the outcome that apply found. Nothing here knows
 * the server, the scripts or the routing: only log.h and log_writer.h.
 *
 * Who is there (ml_log_node, ml_log_node_state): node `id` is "node-ID", and
 * the test decides what every node believes of it (journal_node_state), as
 * heartbeats would; a node can be cut off (journal_node_hold): what it
 * publishes still goes in, but it applies nothing, as a node that lost the
 * journal's feed while it still runs.
 */
#ifndef ML_TEST_JOURNAL_WRITER_H
#define ML_TEST_JOURNAL_WRITER_H

#include <stdint.h>

#include <moonlog/log.h>

#define JOURNAL_NODES 8

/* What a node's apply found for an entry: the same on every node, or the test fails. */
struct outcome {
	int seen; /* the node applied this entry */
	enum ml_err err;
	char errmsg[256];
	uint64_t first_position, last_position;
	int duplicate;
	int64_t actual_version;
};

struct journal;
struct journal *journal_new(void);
/* Frees the journal, once every node using it is closed. */
void journal_free(struct journal *j);
/* The number of entries published so far. */
uint64_t journal_length(struct journal *j);
/* The outcome node `node` recorded for entry `seq` (a copy; zero if not applied yet). */
struct outcome journal_outcome(struct journal *j, int node, uint64_t seq);

/*
 * Makes `log` node `id` (< JOURNAL_NODES) of the journal: sets a journal writer
 * behind its front and starts its tail thread, which applies the journal from
 * the entry after ml_log_applied_seq(log). The log owns the writer: it is
 * stopped and freed by ml_log_close, once the node has applied every entry it
 * published. 0, or -1 with diag.
 */
int journal_node_start(struct journal *j, int id, struct ml_log *log);

/* Waits until the node's log holds the outcome of every entry published so far. */
void journal_node_sync(struct journal *j, int id);

/*
 * Called (on the tail or flusher thread) just before a request the node took
 * is completed, with the sequence of the entry it became: for tests that match
 * what a submitter got against what every node applied.
 */
void journal_on_complete(struct journal *j, void (*fn)(struct ml_append *req, uint64_t seq));
/* Called (on the tail or flusher thread) each time a node has recorded an entry's outcome. */
void journal_on_applied(struct journal *j, void (*fn)(int node, uint64_t seq));
/* Nodes apply no entry past `seq` (0: no limit): a crash test's node stops short of the end. */
void journal_apply_limit(struct journal *j, uint64_t seq);

/* What every node believes of node `id` from now on (ML_NODE_ALIVE until set). */
void journal_node_state(struct journal *j, int id, enum ml_node_state st);
/* Cuts node `id` off (1: it applies nothing more) or lets it go on (0). Let it go before its
 * log closes: closing waits for the node to apply what it published. */
void journal_node_hold(struct journal *j, int id, int hold);
/* journal_node_state's two common cases: node `id` is gone (1), or alive (0). */
void journal_node_gone(struct journal *j, int id, int gone);

#endif
