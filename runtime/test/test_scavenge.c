/*
 * test_scavenge.c - ml_log_scavenge: a predicate removes events, the finished
 * segments are rewritten without their bytes, and every reader sees exactly
 * the kept events at their positions and versions: $all, streams read forwards
 * and backwards in pages, the scan, versions, ids (a removed event's id is new
 * again), after a reopen and after the index is built again from the
 * segments; `moonlog check` passes and the removed bytes are in no file. Then
 * the same under steady appends and reads, and kill -9 at each step of a
 * segment's swap, in a child: the open and check find either segment whole,
 * nothing kept lost, no temporary file left.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log/faults.h"
#include "test/log_compare.h"
#include "test/log_helpers.h"
#include "test/unit.h"

#define MARKER "SECRET-MARKER-8c1f"

/* Removed: every event of a stream gone-*, and every third version of mixed. */
static int is_removed(const struct ml_event *e, void *arg)
{
	(void)arg;
	if (e->stream_len >= 5 && memcmp(e->stream, "gone-", 5) == 0)
		return 1;
	return e->stream_len == 5 && memcmp(e->stream, "mixed", 5) == 0 && e->version % 3 == 0;
}

static uint64_t append_data(struct ml_log *log, const char *stream, const char *id,
			    const char *data)
{
	struct ml_event_in e = ev(stream, "Noted", id);
	char msg[128];
	size_t n = strlen(data);
	msg[0] = (char)(0xa0 | n); /* a msgpack fixstr: under 32 bytes */
	memcpy(msg + 1, data, n);
	e.data = (const uint8_t *)msg;
	e.data_len = (uint32_t)n + 1;
	struct ml_append req = {.events = &e, .n_events = 1};
	return ml_log_append(log, &req) == 0 ? req.first_position : 0;
}

/* Appends the test's events: marked ones in gone-* and every third of mixed. */
static void fill(struct ml_log *log, int n)
{
	char stream[32], id[48];
	for (int i = 0; i < n; i++) {
		int kind = i % 4;
		snprintf(stream, sizeof(stream),
			 kind == 0   ? "gone-%d"
			 : kind == 1 ? "keep-%d"
				     : "mixed",
			 i % 7);
		snprintf(id, sizeof(id), "id-%d", i);
		append_data(log, stream, id, kind == 0 ? MARKER : "plain-data");
	}
}

/* Rolls segments so that everything before is in finished segments. */
static void roll(struct ml_log *log, int n)
{
	char id[48];
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "roll-%d", i);
		append_data(log, "keep-roll", id, "filler-filler-filler");
	}
}

static uint64_t dir_bytes(const char *dir, const char *suffix, int *marker_found)
{
	char logdir[512], path[1024];
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	DIR *d = opendir(logdir);
	uint64_t total = 0;
	for (struct dirent *de; d && (de = readdir(d));) {
		size_t l = strlen(de->d_name), sl = strlen(suffix);
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", logdir, de->d_name);
		int fd = open(path, O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
			total += (uint64_t)st.st_size;
		if (marker_found && st.st_size > 0) {
			char *buf = malloc((size_t)st.st_size);
			if (read(fd, buf, (size_t)st.st_size) == st.st_size &&
			    memmem(buf, (size_t)st.st_size, MARKER, strlen(MARKER)))
				(*marker_found)++;
			free(buf);
		}
		close(fd);
	}
	if (d)
		closedir(d);
	return total;
}

/* Every event of `before` either read back identical in `after`, or removed by the predicate;
 * returns the number removed, or -1 if anything else differs. */
struct evlist {
	struct ml_buf dump;
	uint64_t *pos;
	size_t *at, n, cap;
	uint8_t *removed; /* what the predicate says of each */
};

static int list_event(const struct ml_event *e, void *arg)
{
	struct evlist *l = arg;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->pos = realloc(l->pos, l->cap * sizeof(*l->pos));
		l->at = realloc(l->at, l->cap * sizeof(*l->at));
		l->removed = realloc(l->removed, l->cap);
	}
	l->pos[l->n] = e->position;
	l->at[l->n] = l->dump.len;
	l->removed[l->n] = (uint8_t)is_removed(e, NULL);
	l->n++;
	return dump_event(e, &l->dump);
}

