/*
 * test_script_host.c - a hosted handler whose batch the log fails to write (an
 * injected ENOSPC, as a full disk would give): it is not faulted, the batch is
 * built and appended again after a backoff, and what it emitted is stored once,
 * with its checkpoint; a parked event's batch too.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/host.h>

#include "log_helpers.h"
#include "unit.h"

static const char echo[] =
    "local ml = require 'moonlog'\n"
    "return ml.handler { name = 'echo', from = 'ping-*', on_error = 'park',\n"
    "  on = { Ping = function(e, ctx)\n"
    "    if e.data.amount == 10 and e.stream == 'ping-2' then error('no') end\n"
    "    ctx.emit('pong-' .. e.stream, 'Pong', { n = 1 }) end } }\n";

static int64_t count(struct ml_log *log, const char *stream)
{
	struct collect c = {.n = 0};
	ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, collect_fn, &c);
	return c.n;
}

static void ping(struct ml_log *log, const char *stream)
{
	struct ml_event_in e = ev(stream, "Ping", NULL);
	struct ml_append req = {.events = &e, .n_events = 1};
	ml_log_append(log, &req);
}

/* Steps the host for up to `ms`, until `stream` holds `n` events. */
static int step_until(struct ml_host *h, struct ml_log *log, const char *stream, int64_t n, int ms)
{
	for (int i = 0; i < ms / 5; i++) {
		ml_host_step(h);
		if (count(log, stream) >= n)
			return 1;
		usleep(5000);
	}
	return 0;
}

static void test_retry(void)
{
	char *dir = unit_tmpdir("host-retry");
	char scripts[1100], path[1200];
	snprintf(scripts, sizeof(scripts), "%s/scripts", dir);
	snprintf(path, sizeof(path), "%s/echo.lua", scripts);
	char cmd[1300];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", scripts);
	ok(system(cmd) == 0, "a scripts folder");
	FILE *f = fopen(path, "w");
	fputs(echo, f);
	fclose(f);
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = scripts, ho.data_dir = dir, ho.quiet = 1;
	struct ml_host *h = ml_host_open(log, &ho);
	ok(h != NULL, "a host: %s", h ? "" : ml_diag_last());
	struct ml_script *s = h ? ml_host_script(h, "echo", 4) : NULL;

	ping(log, "ping-1");
	ml_log_inject_fault(log, 1, ENOSPC);
	for (int i = 0; i < 20; i++) /* feed, submit, fail, settle: a retry waits */
		ml_host_step(h), usleep(1000);
	is_int(count(log, "pong-ping-1"), 0, "the failed batch stored nothing");
	ok(s && ml_host_fault(h, s) == NULL, "the handler is not faulted");
	ok(step_until(h, log, "pong-ping-1", 1, 3000), "its batch goes in on the next try");
	ok(step_until(h, log, "$checkpoint-echo", 1, 1000), "with its checkpoint");
	is_int(count(log, "pong-ping-1"), 1, "once");

	/* A parked event's batch: the event is read again to build it. */
	ping(log, "ping-2");
	ml_log_inject_fault(log, 1, ENOSPC);
	for (int i = 0; i < 20; i++)
		ml_host_step(h), usleep(1000);
	is_int(count(log, "$parked-echo"), 0, "the failed parking stored nothing");
	ok(step_until(h, log, "$parked-echo", 1, 3000), "the parked event goes in on the next try");
	ok(s && ml_host_fault(h, s) == NULL, "and the handler runs on");
	ml_host_close(h);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	test_retry();
	return done_testing();
}
