/*
 * replicate.c - `moonlog serve --replicate`: finds the replication plugin,
 * loads it and calls its entry point (replicate.h), which puts a replicated
 * writer behind the log and catches up. Without --replicate nothing here runs
 * and nothing is loaded. `moonlog bench cluster` also asks it to delete the
 * journal it made for its run.
 *
 * The plugin is looked for in $MOONLOG_PLUGIN_DIR, then in plugins/ beside the
 * executable (the build folder), then where `make install` puts it.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/replicate.h>

#include "cli/cli.h"

#define PLUGIN_FILE "moonlog_jetstream.so"

/* Tries dir/PLUGIN_FILE; the handle or NULL (the reason in why when the file is there). */
static void *try_dir(const char *dir, char *why, size_t cap)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", dir, PLUGIN_FILE) >= (int)sizeof(path) ||
	    access(path, F_OK) != 0)
		return NULL;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL)
		snprintf(why, cap, "%s", dlerror());
	return h;
}

static void *load(char *why, size_t cap)
{
	char dirs[3][PATH_MAX] = {"", "", ML_PLUGIN_INSTALL_DIR};
	const char *env = getenv("MOONLOG_PLUGIN_DIR");
	if (env)
		snprintf(dirs[0], sizeof(dirs[0]), "%s", env);
	if (cli_self_path(dirs[1], sizeof(dirs[1]) - 10) == 0) {
		char *slash = strrchr(dirs[1], '/');
		if (slash)
			strcpy(slash + 1, "plugins");
	}
	for (int i = 0; i < 3; i++) {
		void *h = dirs[i][0] ? try_dir(dirs[i], why, cap) : NULL;
		if (h || why[0])
			return h;
	}
	return NULL;
}

/* The plugin's function `name`, or NULL with diag. The plugin is never unloaded. */
static void *plugin_function(const char *name)
{
	char why[512] = "";
	void *h = load(why, sizeof(why));
	if (h == NULL) {
		if (why[0])
			ml_diag_set(ML_ERR_NOT_FOUND, "cannot load the JetStream plugin: %s", why);
		else
			ml_diag_set(
			    ML_ERR_NOT_FOUND,
			    "--replicate needs the JetStream plugin, %s, found in none of "
			    "$MOONLOG_PLUGIN_DIR, plugins/ beside moonlog, %s: build it (it "
			    "needs libnats-dev) or set MOONLOG_PLUGIN_DIR",
			    PLUGIN_FILE, ML_PLUGIN_INSTALL_DIR);
		return NULL;
	}
	void *f = dlsym(h, name);
	if (f == NULL)
		ml_diag_set(ML_ERR_NOT_FOUND,
			    "%s has no %s: is it a moonlog plugin of this version?", PLUGIN_FILE,
			    name);
	return f;
}

int cli_replicate_start(struct ml_log *log, const struct ml_replicate_options *o)
{
	ml_replicate_start_fn start = (ml_replicate_start_fn)plugin_function(ML_REPLICATE_START);
	return start ? start(log, o) : -1; /* its writer lives as long as the log */
}

int cli_replicate_drop(const struct ml_replicate_options *o)
{
	ml_replicate_drop_fn drop = (ml_replicate_drop_fn)plugin_function(ML_REPLICATE_DROP);
	return drop ? drop(o) : -1;
}