static void list_free(struct evlist *l)
{
	ml_buf_free(&l->dump);
	free(l->pos);
	free(l->at);
	free(l->removed);
	memset(l, 0, sizeof(*l));
}

static size_t ev_len(const struct evlist *l, size_t i)
{
	return (i + 1 < l->n ? l->at[i + 1] : l->dump.len) - l->at[i];
}

static int64_t compare(const struct evlist *before, const struct evlist *after)
{
	size_t j = 0;
	int64_t gone = 0;
	for (size_t i = 0; i < before->n; i++) {
		if (j < after->n && after->pos[j] == before->pos[i]) {
			if (ev_len(before, i) != ev_len(after, j) ||
			    memcmp(before->dump.data + before->at[i],
				   after->dump.data + after->at[j], ev_len(before, i)) != 0)
				return -1;
			j++;
		} else if (before->removed[i]) {
			gone++;
		} else {
			printf("# kept position %llu is missing\n",
			       (unsigned long long)before->pos[i]);
			return -1;
		}
	}
	while (j < after->n && before->n && after->pos[j] > before->pos[before->n - 1])
		j++; /* appended after `before` was taken */
	return j == after->n ? gone : -1;
}

static struct evlist read_list(struct ml_log *log)
{
	struct evlist l = {0};
	ml_log_read_all(log, 1, 0, list_event, &l);
	return l;
}

static struct evlist scan_list(struct ml_log *log)
{
	struct evlist l = {0};
	ml_log_scan(log, 1, 0, list_event, &l);
	return l;
}

/* The stream read in pages of `page`, forwards by version or backwards, as the versions seen. */
static int read_pages(struct ml_log *log, const char *stream, uint64_t page, int backwards,
		      uint64_t *out, int max)
{
	struct collect c = {0};
	int n = 0;
	uint64_t from = backwards ? 0 : 1;
	for (;;) {
		c.n = 0;
		int64_t got = ml_log_read_stream(log, stream, strlen(stream), from, page, backwards,
						 collect_fn, &c);
		for (int i = 0; i < c.n && n < max; i++)
			out[n++] = c.ver[i];
		if (got <= 0 || (uint64_t)got < page)
			break;
		from = backwards ? c.ver[c.n - 1] - 1 : c.ver[c.n - 1] + 1;
		if (backwards && from == 0)
			break;
	}
	return n;
}

/* What every reader of mixed must see: its versions that are not multiples of 3, up to v. */
static int mixed_expected(uint64_t v, int backwards, uint64_t *out)
{
	int n = 0;
	for (uint64_t k = 1; k <= v; k++)
		if (k % 3)
			out[n++] = k;
	if (backwards)
		for (int i = 0; i < n / 2; i++) {
			uint64_t t = out[i];
			out[i] = out[n - 1 - i], out[n - 1 - i] = t;
		}
	return n;
}

static int same_versions(const uint64_t *a, int na, const uint64_t *b, int nb)
{
	return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(*a)) == 0);
}

static struct ml_log *open_small(const char *dir)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.segment_size = 16384; /* many segments */
	o.index_block = 32;	/* many blocks per segment, and runs merged from them */
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		printf("# open failed: %s\n", ml_diag_last());
	return log;
}

/* The readers' view, checked against `before` (the log before any scavenge) and what the
 * mixed stream holds (version vmixed). */
