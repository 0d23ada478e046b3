/*
 * A replicated log behind the writer seam (journal_writer.c): three nodes,
 * each a log in its own folder, share one ordered journal; threads append on
 * every node at once, with expected versions racing on one stream, retries of
 * acknowledged batches on another node, batches over two streams and appends
 * kicked later. Every node applies every entry with the same outcome, every
 * submitter gets the outcome its node applied, and the logs end byte for byte
 * the same. Then a fourth node applies the journal in a child process that is
 * killed with SIGKILL again and again: each restart resumes from where its log
 * stands, with no gap and no event twice, and it ends the same as the others.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <moonlog/log.h>
#include <moonlog/log_writer.h>

#include "test/journal_writer.h"
#include "test/log_compare.h"
#include "test/log_helpers.h"
#include "test/unit.h"

#define NODES	     3
#define THREADS	     2 /* per node */
#define ROUNDS	     20
#define OPS	     6 /* per round, besides the race */
#define SEGMENT_SIZE (64u << 10)
#define CRASHES	     10

enum kind { RACE, GUARDED, RETRY, PAIR, KICKED };

/* One batch a thread submitted, and what it got back. */
struct rec {
	enum kind kind;
	int node;
	char stream[32], id[48];
	int64_t expected;
	uint64_t want_first; /* RETRY: where the batch it retries was stored */
	uint64_t seq;	     /* the journal entry it became (journal_on_complete) */
	struct ml_append got;
	int done; /* KICKED: set by its done callback */
};

struct worker {
	int node, t;
	struct ml_log **logs;
	pthread_barrier_t *race;
	struct rec *recs;
	int n;
	unsigned seed;
};

static void on_complete(struct ml_append *req, uint64_t seq)
{
	((struct rec *)req->arg)->seq = seq;
}

static void kicked_done(struct ml_append *req)
{
	__atomic_store_n(&((struct rec *)req->arg)->done, 1, __ATOMIC_RELEASE);
}

/* Submits one single-event batch on node `node` and waits for its outcome. */
static void submit(struct worker *w, struct rec *r, int node)
{
	struct ml_event_in e = ev(r->stream, "Deposited", r->id[0] ? r->id : NULL);
	struct ml_expect_in x = {r->stream, strlen(r->stream), r->expected};
	struct ml_append req = {.events = &e, .n_events = 1, .expect = &x, .n_expect = 1};
	req.arg = r;
	r->node = node;
	ml_log_append(w->logs[node], &req);
	r->got = req;
}

static void pair(struct worker *w, struct rec *r)
{
	struct ml_event_in two[2] = {ev("pair-a", "Linked", NULL), ev("pair-b", "Linked", NULL)};
	struct ml_append req = {.events = two, .n_events = 2, .arg = r};
	r->node = w->node;
	ml_log_append(w->logs[w->node], &req);
	r->got = req;
}

