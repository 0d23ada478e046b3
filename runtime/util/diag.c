/*
 * diag.c - per-thread record of the last failure (see moonlog/diag.h).
 */
#include <moonlog/diag.h>

#include <stdarg.h>
#include <stdio.h>

static _Thread_local struct {
	enum ml_err code;
	char msg[512];
} diag;

int ml_diag_set(enum ml_err code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag.code = code;
	vsnprintf(diag.msg, sizeof(diag.msg), fmt, ap);
	va_end(ap);
	return -1;
}

enum ml_err ml_diag_code(void)
{
	return diag.code;
}

const char *ml_diag_last(void)
{
	return diag.code == ML_OK ? "no error" : diag.msg;
}

void ml_diag_clear(void)
{
	diag.code = ML_OK;
	diag.msg[0] = '\0';
}

const char *ml_err_name(enum ml_err code)
{
	static const char *const names[] = {
	    [ML_OK] = "ok",
	    [ML_ERR_USAGE] = "bad_request",
	    [ML_ERR_CONFLICT] = "conflict",
	    [ML_ERR_REFUSED] = "refused",
	    [ML_ERR_IO] = "io",
	    [ML_ERR_CORRUPT] = "corrupt",
	    [ML_ERR_NOT_FOUND] = "not_found",
	    [ML_ERR_BUSY] = "busy",
	    [ML_ERR_SCRIPT] = "script",
	};
	if ((unsigned)code >= sizeof(names) / sizeof(names[0]))
		return "error";
	return names[code];
}
