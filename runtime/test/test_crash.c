/*
 * Crash test: a child process appends batches from several threads and
 * reports each acknowledged batch on a pipe; the parent kills it with SIGKILL
 * at a random moment, then opens the log and checks that every acknowledged
 * event is there exactly once, at the position it was acknowledged at, that
 * positions have no gaps, that unacknowledged batches are whole or absent,
 * and that check passes. Then the next round appends to the same log.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <moonlog/log.h>

#include "test/log_helpers.h"
#include "test/unit.h"

#define ROUNDS	     24
#define THREADS	     4
#define MAX_EVENTS   (1 << 20)
#define SEGMENT_SIZE (64u << 10)

struct ack { /* one acknowledged batch, as the child reports it */
	uint32_t round, thread, batch, n;
	uint64_t first_position;
};

static int report_fd;
static struct ml_log *child_log;
static int child_round;

static void batch_id(char *out, size_t cap, int round, int thread, int batch, int i)
{
	snprintf(out, cap, "r%d-t%d-b%d-e%d", round, thread, batch, i);
}

static void *child_thread(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned seed = (unsigned)(child_round * 7919 + t);
	for (int b = 0;; b++) {
		int n = 1 + rand_r(&seed) % 5;
		struct ml_event_in evs[5];
		char ids[5][48], streams[5][32];
		for (int i = 0; i < n; i++) {
			batch_id(ids[i], sizeof(ids[i]), child_round, t, b, i);
			snprintf(streams[i], sizeof(streams[i]), "acct-%d", rand_r(&seed) % 20);
			evs[i] = ev(streams[i], "Moved", ids[i]);
		}
		struct ml_append req = {.events = evs, .n_events = (size_t)n};
		if (ml_log_append(child_log, &req) != 0)
			_exit(3);
		struct ack a = {(uint32_t)child_round, (uint32_t)t, (uint32_t)b, (uint32_t)n,
				req.first_position};
		if (write(report_fd, &a, sizeof(a)) != sizeof(a))
			_exit(4);
	}
	return NULL;
}

static void run_child(const char *dir, int round, int fd)
{
	report_fd = fd;
	child_round = round;
	child_log = open_log(dir, SEGMENT_SIZE);
	if (child_log == NULL)
		_exit(2);
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, child_thread, (void *)(intptr_t)t);
	pause();
	_exit(0);
}

struct seen {
	char (*ids)[48];
	uint64_t n;
	int gaps;
};

static int seen_fn(const struct ml_event *e, void *arg)
{
	struct seen *s = arg;
	if (e->position != s->n + 1)
		s->gaps++;
	if (s->n < MAX_EVENTS)
		snprintf(s->ids[s->n], 48, "%.*s", e->id_len, e->id);
	s->n++;
	return 0;
}

/* Every acknowledged batch is at its position, whole; the log has no gaps or repeats. */
static int verify(const char *dir, struct ack *acks, size_t nacks, char *why, size_t cap)
{
	struct ml_log *log = open_log(dir, SEGMENT_SIZE);
	if (log == NULL)
		return snprintf(why, cap, "open failed: %s", ml_diag_last()), 0;
	struct seen s = {.ids = malloc((size_t)MAX_EVENTS * 48)};
	ml_log_read_all(log, 1, 0, seen_fn, &s);
	uint64_t head = ml_log_head(log);
	ml_log_close(log);
	int good = 1;
	if (s.gaps || s.n != head)
		good = 0, snprintf(why, cap, "%d gaps; %llu events for head %llu", s.gaps,
				   (unsigned long long)s.n, (unsigned long long)head);
	for (size_t i = 0; i < nacks && good; i++)
		for (uint32_t e = 0; e < acks[i].n && good; e++) {
			char id[48];
			batch_id(id, sizeof(id), (int)acks[i].round, (int)acks[i].thread,
				 (int)acks[i].batch, (int)e);
			uint64_t p = acks[i].first_position + e;
			if (p > s.n || strcmp(s.ids[p - 1], id) != 0)
				good = 0, snprintf(why, cap, "acknowledged %s missing at %llu", id,
						   (unsigned long long)p);
		}
	/* No id twice (a batch applied twice), and batches whole (events e0..en-1 together). */
	for (uint64_t p = 1; p < s.n && good; p++) {
		int r, t, b, e, r2, t2, b2, e2;
		sscanf(s.ids[p - 1], "r%d-t%d-b%d-e%d", &r, &t, &b, &e);
		sscanf(s.ids[p], "r%d-t%d-b%d-e%d", &r2, &t2, &b2, &e2);
		if (e2 > 0 && !(r2 == r && t2 == t && b2 == b && e2 == e + 1))
			good = 0, snprintf(why, cap, "batch torn apart at %llu (%s then %s)",
					   (unsigned long long)p, s.ids[p - 1], s.ids[p]);
	}
	free(s.ids);
	struct ml_check_report rep;
	if (good && ml_log_check(dir, 0, &rep) != 0)
		good = 0, snprintf(why, cap, "check failed: %s", ml_diag_last());
	return good;
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	char *dir = unit_tmpdir("crash");
	size_t cap = 1 << 16, nacks = 0;
	struct ack *acks = malloc(cap * sizeof(*acks));
	srand((unsigned)time(NULL));
	printf("# seed for kill delays: time-based\n");
	for (int round = 0; round < ROUNDS; round++) {
		int fds[2];
		if (pipe(fds) != 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			close(fds[0]);
			run_child(dir, round, fds[1]);
		}
		close(fds[1]);
		usleep((useconds_t)(5000 + rand() % 80000));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		size_t before = nacks;
		struct ack a;
		while (read(fds[0], &a, sizeof(a)) == sizeof(a)) {
			if (nacks == cap)
				acks = realloc(acks, (cap *= 2) * sizeof(*acks));
			acks[nacks++] = a;
		}
		close(fds[0]);
		char why[256] = "";
		int good = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
			   verify(dir, acks, nacks, why, sizeof(why));
		ok(good, "round %d: killed after %zu acknowledged batches; all present %s", round,
		   nacks - before, why);
	}
	free(acks);
	rm_rf(dir);
	free(dir);
	return done_testing();
}