/* Submitted to be kicked later, as the server does at the end of its turn. */
static void kicked(struct worker *w, struct rec *r)
{
	struct ml_event_in e = ev(r->stream, "Noted", NULL);
	r->got = (struct ml_append){
	    .events = &e, .n_events = 1, .arg = r, .done = kicked_done, .kick_later = 1};
	r->node = w->node;
	if (ml_log_submit(w->logs[w->node], &r->got) != 0)
		r->done = 1;
	ml_log_kick(w->logs[w->node]);
	while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
		usleep(100);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct ml_log *own = w->logs[w->node];
	for (int round = 0; round < ROUNDS; round++) {
		/* Everyone appends to one stream expecting the same version: one wins. */
		pthread_barrier_wait(w->race);
		struct rec *r = &w->recs[w->n++];
		r->kind = RACE;
		strcpy(r->stream, "race");
		snprintf(r->id, sizeof(r->id), "race-n%d-t%d-r%d", w->node, w->t, round);
		r->expected = round;
		submit(w, r, w->node);
		pthread_barrier_wait(w->race);
		for (int k = 0; k < OPS; k++) {
			r = &w->recs[w->n++];
			r->kind = (enum kind)(GUARDED + rand_r(&w->seed) % 4);
			if (r->kind ==
			    RETRY) { /* an acknowledged batch of this thread, elsewhere */
				struct rec *old = NULL;
				for (int i = w->n - 2; i >= 0 && !old; i--)
					if (w->recs[i].kind == GUARDED &&
					    w->recs[i].got.err == ML_OK)
						old = &w->recs[i];
				if (old == NULL) {
					r->kind = GUARDED;
				} else {
					strcpy(r->stream, old->stream);
					strcpy(r->id, old->id);
					r->expected = old->expected;
					r->want_first = old->got.first_position;
					submit(w, r, (w->node + 1 + k % (NODES - 1)) % NODES);
					continue;
				}
			}
			if (r->kind == GUARDED) { /* the version this node has seen: may be stale */
				snprintf(r->stream, sizeof(r->stream), "acct-%d",
					 rand_r(&w->seed) % 4);
				snprintf(r->id, sizeof(r->id), "n%d-t%d-r%d-k%d", w->node, w->t,
					 round, k);
				r->expected = (int64_t)ml_log_stream_version(own, r->stream,
									     strlen(r->stream));
				submit(w, r, w->node);
			} else if (r->kind == PAIR) {
				pair(w, r);
			} else {
				snprintf(r->stream, sizeof(r->stream), "kicked-%d", w->node);
				kicked(w, r);
			}
		}
	}
	return NULL;
}

static int same_outcome(const struct outcome *o, const struct ml_append *r)
{
	return o->seen && o->err == r->err && strcmp(o->errmsg, r->errmsg) == 0 &&
	       o->first_position == r->first_position && o->last_position == r->last_position &&
	       o->duplicate == r->duplicate &&
	       (r->err != ML_ERR_CONFLICT || o->actual_version == r->actual_version);
}

static int same_outcomes(const struct outcome *a, const struct outcome *b)
{
	return a->seen && b->seen && a->err == b->err && strcmp(a->errmsg, b->errmsg) == 0 &&
	       a->first_position == b->first_position && a->last_position == b->last_position &&
	       a->duplicate == b->duplicate && a->actual_version == b->actual_version;
}

static struct ml_log *open_node(const char *dir, enum ml_fsync fsync)
{
	return open_log_fsync(dir, SEGMENT_SIZE, fsync);
}

static void node_dir(char *out, size_t cap, const char *dir, int i)
{
	snprintf(out, cap, "%s/node-%d", dir, i);
}

