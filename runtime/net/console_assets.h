/*
 * console_assets.h - the web console's files as built into the library: the
 * table console_assets.c holds (generated from runtime/net/console/ by
 * runtime/net/CMakeLists.txt), which http_console.c serves.
 */
#ifndef ML_NET_CONSOLE_ASSETS_H
#define ML_NET_CONSOLE_ASSETS_H

#include <stddef.h>

struct ml_console_asset {
	const char *name; /* the file's name in console/, e.g. "console.js" */
	const char *data; /* its bytes (with a NUL after them) */
	size_t len;
	const char *etag; /* a hash of its bytes, quoted: "\"0123456789abcdef\"" */
};

/* Ends with an entry whose name is NULL. */
extern const struct ml_console_asset ml_console_assets[];

#endif
