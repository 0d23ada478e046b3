/*
 * unit.h - a tiny TAP producer for the C unit tests (each test is a program run by ctest).
 *
 *   plan(3); ok(x == 1, "x is one"); is_int(a, b, "sizes"); return check_plan();
 */
#ifndef ML_TEST_UNIT_H
#define ML_TEST_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_planned, unit_run, unit_failed;

static inline void plan(int n)
{
	unit_planned = n;
	printf("1..%d\n", n);
}

#define ok(cond, ...)                                                                              \
	do {                                                                                       \
		unit_run++;                                                                        \
		int ok_ = !!(cond);                                                                \
		if (!ok_)                                                                          \
			unit_failed++;                                                             \
		printf("%sok %d - ", ok_ ? "" : "not ", unit_run);                                 \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		if (!ok_)                                                                          \
			printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
	} while (0)

#define is_int(a, b, ...)                                                                          \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		ok(a_ == b_, __VA_ARGS__);                                                         \
		if (a_ != b_)                                                                      \
			printf("#   got %lld, expected %lld\n", a_, b_);                           \
	} while (0)

#define is_str(a, b, ...)                                                                          \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		int eq_ = a_ && b_ && strcmp(a_, b_) == 0;                                         \
		ok(eq_, __VA_ARGS__);                                                              \
		if (!eq_)                                                                          \
			printf("#   got \"%s\", expected \"%s\"\n", a_ ? a_ : "(null)",            \
			       b_ ? b_ : "(null)");                                                \
	} while (0)

/* For tests with a data-dependent number of checks: count without a fixed plan. */
static inline int done_testing(void)
{
	if (unit_planned == 0)
		printf("1..%d\n", unit_run);
	else if (unit_run != unit_planned)
		printf("# planned %d tests but ran %d\n", unit_planned, unit_run), unit_failed++;
	if (unit_failed)
		printf("# %d of %d failed\n", unit_failed, unit_run);
	return unit_failed ? 1 : 0;
}

/* A fresh temporary folder for a test; removed by the caller with rm_rf. */
static inline char *unit_tmpdir(const char *name)
{
	char *p = malloc(256);
	snprintf(p, 256, "/tmp/moonlog-test-%s-XXXXXX", name);
	if (mkdtemp(p) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	return p;
}

static inline void rm_rf(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* A test that works in a temporary folder of its own. */
struct unit_dir_test {
	const char *name;
	void (*run)(const char *dir);
};

/* Runs each test in a fresh temporary folder named after it, and removes the folder after. */
static inline void run_in_tmpdirs(const struct unit_dir_test *tests, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *dir = unit_tmpdir(tests[i].name);
		tests[i].run(dir);
		rm_rf(dir);
		free(dir);
	}
}

#endif
