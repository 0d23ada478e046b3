/*
 * fuzz_server.c - the in-process server of the request fuzz targets (see
 * fuzz_server.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include <moonlog/host.h>
#include <moonlog/log.h>
#include <moonlog/server.h>

#include "fuzz.h"
#include "fuzz_server.h"
#include "net/net_internal.h"

#define MAX_TURNS 100000 /* turns of the loop one input may take: it must go quiet */

/* Scripts written defensively: an input should fault them only through a real bug. */
static const struct {
	const char *file, *src;
} scripts[] = {
    {"counter.lua",
     "local ml = require 'moonlog'\n"
     "return ml.decider {\n"
     "  name = 'counter', from = 'counter-*',\n"
     "  stream = function(cmd) return 'counter-' .. tostring(cmd.id) end,\n"
     "  init = function() return { n = 0 } end,\n"
     "  on = { Added = function(s, e) s.n = s.n + (math.tointeger(e.data.by) or 0) end },\n"
     "  decide = {\n"
     "    Add = function(s, cmd)\n"
     "      local by = math.tointeger(cmd.by)\n"
     "      if not by then return ml.reject('by must be a whole number', { got = cmd.by }) end\n"
     "      return { ml.event('Added', { by = by, note = cmd.note }) }\n"
     "    end,\n"
     "    Reset = function(s) return { ml.event('Reset', {}) } end,\n"
     "  },\n"
     "}\n"},
    {"types.lua", "local ml = require 'moonlog'\n"
		  "return ml.projection {\n"
		  "  name = 'types', from = '*',\n"
		  "  init = function() return { n = 0, types = {} } end,\n"
		  "  on = {\n"
		  "    Added = function(s, e) s.n = s.n + 1; s.last = tostring(e.data) end,\n"
		  "    T = function(s, e) s.types[e.type] = (s.types[e.type] or 0) + 1 end,\n"
		  "  },\n"
		  "  queries = {\n"
		  "    count = function(s, t) return s.types[t] end,\n"
		  "    echo = function(s, ...) return { ... } end,\n"
		  "    total = function(s) return s.n end,\n"
		  "  },\n"
		  "}\n"},
    {"notes.lua", "local ml = require 'moonlog'\n"
		  "return ml.handler {\n"
		  "  name = 'notes', from = 'counter-*', on_error = 'park',\n"
		  "  on = { Added = function(e, ctx)\n"
		  "    ctx.emit('notes-1', 'Noted', { by = e.data.by, from = e.stream })\n"
		  "  end },\n"
		  "}\n"},
};

static unsigned runs_per_server = 500; /* FUZZ_SERVER_RUNS: 1 makes every run reproducible alone */
static struct ml_log *srv_log;
static struct ml_server *srv;
static struct ml_host *host;
static int srv_http;
static unsigned srv_runs, srv_count;
static char srv_dir[600];

static void stop(void)
{
	if (srv == NULL)
		return;
	ml_host_close(host);
	ml_server_free(srv);
	ml_log_close(srv_log);
	srv = NULL, host = NULL, srv_log = NULL;
	fuzz_rm_rf(srv_dir);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[900];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	FUZZ_ASSERT(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
}

static void start(int http)
{
	char scripts_dir[700];
	snprintf(srv_dir, sizeof(srv_dir), "%s/server-%u", fuzz_scratch_dir(), srv_count++);
	snprintf(scripts_dir, sizeof(scripts_dir), "%s/scripts", srv_dir);
	FUZZ_ASSERT(mkdir(srv_dir, 0700) == 0 && mkdir(scripts_dir, 0700) == 0, "cannot make %s",
		    scripts_dir);
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		write_file(scripts_dir, scripts[i].file, scripts[i].src);

	struct ml_log_options lo; /* as moonlog serve does: the log first, then the server */
	ml_log_options_init(&lo);
	lo.dir = srv_dir;
	lo.fsync = ML_FSYNC_NEVER;
	srv_log = ml_log_open(&lo);
	FUZZ_ASSERT(srv_log != NULL, "the log does not open");

	struct ml_server_options o;
	ml_server_options_init(&o);
	o.dir = srv_dir;
	o.listen = "";
	o.admin = "";
	o.http = http ? "127.0.0.1:0" : "";
	o.max_read = 200;
	o.max_request = 1u << 20;
	o.eval_budget = 100000;
	o.quiet = 1;
	srv = ml_server_new(srv_log, &o);
	FUZZ_ASSERT(srv != NULL, "the server does not start");

	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = scripts_dir;
	ho.data_dir = srv_dir;
	ho.quiet = 1;
	ho.script.instruction_limit = 1000000;
	host = ml_host_open(srv_log, &ho);
	FUZZ_ASSERT(host != NULL, "the scripts do not load");
	ml_host_serve(host, srv);
	srv_http = http;
	srv_runs = 0;
}

struct ml_server *fuzz_server(int http)
{
	static int once;
	if (!once++) {
		signal(SIGPIPE, SIG_IGN); /* a closed peer is an error on write, as in serve */
		atexit(stop);
		if (getenv("FUZZ_SERVER_RUNS"))
			runs_per_server = (unsigned)atoi(getenv("FUZZ_SERVER_RUNS"));
	}
	if (srv && (srv_runs >= runs_per_server || srv_http != http))
		stop();
	if (srv == NULL)
		start(http);
	srv_runs++;
	return srv;
}

int fuzz_read_all(int fd, struct ml_buf *out)
{
	for (;;) {
		ml_buf_reserve(out, 65536);
		ssize_t r = recv(fd, out->data + out->len, out->cap - out->len, MSG_DONTWAIT);
		if (r > 0) {
			out->len += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
	}
}

/* Output the RPC connections have not handed to their sockets yet. */
static int output_waits(struct ml_server *s)
{
	for (struct ml_conn *c = s->conns; c; c = c->next)
		if (c->out.len > c->out_off)
			return 1;
	return 0;
}

void fuzz_server_settle(struct ml_server *s, int peer, struct ml_buf *out)
{
	/* Quiet twice in a row, each after a turn that polled the sockets: an answer that
	 * waited for its socket to drain has then gone out too. */
	for (int turn = 0, quiet = 0;; turn++) {
		FUZZ_ASSERT(turn < MAX_TURNS, "the server is still busy after %d turns", turn);
		size_t had = out ? out->len : 0;
		if (peer >= 0)
			fuzz_read_all(peer, out);
		int active = event_base_get_num_events(s->base, EVENT_BASE_COUNT_ACTIVE);
		int busy =
		    active || s->inflight || s->kick || (out && out->len != had) || output_waits(s);
		quiet = busy ? 0 : quiet + 1;
		if (quiet == 2)
			break;
		/* Appends in flight finish on the log's thread, which wakes the loop. */
		event_base_loop(s->base, !active && s->inflight ? EVLOOP_ONCE : EVLOOP_NONBLOCK);
	}
}
