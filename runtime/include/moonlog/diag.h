/*
 * diag.h - the reason the last call failed.
 *
 * Core functions return 0 / -1 (or a pointer / NULL) and record why they failed
 * in a per-thread area; the caller that reports the failure reads it with
 * ml_diag_last(). Messages are written for the person who will read them: what
 * was wrong, and what to do about it.
 */
#ifndef MOONLOG_DIAG_H
#define MOONLOG_DIAG_H

#include <moonlog/api.h>

/* What kind of failure: lets callers choose an exit status or an HTTP code. */
enum ml_err {
	ML_OK = 0,
	ML_ERR_USAGE,	  /* bad argument or input: the caller's mistake (exit 2, HTTP 400) */
	ML_ERR_CONFLICT,  /* expected version did not match (exit 1, HTTP 409) */
	ML_ERR_REFUSED,	  /* a valid request the log refuses: too big, reserved name (exit 1) */
	ML_ERR_IO,	  /* the file system failed: full disk, I/O error (exit 1, HTTP 503) */
	ML_ERR_CORRUPT,	  /* the data on disk is damaged (exit 1) */
	ML_ERR_NOT_FOUND, /* no such stream, script, file (exit 1, HTTP 404) */
	ML_ERR_BUSY,	  /* another process holds the log (exit 1) */
	ML_ERR_SCRIPT,	  /* a Lua script failed or faulted (exit 1) */
};

/* Records a failure for this thread. Always returns -1, so `return ml_diag_set(...)`. */
ML_API int ml_diag_set(enum ml_err code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
ML_API enum ml_err ml_diag_code(void);
ML_API const char *ml_diag_last(void);
ML_API void ml_diag_clear(void);
/* Names a diag code in a word ("conflict"), for the wire protocols. */
ML_API const char *ml_err_name(enum ml_err code);

#endif
