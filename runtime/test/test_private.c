/*
 * The data folder's permissions (runtime/util/private.c): folders made 0700
 * whatever the umask, even one that takes the owner's own bits away; a folder
 * that exists is never changed, and one open to others gets a warning.
 */
#include <sys/stat.h>

#include <moonlog/util.h>

#include "test/unit.h"

static unsigned mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0;
}

int main(void)
{
	char *root = unit_tmpdir("private");
	char a[512], abc[512], open_dir[512], warning[1024];
	snprintf(a, sizeof(a), "%s/a", root);
	snprintf(abc, sizeof(abc), "%s/a/b//c", root);
	snprintf(open_dir, sizeof(open_dir), "%s/open", root);

	mode_t old = umask(0277); /* mkdir(0700) alone would give 0500 */
	int created = 0;
	ok(ml_mkdir_private(abc, &created) == 0 && created, "a/b//c and its parents are made");
	umask(old);
	is_int(mode_of(a), 0700, "a parent is 0700 under umask 0277");
	is_int(mode_of(abc), 0700, "the folder is 0700 under umask 0277");
	ok(ml_mkdir_private(abc, &created) == 0 && !created, "an existing folder is fine");

	umask(0);
	ok(ml_data_dir_prepare(open_dir, warning, sizeof(warning)) == 0 && warning[0] == '\0',
	   "a new data folder: no warning");
	is_int(mode_of(open_dir), 0700, "and it is 0700 under umask 0");
	chmod(open_dir, 0751);
	ok(ml_data_dir_prepare(open_dir, warning, sizeof(warning)) == 0 &&
	       strstr(warning, "(mode 0751)") && strstr(warning, "chmod 700"),
	   "an existing one open to others: %s", warning);
	is_int(mode_of(open_dir), 0751, "and it is left as it is");
	chmod(open_dir, 0700);
	ok(ml_data_dir_prepare(open_dir, warning, sizeof(warning)) == 0 && warning[0] == '\0',
	   "closed: no warning");
	umask(old);

	ok(ml_mkdir_private("/proc/moonlog-test", NULL) != 0, "a folder that cannot be made: -1");
	rm_rf(root);
	free(root);
	return done_testing();
}