static void test_nodes(const char *dir, struct journal *j)
{
	struct ml_log *logs[NODES];
	char dirs[NODES][300];
	int started = 1;
	for (int i = 0; i < NODES; i++) {
		node_dir(dirs[i], sizeof(dirs[i]), dir, i);
		/* node 0 syncs every write, the others leave it to the kernel: the same outcomes */
		logs[i] = open_node(dirs[i], i == 0 ? ML_FSYNC_ALWAYS : ML_FSYNC_NEVER);
		started &= logs[i] && journal_node_start(j, i, logs[i]) == 0;
	}
	ok(started, "three nodes share one journal");
	is_str(ml_log_writer_name(logs[0]), "journal (tests)", "behind the front of each log");

	pthread_barrier_t race;
	pthread_barrier_init(&race, NULL, NODES * THREADS);
	struct worker ws[NODES * THREADS];
	pthread_t th[NODES * THREADS];
	for (int i = 0; i < NODES * THREADS; i++) {
		ws[i] = (struct worker){.node = i / THREADS,
					.t = i % THREADS,
					.logs = logs,
					.race = &race,
					.seed = 7919u * (unsigned)i + 1};
		ws[i].recs = calloc(ROUNDS * (OPS + 1), sizeof(struct rec));
		pthread_create(&th[i], NULL, work, &ws[i]);
	}
	for (int i = 0; i < NODES * THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&race);
	for (int i = 0; i < NODES; i++)
		journal_node_sync(j, i);

	uint64_t n = journal_length(j);
	int agree = 1;
	for (uint64_t s = 1; s <= n; s++) {
		struct outcome first = journal_outcome(j, 0, s);
		for (int i = 1; i < NODES; i++) {
			struct outcome o = journal_outcome(j, i, s);
			agree &= same_outcomes(&first, &o);
		}
	}
	ok(n > 0 && agree, "every node applied all %llu entries with the same outcome",
	   (unsigned long long)n);

	int told = 1, races_won = 0, races_lost = 0, conflicts = 0, retried = 0, retries = 0;
	int kicked_ok = 1, pairs_ok = 1;
	for (int i = 0; i < NODES * THREADS; i++)
		for (int k = 0; k < ws[i].n; k++) {
			struct rec *r = &ws[i].recs[k];
			struct outcome o = journal_outcome(j, r->node, r->seq);
			told &= r->seq > 0 && same_outcome(&o, &r->got);
			if (r->kind == RACE)
				r->got.err == ML_OK ? races_won++ : races_lost++;
			conflicts += r->got.err == ML_ERR_CONFLICT;
			if (r->kind == RETRY) {
				retries++;
				retried += r->got.err == ML_OK && r->got.duplicate &&
					   r->got.first_position == r->want_first;
			}
			if (r->kind == KICKED)
				kicked_ok &= r->got.err == ML_OK && !r->got.duplicate;
			if (r->kind == PAIR)
				pairs_ok &= r->got.err == ML_OK &&
					    r->got.last_position == r->got.first_position + 1;
		}
	ok(told, "each submitter got the outcome its node applied, for the entry it became");
	ok(races_won == ROUNDS && races_lost == ROUNDS * (NODES * THREADS - 1),
	   "racing on one version, exactly one node wins each round (%d won, %d lost)", races_won,
	   races_lost);
	ok(conflicts >= races_lost, "conflicts are refused on every node alike (%d)", conflicts);
	ok(retries > 0 && retried == retries,
	   "a retry of an acknowledged batch on another node is a duplicate at the stored "
	   "position (%d of %d)",
	   retried, retries);
	ok(pairs_ok, "a batch over two streams gets two consecutive positions");
	ok(kicked_ok, "appends kicked later are published at the kick and appended");

	int same = 1;
	for (int i = 1; i < NODES; i++)
		same &= same_events(logs[0], logs[i]);
	ok(same, "every node holds the same events at the same positions (head %llu)",
	   (unsigned long long)ml_log_head(logs[0]));
	ok(ml_log_applied_seq(logs[0]) > 0 &&
	       ml_log_applied_seq(logs[0]) == ml_log_applied_seq(logs[NODES - 1]),
	   "and stands at the same entry of the journal");
	for (int i = 0; i < NODES; i++)
		ml_log_close(logs[i]);
	int records = 1, checked = 1;
	for (int i = 1; i < NODES; i++)
		records &= same_records(dirs[0], dirs[i]);
	struct ml_check_report rep;
	for (int i = 0; i < NODES; i++)
		checked &= ml_log_check(dirs[i], 0, &rep) == 0;
	ok(records, "their segment files hold the same records, byte for byte");
	ok(checked, "and each passes check");
	for (int i = 0; i < NODES * THREADS; i++)
		free(ws[i].recs);
}

/* The child that applies the journal tells the parent each entry it applied. */
static int progress_fd = -1;

static void report_applied(int node, uint64_t seq)
{
	(void)node;
	if (write(progress_fd, &seq, sizeof(seq)) != sizeof(seq))
		_exit(3);
}

/* Forks a child that applies the journal to the log in cdir; kills it with SIGKILL as soon
 * as it reports entry `target` applied (it goes on applying until then, and a few entries
 * more at most). */