static void check_views(struct ml_log *log, const struct evlist *before, int64_t removed,
			uint64_t vmixed, const char *when)
{
	struct evlist all = read_list(log), scan = scan_list(log);
	is_int(compare(before, &all), removed,
	       "%s: $all reads every kept event as it was, and "
	       "not the %lld removed",
	       when, (long long)removed);
	is_int(compare(before, &scan), removed, "%s: the scan reads the same", when);
	list_free(&all);
	list_free(&scan);

	static uint64_t got[4096], want[4096];
	int ng = read_pages(log, "mixed", 4, 0, got, 4096), nw = mixed_expected(vmixed, 0, want);
	ok(same_versions(got, ng, want, nw),
	   "%s: mixed read forwards in pages of 4 skips the "
	   "removed versions (%d of %d)",
	   when, ng, nw);
	ng = read_pages(log, "mixed", 3, 1, got, 4096), nw = mixed_expected(vmixed, 1, want);
	ok(same_versions(got, ng, want, nw), "%s: and backwards in pages of 3 (%d of %d)", when, ng,
	   nw);
	is_int(ml_log_stream_version(log, "mixed", 5), vmixed, "%s: mixed keeps its version", when);
}

/* Waits until the index has written every finished segment's events to its files. */
static void wait_indexed(struct ml_log *log)
{
	struct ml_log_stats s;
	for (int i = 0; i < 20000; i++) {
		ml_log_stats(log, &s);
		if (s.index_pending == 0)
			return;
		usleep(1000);
	}
}

/* A log of `events` events and `rolled` more that push them into finished segments, indexed:
 * what it holds (`before`), and how many of those the predicate removes. */
static struct ml_log *prepared(const char *dir, int events, int rolled, struct evlist *before,
			       int64_t *expect)
{
	struct ml_log *log = open_small(dir);
	fill(log, events);
	roll(log, rolled);
	wait_indexed(log);
	*before = read_list(log);
	*expect = 0;
	for (size_t i = 0; i < before->n; i++)
		*expect += before->removed[i];
	return log;
}

