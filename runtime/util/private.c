/*
 * private.c - the data folder is its owner's alone.
 *
 * A data folder holds the log, the admin socket (where eval runs Lua in the
 * server) and the scripts' state, so moonlog creates it and every folder in it
 * with mode 0700 and every file with mode 0600, whatever the umask. A folder
 * that already exists is the user's: it is never chmod'ed, only warned about
 * when other users can enter it.
 */
#include <moonlog/util.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* mkdir with mode 0700 exactly (a umask may take bits off mkdir's mode): 1 created, 0 exists. */
static int mkdir_0700(const char *path)
{
	if (mkdir(path, 0700) == 0)
		return chmod(path, 0700) == 0 ? 1 : -1;
	return errno == EEXIST ? 0 : -1;
}

int ml_mkdir_private(const char *path, int *created)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return errno = ENAMETOOLONG, -1;
	for (char *p = buf + 1; *p; p++) { /* the missing parents first */
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		int rc = mkdir_0700(buf);
		*p = '/';
		if (rc < 0)
			return -1;
	}
	int rc = mkdir_0700(buf);
	if (created)
		*created = rc == 1;
	return rc < 0 ? -1 : 0;
}

int ml_data_dir_prepare(const char *dir, char *warning, size_t cap)
{
	int created = 0;
	struct stat st;
	if (cap)
		warning[0] = '\0';
	if (ml_mkdir_private(dir, &created) != 0 || stat(dir, &st) != 0)
		return -1;
	if (!created && (st.st_mode & 077) && cap)
		snprintf(warning, cap,
			 "warning: other users can enter the data folder %s (mode %04o) and read "
			 "any file in it that is not mode 0600; 'chmod 700 %s' keeps them out",
			 dir, (unsigned)(st.st_mode & 07777), dir);
	return 0;
}
