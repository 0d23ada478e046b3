/*
 * fuzz_util.c - scratch folders for the fuzz targets (see fuzz.h).
 *
 * The targets that write files do it at every run, thousands of times a
 * second, so removal walks the tree in-process (nftw) instead of running rm.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char scratch[512];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

int fuzz_rm_rf(const char *path)
{
	return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_scratch(void)
{
	if (scratch[0])
		fuzz_rm_rf(scratch);
}

const char *fuzz_scratch_dir(void)
{
	if (scratch[0])
		return scratch;
	const char *base = getenv("TMPDIR");
	if (base == NULL || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/moonlog-fuzz-XXXXXX", base);
	if (mkdtemp(scratch) == NULL) {
		perror("moonlog fuzz: cannot make a scratch folder (set TMPDIR)");
		exit(1);
	}
	atexit(remove_scratch);
	return scratch;
}
