/*
 * driver.c - a small fuzzing engine for compilers without libFuzzer (gcc): it
 * runs a target's LLVMFuzzerTestOneInput over the corpus, then over mutations
 * of it for a bounded time, and keeps the mutations that reach new code.
 *
 * It reads the part of libFuzzer's command line that the build and tools/fuzz.sh
 * use, so one command line drives either engine:
 *
 *   fuzz_NAME [-max_total_time=S] [-runs=N] [-max_len=N] [-seed=N] [-timeout=S]
 *             [-dict=FILE] [-artifact_prefix=P] [-merge=1] [-use_counters=0] DIR|FILE ...
 *
 * Inputs that reach new code are written to the first argument when it is a
 * directory, as libFuzzer does; files given by name are run once each (to
 * reproduce a failure). With -merge=1 the inputs of the other directories that
 * add coverage to the first one are copied into it, and nothing else runs.
 *
 * Coverage comes from gcc's -fsanitize-coverage=trace-pc (CMakeLists.txt
 * compiles the core and the target with it, not this file): every basic block
 * calls __sanitizer_cov_trace_pc, which counts the edge from the block before
 * into a 64 KiB map; an input is new when an edge's count reaches a bucket
 * (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+) no input reached before. A crash,
 * an assertion, a sanitizer report or a run longer than -timeout writes the
 * input to Pcrash-HASH (or Ptimeout-HASH, P the -artifact_prefix) and exits
 * non-zero.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* The sanitizers' hook, present when the program is built with them. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

/* ---- coverage ------------------------------------------------------------- */

#define MAP_SIZE (1u << 16)

static uint8_t hits[MAP_SIZE], seen[MAP_SIZE];
static long use_counters = 1; /* -use_counters=0: an edge counts once, however often taken */
static __thread uintptr_t prev_block;
static size_t features; /* (edge, bucket) pairs seen so far */

void __sanitizer_cov_trace_pc(void)
{
	uintptr_t block = ((uintptr_t)__builtin_return_address(0) * 0x9e3779b97f4a7c15ull) >> 48;
	size_t i = (block ^ prev_block) & (MAP_SIZE - 1);
	/* Other threads of the target (the log's flusher) count too: relaxed atomics keep
	 * that well defined, and a lost count only blurs a bucket. */
	uint8_t n = __atomic_load_n(&hits[i], __ATOMIC_RELAXED);
	if (n != 255)
		__atomic_store_n(&hits[i], (uint8_t)(n + 1), __ATOMIC_RELAXED);
	prev_block = block >> 1;
}

static uint8_t bucket(uint8_t n)
{
	return n == 0	  ? 0
	       : n <= 3	  ? (uint8_t)(1u << (n - 1))
	       : n <= 7	  ? 8
	       : n <= 15  ? 16
	       : n <= 31  ? 32
	       : n <= 127 ? 64
			  : 128;
}

/* Folds the map of the last run into `seen`; returns how many new (edge, bucket) pairs. */
static size_t take_coverage(void)
{
	size_t fresh = 0;
	uint64_t *w = (uint64_t *)hits;
	for (size_t k = 0; k < MAP_SIZE / 8; k++) {
		if (w[k] == 0)
			continue;
		for (size_t i = 8 * k; i < 8 * k + 8; i++) {
			uint8_t b = use_counters ? bucket(hits[i]) : hits[i] != 0;
			if (b & ~seen[i]) {
				seen[i] |= b;
				fresh += (size_t)__builtin_popcount(b);
			}
		}
		w[k] = 0;
	}
	features += fresh;
	return fresh;
}

/* ---- options, inputs, artifacts --------------------------------------------- */

static struct {
	long max_total_time, runs, max_len, timeout, merge;
	uint64_t seed;
	const char *dict, *artifact_prefix;
} opt = {.runs = -1, .max_len = 0, .timeout = 60, .artifact_prefix = ""};

struct input {
	uint8_t *data;
	size_t n;
};

static struct input *corpus;
static size_t ncorpus;
static const char *out_dir; /* where new inputs go: the first directory given */

