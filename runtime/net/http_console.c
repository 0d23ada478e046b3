/*
 * http_console.c - the web console's files: GET / (the page) and GET
 * /console/{file} (its style sheet and script), from the table that
 * runtime/net/CMakeLists.txt builds into the library out of
 * runtime/net/console/ (docs/console.md). Nothing is fetched from elsewhere,
 * so the console works offline and is the same version as the server.
 *
 * The files hold no data: they are served without the token, and the page
 * asks for it when the API answers 401. The page's Content-Security-Policy
 * lets it load only its own files and talk only to this server.
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "net/console_assets.h"
#include "net/http_internal.h"

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
			  "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
			  "base-uri 'none'; frame-ancestors 'none'";

static const char *type_of(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {".html", "text/html; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	};
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static const struct ml_console_asset *find(const char *name)
{
	for (const struct ml_console_asset *a = ml_console_assets; a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

/* Does If-None-Match name this ETag (or "*")? Then the browser's copy is current. */
static int current(struct evhttp_request *req, const char *etag)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	return h && (strstr(h, etag) != NULL || strcmp(h, "*") == 0);
}

static void send_asset(struct evhttp_request *req, const struct ml_console_asset *a)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "ETag", a->etag);
	evhttp_add_header(h, "Cache-Control", "no-cache"); /* asks again, 304 while current */
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Content-Security-Policy", csp);
	if (current(req, a->etag)) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	char len[32];
	snprintf(len, sizeof(len), "%zu", a->len);
	evhttp_add_header(h, "Content-Type", type_of(a->name));
	evhttp_add_header(h, "Content-Length", len); /* also for HEAD, which has no body */
	struct evbuffer *b = evbuffer_new();
	if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add_reference(b, a->data, a->len, NULL, NULL); /* static: no copy */
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

int ml_http_console_route(struct ml_server *s, struct evhttp_request *req, const char *path)
{
	const char *name;
	if (strcmp(path, "/") == 0 || strcmp(path, "/console/") == 0)
		name = "index.html";
	else if (strncmp(path, "/console/", 9) == 0)
		name = path + 9;
	else
		return 0;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		ml_http_error(req, 405, ML_ERR_USAGE, 0,
			      "method not allowed here: the console's files are read with GET");
		return 1;
	}
	const struct ml_console_asset *a = find(name);
	if (a == NULL)
		ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0,
			      "no such file in the web console; open / for the console");
	else
		send_asset(req, a);
	return 1;
}