static void test_basic(const char *dir)
{
	struct ml_log *log = open_small(dir);
	fill(log, 1200);
	uint64_t vmixed = ml_log_stream_version(log, "mixed", 5);
	uint64_t vgone = ml_log_stream_version(log, "gone-3", 6);
	roll(log, 400); /* every marked event in a finished segment */
	wait_indexed(log);
	struct evlist before = read_list(log);
	uint64_t seg_before = dir_bytes(dir, ".seg", NULL);

	struct ml_scavenge_stats st;
	ok(ml_log_scavenge(log, is_removed, NULL, &st) == 0, "a scavenge runs: %s", ml_diag_last());
	int64_t expect = 0;
	for (size_t i = 0; i < before.n; i++)
		expect += before.removed[i];
	is_int(st.events_removed, expect, "it removed every event the predicate names (%lld)",
	       (long long)expect);
	ok(st.rewritten > 0 && st.segments_done == st.segments && !st.running,
	   "it rewrote %llu of %llu segments", (unsigned long long)st.rewritten,
	   (unsigned long long)st.segments);
	uint64_t seg_after = dir_bytes(dir, ".seg", NULL);
	is_int(seg_before - seg_after, st.bytes_reclaimed,
	       "the segments are smaller by the bytes it reports (%llu of %llu)",
	       (unsigned long long)st.bytes_reclaimed, (unsigned long long)seg_before);
	check_views(log, &before, expect, vmixed, "after");
	is_int(ml_log_stream_version(log, "gone-3", 6), vgone,
	       "a stream whose every event is removed keeps its version");

	/* ids: a removed event's is new again; a kept one's is still a duplicate */
	uint64_t head = ml_log_head(log);
	uint64_t p_kept = append_data(log, "keep-1", "id-1", "again");
	ok(p_kept > 0 && p_kept <= head, "a retry of a kept event's id returns its position");
	uint64_t p_gone = append_data(log, "gone-0", "id-0", "again");
	ok(p_gone == head + 1, "a retry of a removed event's id is stored as new (at %llu)",
	   (unsigned long long)p_gone);
	uint64_t vgone0 = 0;
	struct collect c = {0};
	ml_log_read_stream(log, "gone-0", 6, 0, 1, 1, collect_fn, &c);
	vgone0 = c.n == 1 ? c.ver[0] : 0;
	ok(c.n == 1 && c.pos[0] == p_gone && vgone0 == ml_log_stream_version(log, "gone-0", 6) &&
	       vgone0 > 1,
	   "its stream's versions go on (version %llu), and it is the stream's only event read",
	   (unsigned long long)vgone0);
	c.n = 0;
	ml_log_read_stream(log, "gone-0", 6, 1, 0, 0, collect_fn, &c);
	is_int(c.n, 1, "reading gone-0 from version 1 gives only the new event");

	struct ml_scavenge_stats again;
	ok(ml_log_scavenge(log, is_removed, NULL, &again) == 0 && again.rewritten == 0,
	   "a second scavenge finds nothing more to remove in what it rewrote");
	ml_log_close(log);

	int found = 0;
	dir_bytes(dir, "", &found);
	is_int(found, 0,
	       "the removed events' marker is in no file of the log (segments, index "
	       "files, runs)");
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0 && r.scavenged > 0 && r.stubs == (uint64_t)expect &&
	       r.bad_index[0] == 0,
	   "check passes on the scavenged log (%llu segments scavenged, %llu stubs, %llu blocks)",
	   (unsigned long long)r.scavenged, (unsigned long long)r.stubs,
	   (unsigned long long)r.index_blocks);

	/* the new event must be added to the expectations: only gone-0 got one more */
	log = open_small(dir);
	struct evlist all = read_list(log);
	ok(all.n == before.n - (size_t)expect + 1, "after a reopen $all reads the kept events and "
						   "the new one");
	list_free(&all);
	ml_log_close(log);

	/* the index built again from the segments alone (stubs included) */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -f %s/log/*.idx %s/log/*.run", dir, dir);
	ok(system(cmd) == 0, "the index files are removed");
	log = open_small(dir);
	struct ml_log_stats ls;
	ml_log_stats(log, &ls);
	ok(ls.index_rebuilt > 0, "the open builds the index again (%llu segments)",
	   (unsigned long long)ls.index_rebuilt);
	check_views(log, &before, expect, vmixed, "rebuilt");
	is_int(ml_log_stream_version(log, "gone-3", 6), vgone, "rebuilt: gone-3 keeps its version");
	head = ml_log_head(log);
	ok(append_data(log, "gone-4", "id-4", "x") == head + 1,
	   "rebuilt: a removed event's id is new");
	p_kept = append_data(log, "keep-5", "id-5", "x");
	ok(p_kept > 0 && p_kept <= head, "rebuilt: a kept event's id is a duplicate");
	ml_log_close(log);
	ok(ml_log_check(dir, 0, &r) == 0, "check passes after the rebuild");
	list_free(&before);
}

/* ---- online: appends and reads go on while it runs ---- */

struct load {
	struct ml_log *log;
	volatile int stop;
	uint64_t acked[100000];
	int n;
	int read_errors, reads, out_of_order;
};

static void *append_steadily(void *arg)
{
	struct load *l = arg;
	char id[48];
	while (!l->stop && l->n < 100000) {
		snprintf(id, sizeof(id), "live-%d", l->n);
		uint64_t p = append_data(l->log, "live", id, "live-data");
		if (p == 0)
			break;
		l->acked[l->n++] = p;
	}
	return NULL;
}

struct order {
	uint64_t last;
	int bad;
};

static int in_order(const struct ml_event *e, void *arg)
{
	struct order *o = arg;
	o->bad += e->position <= o->last;
	o->last = e->position;
	return 0;
}

