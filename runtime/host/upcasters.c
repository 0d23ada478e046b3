/*
 * upcasters.c - the scripts folder's upcasters.lua: the upcasters every script
 * of the folder gets (docs/scripts-in-server.md#upcasters).
 *
 * The file is not a script: the host reads its text at open and hands it to
 * every script it loads (ml_script_options.upcasters), whose code hash then
 * covers it. When the file changes (the watcher, reload("upcasters.lua"),
 * SIGHUP), it is read again and every script is reloaded with it, as if each
 * script's own file had changed: a projection rebuilds from the log with the
 * new upcasters beside the old version, a handler or decider swaps in. A file
 * that does not load fails every script's reload with its error and line,
 * and the old versions run on.
 */
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>
#include <moonlog/msgpack.h>

#include "host/host_internal.h"

int ml_host_upcasters_load(struct ml_host *h)
{
	struct ml_buf text = {0};
	int rc = ml_script_upcasters_read(h->scripts_dir, &text);
	if (rc < 0) {
		ml_buf_free(&text);
		return -1;
	}
	ml_buf_free(&h->upcasters);
	h->upcasters = text;
	h->o.script.upcasters = rc ? h->upcasters.data : NULL;
	h->o.script.upcasters_len = rc ? h->upcasters.len : 0;
	return 0;
}

int ml_host_is_upcasters(const char *file)
{
	return strcmp(file, ML_SCRIPT_UPCASTERS_FILE) == 0;
}

int ml_host_upcasters_reload(struct ml_host *h, struct ml_buf *out)
{
	const char *was = h->o.script.upcasters;
	struct ml_buf old = {0};
	if (was)
		ml_buf_add(&old, was, h->o.script.upcasters_len);
	if (ml_host_upcasters_load(h) != 0) {
		ml_host_line(h, "%s: %s", ML_SCRIPT_UPCASTERS_FILE, ml_diag_last());
		ml_buf_free(&old);
		return -1;
	}
	const char *now = h->o.script.upcasters;
	int same = (was == NULL) == (now == NULL) &&
		   (now == NULL ||
		    (old.len == h->o.script.upcasters_len && memcmp(old.data, now, old.len) == 0));
	ml_buf_free(&old);
	const char *what = same ? "unchanged" : now ? "reloaded" : "unloaded";
	if (!same)
		ml_host_line(h, "%s %s: reloading every script with %s", ML_SCRIPT_UPCASTERS_FILE,
			     now ? "changed" : "is gone", now ? "it" : "no folder upcasters");
	/* Every script with the new text; the first failure is the answer (all fail alike
	 * when the file itself does not load). Names are copied: a reload may drop entries. */
	size_t n = h->n;
	char **files = ml_xcalloc(n ? n : 1, sizeof(*files));
	for (size_t i = 0; i < n; i++)
		files[i] = ml_xstrndup(h->v[i]->file, strlen(h->v[i]->file));
	int rc = 0;
	char *why = NULL;
	for (size_t i = 0; i < n; i++) {
		if (ml_host_reload_file(h, files[i], NULL) != 0 && why == NULL) {
			why = ml_xstrndup(ml_diag_last(), strlen(ml_diag_last()));
			rc = -1;
		}
		free(files[i]);
	}
	free(files);
	if (out) {
		ml_msgpack_put_map(out, why ? 4 : 3);
		ml_msgpack_put_cstr(out, "name");
		ml_msgpack_put_cstr(out, "upcasters");
		ml_msgpack_put_cstr(out, "file");
		ml_msgpack_put_cstr(out, ML_SCRIPT_UPCASTERS_FILE);
		ml_msgpack_put_cstr(out, "outcome");
		ml_msgpack_put_cstr(out, why ? "failed" : what);
		if (why) {
			ml_msgpack_put_cstr(out, "error");
			ml_msgpack_put_cstr(out, why);
		}
	}
	if (why) {
		ml_diag_set(ML_ERR_SCRIPT, "%s", why);
		free(why);
	}
	return rc;
}