static void apply_and_kill(struct journal *j, const char *cdir, uint64_t target)
{
	int fds[2];
	if (pipe(fds) != 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		progress_fd = fds[1];
		/* It applies a few entries past the target, no further: the kill may find them
		 * in flight, and a busy machine that delivers it late still cuts the journal
		 * (the flusher may write hundreds of entries in one group otherwise). */
		journal_apply_limit(j, target + 4);
		journal_on_applied(j, report_applied);
		struct ml_log *log = open_node(cdir, ML_FSYNC_ALWAYS);
		if (log == NULL || journal_node_start(j, NODES, log) != 0)
			_exit(2);
		pause();
		_exit(0);
	}
	close(fds[1]);
	uint64_t seq = 0;
	while (seq < target && read(fds[0], &seq, sizeof(seq)) == sizeof(seq))
		;
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	close(fds[0]);
}

/* The highest entry that wrote something at or below position `head` (0 for none). */
static uint64_t entry_at(struct journal *j, uint64_t head)
{
	uint64_t found = 0, n = journal_length(j);
	for (uint64_t s = 1; s <= n; s++) {
		struct outcome o = journal_outcome(j, 0, s);
		if (o.err == ML_OK && !o.duplicate && o.last_position <= head)
			found = s;
	}
	return found;
}

/*
 * A node killed with SIGKILL while it applies (in a child process, which has
 * the journal as the parent had it) restarts from its own log: a prefix of the
 * others', standing at the entry that wrote its last batch.
 */
static void test_crash(const char *dir, struct journal *j)
{
	char ref_dir[300], cdir[300];
	node_dir(ref_dir, sizeof(ref_dir), dir, 0);
	node_dir(cdir, sizeof(cdir), dir, NODES);
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = ref_dir;
	o.readonly = 1;
	struct ml_log *ref = ml_log_open(&o);
	struct ml_buf want = dump_log(ref);
	unsigned seed = (unsigned)getpid();
	int prefix = 1, standing = 1, cut = 0;
	uint64_t heads[CRASHES], from = 0, n = journal_length(j);
	for (int round = 0; round < CRASHES && from < n; round++) {
		/* killed somewhere in the first half of what is left, while it applies on */
		apply_and_kill(j, cdir, from + 1 + rand_r(&seed) % ((n - from + 1) / 2));
		struct ml_log *log = open_node(cdir, ML_FSYNC_ALWAYS);
		if (log == NULL) {
			prefix = 0;
			break;
		}
		struct ml_buf got = dump_log(log);
		heads[round] = ml_log_head(log);
		prefix &= got.len <= want.len &&
			  (got.len == 0 || memcmp(got.data, want.data, got.len) == 0);
		standing &= ml_log_applied_seq(log) == entry_at(j, heads[round]);
		cut += heads[round] > 0 && heads[round] < ml_log_head(ref);
		from = ml_log_applied_seq(log);
		ml_buf_free(&got);
		ml_log_close(log);
	}
	ok(prefix, "after each of %d kills the node holds a prefix of the others' events", CRASHES);
	ok(standing, "and stands at the entry that wrote its last batch");
	ok(cut > 0, "some kills came in the middle of the journal (%d of %d)", cut, CRASHES);

	struct ml_log *log = open_node(cdir, ML_FSYNC_ALWAYS);
	from = ml_log_applied_seq(log);
	journal_node_start(j, NODES, log);
	journal_node_sync(j, NODES);
	int agree = 1;
	for (uint64_t s = from + 1; s <= journal_length(j); s++) {
		struct outcome a = journal_outcome(j, 0, s), b = journal_outcome(j, NODES, s);
		agree &= same_outcomes(&a, &b);
	}
	ok(agree, "resumed after entry %llu, it applies the rest with the same outcomes",
	   (unsigned long long)from);
	ok(same_events(log, ref), "and ends with the same events as the others, no gap, none "
				  "twice");
	ml_log_close(log);
	ml_log_close(ref);
	ml_buf_free(&want);
	struct ml_check_report rep;
	is_int(ml_log_check(cdir, 0, &rep), 0, "check passes on the node killed %d times", CRASHES);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	char *dir = unit_tmpdir("replica");
	struct journal *j = journal_new();
	journal_on_complete(j, on_complete);
	test_nodes(dir, j);
	test_crash(dir, j);
	journal_free(j);
	rm_rf(dir);
	free(dir);
	return done_testing();
}
