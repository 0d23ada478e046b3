/*
 * journal_writer.c - a replicated log modelled in one process (see
 * journal_writer.h): a writer behind the log's seam that is not the local one.
 *
 * What it shows a writer must do, and no more:
 *   submit: encode the batch (ml_log_entry_encode), remember the request by a
 *     token, publish the entry (or keep it for the kick, when kick_later);
 *   kick: publish what was kept, all at one go (where JetStream's plugin
 *     would send one message for the batches of one turn);
 *   apply: a tail thread hands every entry, in the journal's order, to
 *     ml_log_apply, kicking the log after each run (group commit on apply);
 *   being told: an apply's outcome completes the node's own request, if the
 *     entry is one it published (ml_log_writer_done);
 *   a failed write: ML_ERR_IO is no outcome; once every apply in flight has
 *     ended, the tail asks the log where it stands (ml_log_apply_resume) and
 *     applies again from the entry after it, and requests still wait;
 *   a restart: the tail starts after ml_log_applied_seq;
 *   who is there: this node's id, and what it believes of another one (here
 *     the test's word, journal_node_state, in place of heartbeats).
 * The head is never touched here: the log moves it as applies are written.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/log_writer.h>
#include <moonlog/util.h>

#include "test/journal_writer.h"

#define RUN_MAX 32 /* entries applied in one go (as a consumer fetches them in batches) */

struct entry {
	int node;	/* who published it */
	uint64_t token; /* its request there */
	uint8_t *bytes;
	size_t len;
};

struct node;

struct journal {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* an entry was published, or a node made progress */
	struct entry *v;
	uint64_t n, cap;
	struct outcome *out[JOURNAL_NODES];
	uint64_t out_cap[JOURNAL_NODES];
	struct node *nodes[JOURNAL_NODES];
	void (*on_complete)(struct ml_append *req, uint64_t seq);
	void (*on_applied)(int node, uint64_t seq);
	uint64_t apply_limit;			 /* journal_apply_limit */
	enum ml_node_state state[JOURNAL_NODES]; /* journal_node_state */
};

/* A request the node took, waiting for its entry's apply. */
struct waiting {
	uint64_t token;
	struct ml_append *req;
	struct waiting *next;
};

/* An entry encoded at submit, published at the kick. */
struct kept {
	uint64_t token;
	struct ml_buf bytes;
	struct kept *next;
};

struct node {
	struct ml_log_writer w; /* first: the log holds &w */
	struct journal *j;
	int id;
	struct ml_log *log;
	pthread_t tail;

	pthread_mutex_t mu; /* the two lists below */
	struct waiting *waiting;
	struct kept *kept, **kept_end;
	uint64_t next_token;

	/* under the journal's mutex */
	uint64_t cursor;   /* the next entry to apply */
	uint64_t last_own; /* the last entry it published */
	int outstanding;   /* applies not ended yet */
	int rewind;	   /* a write failed: apply again from where the log stands */
	int stopping;
	int held;      /* journal_node_hold: cut off, it applies nothing */
	char name[16]; /* "node-ID" */
};

/* One apply in flight. */
struct apply {
	struct ml_append req;
	struct node *n;
	uint64_t seq, token;
	int mine;
};

struct journal *journal_new(void)
{
	struct journal *j = ml_xcalloc(1, sizeof(*j));
	for (int i = 0; i < JOURNAL_NODES; i++)
		j->state[i] = ML_NODE_ALIVE;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	return j;
}