/* The input running now, for the crash and timeout reports. */
static const uint8_t *volatile cur_data;
static volatile size_t cur_n;
static volatile uint64_t cur_start_ns; /* 0 when no input runs */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* Writes p to PREFIX + its hash, into path; async-signal-safe (the crash handler uses it). */
static void save(const char *prefix, const uint8_t *p, size_t n, char *path, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h = fnv(p, n);
	size_t k = 0;
	for (const char *s = prefix; *s && k + 20 < cap; s++)
		path[k++] = *s;
	for (int i = 60; i >= 0; i -= 4)
		path[k++] = hex[(h >> i) & 15];
	path[k] = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, p + off, n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
}

static void say(const char *s)
{
	ssize_t w = write(2, s, strlen(s));
	(void)w;
}

/* The input that was running when the process died, written where it can be replayed. */
static char crash_prefix[4096], timeout_prefix[4096], corpus_prefix[4096];
static const char *program = "fuzz_NAME";

static void report_death(const char *prefix)
{
	static volatile int once;
	if (once++ || cur_data == NULL)
		return;
	char path[4096];
	save(prefix, (const uint8_t *)cur_data, cur_n, path, sizeof(path));
	say("==fuzz== the input that failed is in ");
	say(path);
	say("\n==fuzz== run it again with: ");
	say(program);
	say(" ");
	say(path);
	say("\n");
}

/* UBSan (gcc's, apart from ASan's runtime) does not call the death callback: make it abort,
 * which on_signal sees. Read by the runtime at start; UBSAN_OPTIONS still overrides it. */
__attribute__((visibility("default"))) const char *__ubsan_default_options(void)
{
	return "abort_on_error=1:print_stacktrace=1";
}

static void on_death(void)
{
	report_death(crash_prefix);
}

static void on_signal(int sig)
{
	report_death(crash_prefix);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void *watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(1);
		uint64_t t = cur_start_ns;
		if (t && opt.timeout > 0 && now_ns() - t > (uint64_t)opt.timeout * 1000000000u) {
			fprintf(stderr, "==fuzz== ALARM: one input has run for more than %ld s\n",
				opt.timeout);
			report_death(timeout_prefix);
			_exit(70);
		}
	}
	return NULL;
}

static size_t nruns;

/* Runs one input (a copy of exactly n bytes, so that an overread shows); returns new features. */
static size_t run(const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, p, n);
	cur_data = copy, cur_n = n;
	cur_start_ns = now_ns();
	prev_block = 0;
	LLVMFuzzerTestOneInput(copy, n);
	cur_start_ns = 0;
	cur_data = NULL;
	free(copy);
	nruns++;
	return take_coverage();
}

static void add_input(const uint8_t *p, size_t n)
{
	static size_t cap;
	if (ncorpus == cap) {
		cap = cap ? 2 * cap : 256;
		corpus = realloc(corpus, cap * sizeof(*corpus));
	}
	corpus[ncorpus].data = malloc(n ? n : 1);
	memcpy(corpus[ncorpus].data, p, n);
	corpus[ncorpus++].n = n;
}

static int read_file(const char *path, struct input *in)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	size_t cap = 4096;
	in->data = malloc(cap), in->n = 0;
	for (size_t r; (r = fread(in->data + in->n, 1, cap - in->n, f)) > 0;)
		if ((in->n += r) == cap)
			in->data = realloc(in->data, cap *= 2);
	fclose(f);
	return 0;
}

static struct input *loaded;
static size_t nloaded, loaded_cap;

static void load(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
			if (de->d_name[0] == '.')
				continue;
			char sub[4096];
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			load(sub);
		}
		if (d)
			closedir(d);
		return;
	}
	if (nloaded == loaded_cap)
		loaded = realloc(loaded, (loaded_cap = loaded_cap ? 2 * loaded_cap : 256) *
					     sizeof(*loaded));
	if (read_file(path, &loaded[nloaded]) == 0)
		nloaded++;
}

static int by_size(const void *a, const void *b)
{
	const struct input *x = a, *y = b;
	return x->n < y->n ? -1 : x->n > y->n;
}

/* ---- the dictionary: "token" lines, as AFL and libFuzzer write them ---------- */

static struct input dict[1024];
static size_t ndict;