static void *read_steadily(void *arg)
{
	struct load *l = arg;
	while (!l->stop) {
		struct order o = {0};
		if (ml_log_read_all(l->log, 1, 0, in_order, &o) < 0 ||
		    ml_log_scan(l->log, 1, 0, in_order, &(struct order){0}) < 0 ||
		    ml_log_read_stream(l->log, "mixed", 5, 1, 0, 0, in_order, &(struct order){0}) <
			0)
			l->read_errors++;
		l->out_of_order += o.bad;
		l->reads++;
	}
	return NULL;
}

static int at_position(const struct ml_event *e, void *arg)
{
	*(uint64_t *)arg = e->position;
	return 1;
}

static void test_online(const char *dir)
{
	struct evlist before;
	int64_t expect;
	struct ml_log *log = prepared(dir, 1200, 400, &before, &expect);
	uint64_t vmixed = ml_log_stream_version(log, "mixed", 5);

	static struct load l;
	l.log = log;
	pthread_t ta, tr;
	pthread_create(&ta, NULL, append_steadily, &l);
	pthread_create(&tr, NULL, read_steadily, &l);
	while (l.n < 200) /* the appends are under way */
		usleep(1000);
	struct ml_scavenge_stats st;
	int rc = ml_log_scavenge(log, is_removed, NULL, &st);
	int during = l.n;
	while (l.n < during + 200)
		usleep(1000);
	l.stop = 1;
	pthread_join(ta, NULL);
	pthread_join(tr, NULL);
	ok(rc == 0 && st.events_removed == (uint64_t)expect,
	   "a scavenge under steady appends and reads removes all %lld (%s)", (long long)expect,
	   rc ? ml_diag_last() : "ok");
	ok(l.read_errors == 0 && l.out_of_order == 0 && l.reads > 0,
	   "%d reads of $all, the scan and a stream meanwhile: no error, positions in order",
	   l.reads);
	int missing = 0;
	for (int i = 0; i < l.n; i++) {
		uint64_t got = 0;
		ml_log_read_all(log, l.acked[i], 1, at_position, &got);
		missing += got != l.acked[i];
	}
	ok(missing == 0 && l.n > 400,
	   "each of the %d appends acknowledged meanwhile is read at "
	   "its position",
	   l.n);
	check_views(log, &before, expect, vmixed, "online");
	ml_log_close(log);
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0, "check passes: %s", r.bad_segment);
	list_free(&before);
}

/* ---- kill -9 during a scavenge ---- */

struct kill_at {
	int step, segment, seen;
};

static void kill_at_step(int step, uint64_t first, void *arg)
{
	struct kill_at *k = arg;
	(void)first;
	if (step == ML_SCAV_SEG_WRITTEN)
		k->seen++;
	if (step == k->step && k->seen == k->segment)
		raise(SIGKILL);
}

static int tmp_files(const char *dir)
{
	char logdir[512];
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	DIR *d = opendir(logdir);
	int n = 0;
	for (struct dirent *de; d && (de = readdir(d));)
		n += strstr(de->d_name, ".tmp") != NULL;
	if (d)
		closedir(d);
	return n;
}

/* One round: a child scavenges and is killed at `step` of its second segment (0: at a random
 * moment instead); then the log opens whole. */