void journal_free(struct journal *j)
{
	for (uint64_t i = 0; i < j->n; i++)
		free(j->v[i].bytes);
	for (int i = 0; i < JOURNAL_NODES; i++)
		free(j->out[i]);
	free(j->v);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

uint64_t journal_length(struct journal *j)
{
	pthread_mutex_lock(&j->mu);
	uint64_t n = j->n;
	pthread_mutex_unlock(&j->mu);
	return n;
}

struct outcome journal_outcome(struct journal *j, int node, uint64_t seq)
{
	struct outcome o = {0};
	pthread_mutex_lock(&j->mu);
	if (seq >= 1 && seq <= j->out_cap[node])
		o = j->out[node][seq - 1];
	pthread_mutex_unlock(&j->mu);
	return o;
}

void journal_on_complete(struct journal *j, void (*fn)(struct ml_append *req, uint64_t seq))
{
	j->on_complete = fn;
}

void journal_apply_limit(struct journal *j, uint64_t seq)
{
	pthread_mutex_lock(&j->mu);
	j->apply_limit = seq;
	pthread_cond_broadcast(&j->cv); /* a limit lifted: the tails go on */
	pthread_mutex_unlock(&j->mu);
}

void journal_on_applied(struct journal *j, void (*fn)(int node, uint64_t seq))
{
	j->on_applied = fn;
}

void journal_node_state(struct journal *j, int id, enum ml_node_state st)
{
	pthread_mutex_lock(&j->mu);
	j->state[id] = st;
	pthread_mutex_unlock(&j->mu);
}

void journal_node_hold(struct journal *j, int id, int hold)
{
	pthread_mutex_lock(&j->mu);
	if (j->nodes[id])
		j->nodes[id]->held = hold;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

/* Appends an entry, taking its bytes (journal's mutex held). */
static void publish_locked(struct node *n, uint64_t token, struct ml_buf *bytes)
{
	struct journal *j = n->j;
	if (j->n == j->cap)
		j->v = ml_xrealloc(j->v, (j->cap = j->cap ? j->cap * 2 : 256) * sizeof(*j->v));
	j->v[j->n++] = (struct entry){n->id, token, (uint8_t *)bytes->data, bytes->len};
	n->last_own = j->n;
	*bytes = (struct ml_buf){0};
}

/* ---- the writer: submit, kick, stop, free --------------------------------- */

static int node_submit(struct ml_log_writer *w, struct ml_append *req, char (*ids)[37])
{
	struct node *n = (struct node *)w;
	struct ml_buf bytes = {0};
	ml_log_entry_encode(req, ids, ml_time_ms(), &bytes);
	struct waiting *wt = ml_xmalloc(sizeof(*wt));
	pthread_mutex_lock(&n->mu);
	*wt = (struct waiting){++n->next_token, req, n->waiting};
	n->waiting = wt; /* before it is published: its apply may come at once */
	if (req->kick_later) {
		struct kept *k = ml_xmalloc(sizeof(*k));
		*k = (struct kept){wt->token, bytes, NULL};
		*n->kept_end = k;
		n->kept_end = &k->next;
	}
	pthread_mutex_unlock(&n->mu);
	if (!req->kick_later) {
		pthread_mutex_lock(&n->j->mu);
		publish_locked(n, wt->token, &bytes);
		pthread_cond_broadcast(&n->j->cv);
		pthread_mutex_unlock(&n->j->mu);
	}
	return 0;
}

static void node_kick(struct ml_log_writer *w)
{
	struct node *n = (struct node *)w;
	pthread_mutex_lock(&n->mu);
	struct kept *k = n->kept;
	n->kept = NULL, n->kept_end = &n->kept;
	pthread_mutex_unlock(&n->mu);
	if (k == NULL)
		return;
	pthread_mutex_lock(&n->j->mu);
	for (struct kept *next; k; k = next) {
		next = k->next;
		publish_locked(n, k->token, &k->bytes);
		free(k);
	}
	pthread_cond_broadcast(&n->j->cv);
	pthread_mutex_unlock(&n->j->mu);
}

/* Applies every entry it published (so its requests complete), then the tail stops. */
static void node_stop(struct ml_log_writer *w)
{
	struct node *n = (struct node *)w;
	node_kick(w);
	pthread_mutex_lock(&n->j->mu);
	n->stopping = 1;
	pthread_cond_broadcast(&n->j->cv);
	pthread_mutex_unlock(&n->j->mu);
	pthread_join(n->tail, NULL);
}

static void node_free(struct ml_log_writer *w)
{
	struct node *n = (struct node *)w;
	pthread_mutex_lock(&n->j->mu);
	n->j->nodes[n->id] = NULL;
	pthread_mutex_unlock(&n->j->mu);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

static const char *node_name(struct ml_log_writer *w)
{
	return ((struct node *)w)->name;
}

/* "node-ID": what the test said of it; any other name is no node of this journal. */
static enum ml_node_state node_state(struct ml_log_writer *w, const char *id, size_t len)
{
	struct node *n = (struct node *)w;
	char name[16];
	if (len >= sizeof(name))
		return ML_NODE_GONE;
	memcpy(name, id, len);
	name[len] = '\0';
	int k = -1, end = 0;
	if (sscanf(name, "node-%d%n", &k, &end) != 1 || end != (int)len || k < 0 ||
	    k >= JOURNAL_NODES)
		return ML_NODE_GONE;
	pthread_mutex_lock(&n->j->mu);
	enum ml_node_state st = k == n->id ? ML_NODE_ALIVE : n->j->state[k];
	pthread_mutex_unlock(&n->j->mu);
	return st;
}

void journal_node_gone(struct journal *j, int id, int gone)
{
	journal_node_state(j, id, gone ? ML_NODE_GONE : ML_NODE_ALIVE);
}

static const struct ml_log_writer_ops journal_ops = {
    .name = "journal (tests)",
    .submit = node_submit,
    .kick = node_kick,
    .stop = node_stop,
    .free = node_free,
    .node = node_name,
    .node_state = node_state,
};

/* ---- the tail: applying the journal --------------------------------------- */

/* The request waiting for this token; taken off the list if `take`. */
static struct ml_append *waiting_for(struct node *n, uint64_t token, int take)
{
	struct ml_append *req = NULL;
	pthread_mutex_lock(&n->mu);
	for (struct waiting **p = &n->waiting; *p; p = &(*p)->next)
		if ((*p)->token == token) {
			struct waiting *wt = *p;
			req = wt->req;
			if (take)
				*p = wt->next, free(wt);
			break;
		}
	pthread_mutex_unlock(&n->mu);
	return req;
}

static void record(struct journal *j, int node, uint64_t seq, const struct ml_append *r)
{
	if (seq > j->out_cap[node]) {
		uint64_t cap = j->out_cap[node] ? j->out_cap[node] : 256;
		while (cap < seq)
			cap *= 2;
		j->out[node] = ml_xrealloc(j->out[node], cap * sizeof(struct outcome));
		memset(j->out[node] + j->out_cap[node], 0,
		       (cap - j->out_cap[node]) * sizeof(struct outcome));
		j->out_cap[node] = cap;
	}
	struct outcome *o = &j->out[node][seq - 1];
	*o = (struct outcome){1,
			      r->err,
			      "",
			      r->first_position,
			      r->last_position,
			      r->duplicate,
			      r->err == ML_ERR_CONFLICT ? r->actual_version : -1};
	memcpy(o->errmsg, r->errmsg, sizeof(o->errmsg));
}

/* An apply ended (on the flusher, a kicking thread, or the tail when refused at once). */
static void applied(struct ml_append *req)
{
	struct apply *a = req->arg;
	struct node *n = a->n;
	struct journal *j = n->j;
	int failed = req->err == ML_ERR_IO; /* not an outcome: this node failed to write */
	struct ml_append *orig = a->mine && !failed ? waiting_for(n, a->token, 1) : NULL;
	pthread_mutex_lock(&j->mu);
	if (failed)
		n->rewind = 1;
	else
		record(j, n->id, a->seq, req);
	n->outstanding--;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	if (!failed && j->on_applied)
		j->on_applied(n->id, a->seq);
	if (orig) {
		if (j->on_complete)
			j->on_complete(orig, a->seq);
		ml_log_writer_done(orig, req);
	}
	free(a);
}

static void apply_one(struct node *n, uint64_t seq, const struct entry *e)
{
	struct apply *a = ml_xcalloc(1, sizeof(*a));
	a->n = n, a->seq = seq, a->token = e->token, a->mine = e->node == n->id;
	struct ml_append *orig = a->mine ? waiting_for(n, e->token, 0) : NULL;
	a->req = (struct ml_append){.done = applied, .arg = a, .kick_later = 1};
	if (orig) /* the submitter asked for each event's position: the apply fills them in */
		a->req.positions = orig->positions, a->req.versions = orig->versions;
	if (ml_log_apply(n->log, &a->req, e->bytes, e->len, seq) != 0)
		applied(&a->req); /* refused, or a duplicate answered at once: no done call */
}

static void *tail_main(void *arg)
{
	struct node *n = arg;
	struct journal *j = n->j;
	pthread_mutex_lock(&j->mu);
	for (;;) {
		if (n->rewind && n->outstanding == 0) {
			n->rewind = 0;
			pthread_mutex_unlock(&j->mu);
			uint64_t from = ml_log_apply_resume(n->log);
			pthread_mutex_lock(&j->mu);
			n->cursor = from + 1;
			continue;
		}
		uint64_t last = j->apply_limit && j->apply_limit < j->n ? j->apply_limit : j->n;
		if (!n->rewind && !n->held && n->cursor <= last) {
			uint64_t from = n->cursor,
				 to = last < from + RUN_MAX ? last : from + RUN_MAX - 1;
			struct entry *run = ml_xmalloc((size_t)(to - from + 1) * sizeof(*run));
			memcpy(run, j->v + from - 1, (size_t)(to - from + 1) * sizeof(*run));
			n->cursor = to + 1;
			n->outstanding += (int)(to - from + 1);
			pthread_mutex_unlock(&j->mu);
			for (uint64_t s = from; s <= to; s++)
				apply_one(n, s, &run[s - from]);
			ml_log_apply_kick(n->log); /* the run is written as one group */
			free(run);
			pthread_mutex_lock(&j->mu);
			continue;
		}
		if (n->stopping && n->cursor > n->last_own && n->outstanding == 0 && !n->rewind)
			break;
		pthread_cond_wait(&j->cv, &j->mu);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

int journal_node_start(struct journal *j, int id, struct ml_log *log)
{
	struct node *n = ml_xcalloc(1, sizeof(*n));
	n->w.ops = &journal_ops;
	n->j = j, n->id = id, n->log = log;
	n->kept_end = &n->kept;
	snprintf(n->name, sizeof(n->name), "node-%d", id);
	n->cursor = ml_log_applied_seq(log) + 1; /* where it stands after a restart */
	pthread_mutex_init(&n->mu, NULL);
	if (ml_log_set_writer(log, &n->w) != 0) {
		pthread_mutex_destroy(&n->mu);
		free(n);
		return -1;
	}
	pthread_mutex_lock(&j->mu);
	j->nodes[id] = n;
	pthread_mutex_unlock(&j->mu);
	pthread_create(&n->tail, NULL, tail_main, n);
	return 0;
}

void journal_node_sync(struct journal *j, int id)
{
	pthread_mutex_lock(&j->mu);
	struct node *n = j->nodes[id];
	uint64_t upto = j->n;
	while (n && (n->cursor <= upto || n->outstanding > 0 || n->rewind))
		pthread_cond_wait(&j->cv, &j->mu);
	pthread_mutex_unlock(&j->mu);
}
