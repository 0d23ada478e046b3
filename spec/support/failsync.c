/*
 * failsync.c - a disk that fails a sync, for the specs: preloaded into `moonlog
 * serve` (LD_PRELOAD), it makes fdatasync of a log segment (a *.seg file) fail
 * with EIO while the file that ML_FAILSYNC names exists. The data written stays
 * in the page cache, as it may on a real disk whose sync failed. The segment's
 * zero writer (thread moonlog-zeros) is left alone: its failure is another path
 * (the segment is sealed), and the spec aims at the sync after a write.
 *
 * No shipped build carries this; spec/e2e/scale_sync_spec.lua uses it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

__attribute__((visibility("default"))) int fdatasync(int fd);

static int is_segment(int fd)
{
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n < 4)
		return 0;
	path[n] = '\0';
	return strcmp(path + n - 4, ".seg") == 0;
}

static int on_zeros_thread(void)
{
	char name[17] = {0};
	return prctl(PR_GET_NAME, name) == 0 && strcmp(name, "moonlog-zeros") == 0;
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	const char *trigger = getenv("ML_FAILSYNC");
	if (trigger && access(trigger, F_OK) == 0 && is_segment(fd) && !on_zeros_thread()) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}