static void kill_round(const char *dir, int step, unsigned seed)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s/log", dir);
	if (system(cmd) != 0)
		return;
	struct evlist before;
	int64_t expect;
	struct ml_log *log = prepared(dir, 600, 300, &before, &expect);
	ml_log_close(log);

	pid_t pid = fork();
	if (pid == 0) {
		struct ml_log *c = open_small(dir);
		struct kill_at k = {step, 2, 0};
		if (c == NULL)
			_exit(2);
		if (step)
			ml_log_scavenge_steps(c, kill_at_step, &k);
		ml_log_scavenge(c, is_removed, NULL, NULL);
		_exit(0);
	}
	if (step == 0)
		usleep(rand_r(&seed) % 40000);
	int status = 0;
	if (step == 0)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;

	struct ml_check_report r;
	int checked = ml_log_check(dir, 0, &r) == 0 && r.bad_index[0] == 0;
	log = open_small(dir);
	/* A leftover of the killed scavenge stays until something removes it; a temporary file
	 * of the log's own background writers (an index being written) is renamed soon: wait
	 * for those, a generous while. */
	int tmp = tmp_files(dir);
	for (int i = 0; tmp > 0 && i < 300; i++) {
		usleep(10000);
		tmp = tmp_files(dir);
	}
	struct evlist mid = read_list(log);
	int64_t gone_mid = compare(&before, &mid);
	struct ml_scavenge_stats st;
	int rc = log ? ml_log_scavenge(log, is_removed, NULL, &st) : -1;
	struct evlist after = read_list(log);
	int64_t gone = compare(&before, &after);
	ml_log_close(log);
	int checked_after = ml_log_check(dir, 0, &r) == 0;
	ok((killed || step == 0) && checked && tmp == 0 && gone_mid >= 0 && gone_mid <= expect &&
	       rc == 0 && gone == expect && checked_after,
	   "killed %s: check passes (%d), the open leaves no temporary file (%d), every kept "
	   "event is read as it was with %lld of %lld removed; a scavenge then completes (%lld) "
	   "and checks",
	   step ? (const char *[]){"", "with the new segment written", "with its index written",
				   "with the segment renamed", "with the index renamed",
				   "with the folder synced", "after the swap"}[step]
		: "at a random moment",
	   checked, tmp, (long long)gone_mid, (long long)expect, (long long)gone);
	list_free(&before);
	list_free(&mid);
	list_free(&after);
}

/* ---- stopping: a closing server asks a running scavenge to stop ---- */

static void stop_after_first(int step, uint64_t first, void *arg)
{
	(void)first;
	if (step == ML_SCAV_SWAPPED)
		ml_log_scavenge_stop(arg);
}

static void test_stop(const char *dir)
{
	struct evlist before;
	int64_t expect;
	struct ml_log *log = prepared(dir, 1200, 400, &before, &expect);
	uint64_t vmixed = ml_log_stream_version(log, "mixed", 5);
	ml_log_scavenge_steps(log, stop_after_first, log);
	struct ml_scavenge_stats st;
	int rc = ml_log_scavenge(log, is_removed, NULL, &st);
	ok(rc == -1 && ml_diag_code() == ML_ERR_BUSY && st.rewritten == 1 && st.error[0],
	   "asked to stop, a scavenge stops after the segment it rewrites: %s", st.error);
	ml_log_scavenge_steps(log, NULL, NULL);
	struct evlist mid = read_list(log);
	int64_t gone = compare(&before, &mid);
	ok(gone > 0 && gone < expect, "what it did stays (%lld of %lld removed)", (long long)gone,
	   (long long)expect);
	ok(ml_log_scavenge(log, is_removed, NULL, &st) == 0 && st.error[0] == 0,
	   "the next one finishes");
	check_views(log, &before, expect, vmixed, "stopped, then finished");
	ml_log_close(log);
	list_free(&before);
	list_free(&mid);
}

static void test_kill(const char *dir)
{
	for (int step = ML_SCAV_SEG_WRITTEN; step <= ML_SCAV_SWAPPED; step++)
		kill_round(dir, step, 0);
	for (unsigned i = 0; i < 4; i++)
		kill_round(dir, 0, 7 + i);
}

int main(void)
{
	const struct unit_dir_test tests[] = {
	    {"scavenge", test_basic},
	    {"scavenge-online", test_online},
	    {"scavenge-stop", test_stop},
	    {"scavenge-kill", test_kill},
	};
	run_in_tmpdirs(tests, sizeof(tests) / sizeof(tests[0]));
	return done_testing();
}
