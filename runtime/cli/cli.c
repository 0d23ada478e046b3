/*
 * cli.c - helpers the sub-commands share: error lines, options, opening the
 * log, printing events.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <moonlog/codec.h>

#include "cli/cli.h"

int cli_fail(const char *cmd, int status, const char *fmt, ...)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "moonlog %s", cmd);
	va_list ap;
	va_start(ap, fmt);
	ml_vline(prefix, fmt, ap);
	va_end(ap);
	return status;
}

int cli_status(void)
{
	return ml_diag_code() == ML_ERR_USAGE ? CLI_USAGE : CLI_REFUSED;
}

int cli_diag(const char *cmd)
{
	return cli_fail(cmd, cli_status(), "%s", ml_diag_last());
}

int cli_self_path(char *out, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);
	if (n <= 0)
		return ml_diag_set(ML_ERR_IO, "cannot tell where the moonlog executable is: %s",
				   n < 0 ? strerror(errno) : "no path");
	out[n] = '\0';
	return 0;
}

int cli_uint(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-') {
		cli_fail(cmd, CLI_USAGE, "%s wants a whole number, not '%s'", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

struct ml_log *cli_open_log(const char *cmd, const char *dir, int readonly, enum ml_fsync fsync)
{
	struct stat st;
	if (readonly && stat(dir, &st) != 0) {
		cli_fail(cmd, CLI_REFUSED,
			 "there is no data folder %s (give the right one with --data DIR)", dir);
		return NULL;
	}
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.readonly = readonly;
	o.fsync = fsync;
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		cli_diag(cmd);
	else if (ml_log_recovered(log)[0]) { /* what the open cut or built: say so */
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "moonlog %s", cmd);
		ml_line(prefix, "the log in %s: %s", dir, ml_log_recovered(log));
	}
	return log;
}

int cli_event_json(const struct ml_event *e, struct ml_buf *out)
{
	if (ml_event_json(out, e) != 0)
		return -1;
	ml_buf_add(out, "\n", 1);
	return 0;
}

int cli_event_line(const struct ml_event *e, struct ml_buf *out)
{
	time_t secs = (time_t)(e->time / 1000);
	struct tm tm;
	char when[32];
	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	ml_buf_addf(out, "%8" PRIu64 "  %s.%03dZ  %.*s@%" PRIu64 "  %.*s  ", e->position, when,
		    (int)(e->time % 1000), e->stream_len, e->stream, e->version, e->type_len,
		    e->type);
	if (e->data_len == 0)
		ml_buf_add(out, "-", 1);
	else if (ml_msgpack_to_json(e->data, e->data_len, out) != 0)
		return -1;
	if (e->meta_len && !(e->meta_len == 1 && e->meta[0] == 0x80)) { /* not an empty map */
		ml_buf_add(out, "  meta=", 7);
		if (ml_msgpack_to_json(e->meta, e->meta_len, out) != 0)
			return -1;
	}
	ml_buf_add(out, "\n", 1);
	return 0;
}