static void load_dict(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	if (f == NULL) {
		fprintf(stderr, "==fuzz== cannot read the dictionary %s\n", path);
		exit(1);
	}
	while (fgets(line, sizeof(line), f) && ndict < sizeof(dict) / sizeof(dict[0])) {
		char *q = strchr(line, '"'), *end = strrchr(line, '"');
		if (line[strspn(line, " \t")] == '#' || q == NULL || end == q)
			continue;
		uint8_t tok[1024];
		size_t n = 0;
		for (char *s = q + 1; s < end; s++) {
			if (*s == '\\' && s[1] == 'x' && s + 3 < end) {
				char h[3] = {s[2], s[3], 0};
				tok[n++] = (uint8_t)strtoul(h, NULL, 16);
				s += 3;
			} else if (*s == '\\' && s + 1 < end) {
				tok[n++] = (uint8_t) * ++s;
			} else {
				tok[n++] = (uint8_t)*s;
			}
		}
		dict[ndict].data = malloc(n ? n : 1);
		memcpy(dict[ndict].data, tok, n);
		dict[ndict++].n = n;
	}
	fclose(f);
}

/* ---- mutations ---------------------------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(uint64_t below)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return below ? rng % below : 0;
}

static const int64_t interesting[] = {
    0,	       1,	 -1,	 2,	     7,		8,
    16,	       31,	 32,	 64,	     100,	127,
    128,       255,	 256,	 512,	     1000,	1024,
    4096,      32767,	 32768,	 65535,	     65536,	-128,
    -129,      -32768,	 -32769, 0x7fffffff, INT32_MIN, (int64_t)0xffffffffu,
    INT64_MAX, INT64_MIN};

/* Puts n bytes of v at p, little- or big-endian. */
static void put_int(uint8_t *p, int n, uint64_t v, int big)
{
	for (int i = 0; i < n; i++)
		p[big ? n - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

/* Opens room for k bytes at `at` (k <= cap - *n). */
static void make_room(uint8_t *b, size_t *n, size_t at, size_t k)
{
	memmove(b + at + k, b + at, *n - at);
	*n += k;
}

/* One random change to b[0..*n) (cap bytes available); 0 if it could not apply. */
static int mutate_once(uint8_t *b, size_t *n, size_t cap)
{
	size_t at = rnd(*n + 1), k;
	const struct input *o;
	switch (rnd(14)) {
	case 0: /* flip a bit */
		if (!*n)
			return 0;
		b[rnd(*n)] ^= (uint8_t)(1u << rnd(8));
		return 1;
	case 1: /* a random byte */
		if (!*n)
			return 0;
		b[rnd(*n)] = (uint8_t)rnd(256);
		return 1;
	case 2: /* an interesting value, 1, 2, 4 or 8 bytes wide, either byte order */
		k = (size_t)1 << rnd(4);
		if (*n < k)
			return 0;
		put_int(b + rnd(*n - k + 1), (int)k,
			(uint64_t)interesting[rnd(sizeof(interesting) / sizeof(interesting[0]))],
			(int)rnd(2));
		return 1;
	case 3: /* add or subtract a little */
		if (!*n)
			return 0;
		at = rnd(*n);
		b[at] = (uint8_t)(b[at] + rnd(35) - 17);
		return 1;
	case 4: /* insert random bytes */
		k = 1 + rnd(8);
		if (*n + k > cap)
			return 0;
		make_room(b, n, at, k);
		for (size_t i = 0; i < k; i++)
			b[at + i] = (uint8_t)rnd(256);
		return 1;
	case 5: /* insert a run of one byte */
		k = 1 + rnd(32);
		if (*n + k > cap)
			return 0;
		make_room(b, n, at, k);
		memset(b + at, rnd(2) ? (int)rnd(256) : (at ? b[at - 1] : 0), k);
		return 1;
	case 6: /* delete a range, mostly a short one */
	case 7:
		if (!*n)
			return 0;
		at = rnd(*n);
		k = *n - at;
		k = 1 + rnd(rnd(4) && k > 16 ? 16 : k);
		memmove(b + at, b + at + k, *n - at - k);
		*n -= k;
		return 1;
	case 8: { /* copy a range over another place, or insert it */
		if (!*n)
			return 0;
		size_t from = rnd(*n);
		k = 1 + rnd(*n - from);
		if (rnd(2) && *n + k <= cap) {
			uint8_t tmp[4096];
			k = k > sizeof(tmp) ? sizeof(tmp) : k;
			memcpy(tmp, b + from, k);
			make_room(b, n, at, k);
			memcpy(b + at, tmp, k);
		} else {
			at = rnd(*n);
			k = k > *n - at ? *n - at : k;
			memmove(b + at, b + from, k);
		}
		return 1;
	}
	case 9: /* a dictionary token, inserted or written over */
	case 10:
		if (!ndict)
			return 0;
		o = &dict[rnd(ndict)];
		if (rnd(2) && *n + o->n <= cap) {
			make_room(b, n, at, o->n);
		} else if (o->n <= *n) {
			at = rnd(*n - o->n + 1);
		} else {
			return 0;
		}
		memcpy(b + at, o->data, o->n);
		return 1;
	case 11: /* splice in a piece of another input */
		o = &corpus[rnd(ncorpus)];
		if (!o->n)
			return 0;
		{
			size_t from = rnd(o->n);
			k = 1 + rnd(o->n - from);
			k = k > cap - *n ? cap - *n : k;
			if (!k)
				return 0;
			make_room(b, n, at, k);
			memcpy(b + at, o->data + from, k);
		}
		return 1;
	case 12: /* this input up to a point, another one after it */
		o = &corpus[rnd(ncorpus)];
		k = rnd(o->n + 1);
		k = k > cap - at ? cap - at : k;
		memcpy(b + at, o->data + o->n - k, k);
		*n = at + k;
		return 1;
	default: { /* a decimal number in text replaced by another */
		size_t i = *n ? rnd(*n) : 0, j;
		while (i < *n && !(b[i] >= '0' && b[i] <= '9'))
			i++;
		if (i >= *n)
			return 0;
		for (j = i; j < *n && b[j] >= '0' && b[j] <= '9'; j++)
			;
		char num[32];
		int len =
		    snprintf(num, sizeof(num), "%" PRId64,
			     rnd(2) ? interesting[rnd(sizeof(interesting) / sizeof(interesting[0]))]
				    : (int64_t)rnd(1000));
		if (*n - (j - i) + (size_t)len > cap)
			return 0;
		memmove(b + i + len, b + j, *n - j);
		memcpy(b + i, num, (size_t)len);
		*n = *n - (j - i) + (size_t)len;
		return 1;
	}
	}
}

/* ---- the main loop --------------------------------------------------------------- */

static int parse_flag(const char *a)
{
	static const struct {
		const char *name;
		long *v;
	} longs[] = {{"-max_total_time=", &opt.max_total_time},
		     {"-runs=", &opt.runs},
		     {"-max_len=", &opt.max_len},
		     {"-timeout=", &opt.timeout},
		     {"-merge=", &opt.merge},
		     {"-use_counters=", &use_counters}};
	for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++)
		if (strncmp(a, longs[i].name, strlen(longs[i].name)) == 0)
			return *longs[i].v = strtol(a + strlen(longs[i].name), NULL, 10), 1;
	if (strncmp(a, "-seed=", 6) == 0)
		return opt.seed = strtoull(a + 6, NULL, 10), 1;
	if (strncmp(a, "-dict=", 6) == 0)
		return opt.dict = a + 6, 1;
	if (strncmp(a, "-artifact_prefix=", 17) == 0)
		return opt.artifact_prefix = a + 17, 1;
	if (strncmp(a, "-print_final_stats=", 19) == 0 || strncmp(a, "-detect_leaks=", 14) == 0)
		return 1; /* stats are always printed; leaks are LSan's, at exit */
	if (a[0] == '-')  /* libFuzzer flags this engine does not have: ignored */
		return fprintf(stderr, "==fuzz== ignoring the flag %s\n", a), 1;
	return 0;
}

static void stats(uint64_t t0, size_t added)
{
	double secs = (double)(now_ns() - t0) / 1e9;
	fprintf(stderr,
		"Done %zu runs in %.0f second(s)\n"
		"stat::number_of_executed_units: %zu\n"
		"stat::average_exec_per_sec:     %.0f\n"
		"stat::new_units_added:          %zu\n"
		"stat::features:                 %zu\n"
		"stat::corpus_size:              %zu\n",
		nruns, secs, nruns, secs > 0 ? (double)nruns / secs : 0.0, added, features,
		ncorpus);
}

int main(int argc, char **argv)
{
	const char *paths[256];
	int npaths = 0, files_only = 1;
	program = argv[0];
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		if (parse_flag(argv[i]))
			continue;
		struct stat st;
		if (npaths < 256)
			paths[npaths++] = argv[i];
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			files_only = 0;
	}
	if (!opt.seed)
		opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	rng = opt.seed | 1;
	if (opt.dict)
		load_dict(opt.dict);
	snprintf(crash_prefix, sizeof(crash_prefix), "%scrash-", opt.artifact_prefix);
	snprintf(timeout_prefix, sizeof(timeout_prefix), "%stimeout-", opt.artifact_prefix);
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(on_death);
	int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_signal);
	pthread_t wd;
	pthread_create(&wd, NULL, watchdog, NULL);
	uint64_t t0 = now_ns();
	fprintf(stderr, "INFO: Seed: %" PRIu64 " (moonlog's fuzz driver)\n", opt.seed);

	if (npaths > 0 && files_only) { /* reproduce: each file once */
		for (int i = 0; i < npaths; i++) {
			struct input in;
			if (read_file(paths[i], &in) != 0) {
				fprintf(stderr, "==fuzz== cannot read %s\n", paths[i]);
				return 1;
			}
			fprintf(stderr, "Running: %s\n", paths[i]);
			run(in.data, in.n);
			free(in.data);
		}
		stats(t0, 0);
		return 0;
	}
	for (int i = 0; i < npaths; i++) {
		struct stat st;
		if (i == 0 && stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			out_dir = paths[i];
		if (opt.merge && i == 0) { /* the first directory's coverage first */
			load(paths[0]);
			for (size_t k = 0; k < nloaded; k++)
				run(loaded[k].data, loaded[k].n), free(loaded[k].data);
			nloaded = 0;
			continue;
		}
		load(paths[i]);
	}
	snprintf(corpus_prefix, sizeof(corpus_prefix), "%s/", out_dir ? out_dir : ".");
	if (nloaded)
		qsort(loaded, nloaded, sizeof(*loaded), by_size);
	size_t added = 0, max_seed = 0;
	for (size_t k = 0; k < nloaded; k++) {
		max_seed = loaded[k].n > max_seed ? loaded[k].n : max_seed;
		if (run(loaded[k].data, loaded[k].n) > 0) {
			add_input(loaded[k].data, loaded[k].n);
			if (opt.merge && out_dir) {
				char path[4096];
				save(corpus_prefix, loaded[k].data, loaded[k].n, path,
				     sizeof(path));
				added++;
			}
		}
		free(loaded[k].data);
	}
	fprintf(stderr, "INFO: %zu inputs read, %zu kept, %zu features\n", nloaded, ncorpus,
		features);
	if (opt.merge) {
		fprintf(stderr, "MERGE-OUTER: %zu new files added to %s\n", added, out_dir);
		return 0;
	}
	if (ncorpus == 0)
		add_input((const uint8_t *)"", 0);
	size_t cap = opt.max_len > 0 ? (size_t)opt.max_len : max_seed > 4096 ? max_seed : 4096;
	uint8_t *b = malloc(cap);
	uint64_t deadline =
	    opt.max_total_time > 0 ? t0 + (uint64_t)opt.max_total_time * 1000000000u : UINT64_MAX;
	size_t next_report = 1024;
	while ((opt.runs < 0 || nruns < (size_t)opt.runs) && now_ns() < deadline) {
		const struct input *base = &corpus[rnd(ncorpus)];
		size_t n = base->n < cap ? base->n : cap;
		memcpy(b, base->data, n);
		for (uint64_t k = 1u << rnd(5), done = 0; done < k;)
			done += (uint64_t)mutate_once(b, &n, cap) + (rnd(8) == 0);
		if (run(b, n) > 0) {
			add_input(b, n);
			added++;
			if (out_dir) {
				char path[4096];
				save(corpus_prefix, b, n, path, sizeof(path));
			}
			fprintf(stderr, "#%zu\tNEW    cov: %zu corp: %zu len: %zu\n", nruns,
				features, ncorpus, n);
		}
		if (nruns >= next_report) {
			fprintf(stderr, "#%zu\tpulse  cov: %zu corp: %zu exec/s: %.0f\n", nruns,
				features, ncorpus, (double)nruns / ((double)(now_ns() - t0) / 1e9));
			next_report *= 2;
		}
	}
	free(b);
	stats(t0, added);
	return 0;
}
