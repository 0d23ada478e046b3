/*
 * watch.c - noticing that scripts changed: inotify on the scripts folder,
 * read by the server's libevent loop (an event on the inotify descriptor, no
 * thread of its own), SIGHUP, and the rescan both of them fall back on.
 *
 * An editor's save is a burst of events: write a temporary file and rename it
 * over (IN_MOVED_TO), truncate and write (IN_MODIFY ... IN_CLOSE_WRITE),
 * rename the old file to a backup and write a new one (IN_MOVED_FROM,
 * IN_CREATE, ...), several writes in a row. Each *.lua name gets a timer,
 * pushed back by every event on it, and the file reloads once when it has
 * been quiet: QUIET_MS after the file was closed or renamed into place,
 * longer while it is open for writing (it is not complete yet) or after it
 * went away (an editor may be about to put it back, and unloading then
 * reloading would rebuild a projection for nothing). Temporary and backup
 * names (.x.lua.swp, x.lua~, x.lua.tmp) are not *.lua and are ignored.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include <moonlog/diag.h>

#include "host/host_internal.h"
#include <moonlog/msgpack.h>

#define QUIET_MS   30	/* after a close or a rename into place */
#define WRITING_MS 1000 /* the file is still open for writing (a close comes sooner) */
#define GONE_MS	   250	/* the file went away: maybe for a moment */

struct pend {
	struct ml_watch *w;
	char *file;
	struct event *timer;
	struct pend *next;
};

struct ml_watch {
	struct ml_host *h;
	struct event_base *base;
	int fd;
	struct event *ev, *hup;
	struct pend *pend; /* files waiting for their quiet period */
};

static void wake(struct ml_host *h)
{
	if (h->o.wake)
		h->o.wake(h->o.wake_arg);
}

static void pend_free(struct pend *p)
{
	event_free(p->timer);
	free(p->file);
	free(p);
}

static void on_quiet(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct pend *p = arg;
	struct ml_watch *w = p->w;
	for (struct pend **pp = &w->pend; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	ml_host_reload_file(w->h, p->file, NULL); /* reports its own errors */
	pend_free(p);
	wake(w->h);
}

static int is_script_name(const char *name, size_t len)
{
	return len > 4 && name[0] != '.' && memcmp(name + len - 4, ".lua", 4) == 0;
}

/* (Re)arms the file's timer: the reload waits until the file is quiet for `ms`. */
static void touch(struct ml_watch *w, const char *name, int ms)
{
	struct pend *p = w->pend;
	while (p && strcmp(p->file, name) != 0)
		p = p->next;
	if (p == NULL) {
		p = ml_xcalloc(1, sizeof(*p));
		p->w = w;
		p->file = ml_xstrndup(name, strlen(name));
		p->timer = evtimer_new(w->base, on_quiet, p);
		p->next = w->pend;
		w->pend = p;
	}
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(p->timer, &tv);
}

static int quiet_for(uint32_t mask)
{
	if (mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
		return QUIET_MS;
	if (mask & (IN_DELETE | IN_MOVED_FROM))
		return GONE_MS;
	return WRITING_MS; /* IN_CREATE, IN_MODIFY: a close is to come */
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct ml_watch *w = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	int overflow = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW)
				overflow = 1;
			if (ev->len && is_script_name(ev->name, strlen(ev->name)))
				touch(w, ev->name, quiet_for(ev->mask));
		}
	}
	if (overflow) { /* events were lost: look at every file */
		ml_host_line(w->h, "too many changes at once in %s: rescanning it",
			     w->h->scripts_dir);
		ml_host_rescan(w->h, NULL);
		wake(w->h);
	}
}

static void on_hup(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct ml_watch *w = arg;
	ml_host_line(w->h, "SIGHUP: reloading the scripts of %s", w->h->scripts_dir);
	ml_host_rescan(w->h, NULL);
	wake(w->h);
}

int ml_host_watch_start(struct ml_host *h, struct event_base *base)
{
	struct ml_watch *w = ml_xcalloc(1, sizeof(*w));
	w->h = h;
	w->base = base;
	w->fd = -1;
	h->watch = w;
	w->hup = evsignal_new(base, SIGHUP, on_hup, w);
	if (w->hup)
		evsignal_add(w->hup, NULL);
	if (h->o.manual_reload) /* --reload manual: SIGHUP and reload() only */
		return 0;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
			IN_MODIFY | IN_ONLYDIR;
	if (w->fd < 0 || inotify_add_watch(w->fd, h->scripts_dir, mask) < 0)
		return ml_diag_set(ML_ERR_IO, "inotify: %s", strerror(errno));
	w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_inotify, w);
	event_add(w->ev, NULL);
	return 0;
}

void ml_host_watch_stop(struct ml_host *h)
{
	struct ml_watch *w = h->watch;
	if (w == NULL)
		return;
	while (w->pend) {
		struct pend *p = w->pend;
		w->pend = p->next;
		pend_free(p);
	}
	if (w->ev)
		event_free(w->ev);
	if (w->hup)
		event_free(w->hup);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
	h->watch = NULL;
}

/* ---- the whole folder: SIGHUP, reload() with no name, lost events ---- */

static int listed(char **files, size_t n, const char *file)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(files[i], file) == 0)
			return 1;
	return 0;
}

int ml_host_rescan(struct ml_host *h, struct ml_buf *out)
{
	char **files;
	size_t nfiles;
	if (ml_host_upcasters_load(h) != 0) /* every script is loaded again with its text */
		ml_host_line(h, "%s (the scripts keep the upcasters they have)", ml_diag_last());
	if (ml_host_list_files(h, &files, &nfiles) != 0)
		return -1;
	struct ml_buf items = {0};
	uint32_t count = 0;
	for (size_t i = 0; i < nfiles; i++, count++)
		ml_host_reload_file(h, files[i], &items);
	for (size_t i = 0; i < h->n; i++) { /* files gone */
		struct ml_hosted *e = h->v[i];
		if (e->removed || listed(files, nfiles, e->file))
			continue;
		char *file = ml_xstrndup(e->file, strlen(e->file));
		ml_host_reload_file(h, file, &items); /* e goes */
		free(file);
		count++;
		i = (size_t)-1; /* the registry changed: start over */
	}
	for (size_t i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	if (out) {
		ml_msgpack_put_array(out, count);
		if (items.len)
			ml_buf_add(out, items.data, items.len);
	}
	ml_buf_free(&items);
	wake(h);
	return 0;
}

int ml_host_watching(struct ml_host *h)
{
	return h->watch && h->watch->fd >= 0;
}

uint64_t ml_host_last_swap_ns(struct ml_host *h)
{
	return h->swap_ns_last;
}
