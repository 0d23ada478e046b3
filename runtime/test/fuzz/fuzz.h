/*
 * fuzz.h - what the fuzz targets share: an assertion that survives release
 * builds, and scratch folders for the targets that need files.
 *
 * Each target is one LLVMFuzzerTestOneInput, linked either with libFuzzer
 * (clang) or with driver.c (gcc); see docs/fuzzing.md.
 */
#ifndef ML_TEST_FUZZ_H
#define ML_TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <moonlog/diag.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise: say which, with the last diag, and abort (the engine saves the input). */
#define FUZZ_ASSERT(cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "==fuzz== %s:%d: %s\n==fuzz== ", __FILE__, __LINE__,       \
				#cond);                                                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n==fuzz== last diag: %s\n", ml_diag_last());             \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/*
 * A fresh folder for this process's scratch files, under $TMPDIR, else /dev/shm
 * (memory: the targets write and sync files at every run), else /tmp. Removed at exit.
 */
const char *fuzz_scratch_dir(void);
/* Removes a folder and everything in it; 0 or -1. */
int fuzz_rm_rf(const char *path);

#endif
