/*
 * cmd_reload.c - `moonlog reload`: reload a script of a running server from its
 * file, or preview a new version first with a dry run (the server's dry_run
 * method: docs/scripts-in-server.md) and swap it in once it looks right.
 *
 * A dry run answers at once with how far it is; this command asks again every
 * POLL_MS until it is done (saying how far on a terminal), then prints the
 * report: the keys of the state added, removed and changed (old -> new), or a
 * handler's emits added, dropped and changed, and the faults with their event
 * and line.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "cli/cli.h"
#include "cli/client.h"

#define POLL_MS 100

static const char help[] =
    "usage: moonlog reload [--connect ADDR | --data DIR] [NAME]\n"
    "       moonlog reload --dry-run [--apply] [--events N] [--examples N] NAME [FILE]\n"
    "       moonlog reload --apply NAME [FILE]\n"
    "\n"
    "Reloads the script NAME of a running server from its file (NAME: a loaded script's\n"
    "name, or a file of the scripts folder such as new.lua); without NAME, every script\n"
    "of the folder, as SIGHUP does. A version that does not load leaves the running one\n"
    "as it was; its error is printed and the exit status is 1.\n"
    "\n"
    "--dry-run previews a new version of NAME without swapping it in and without\n"
    "writing anything to the log. The new version is FILE (a copy you edit outside the\n"
    "scripts folder; the server reads it, so it must be on the server's machine) or,\n"
    "when the server runs with --reload manual, the script's own file. A projection or\n"
    "reducer folds the whole log beside the live version, which keeps serving, and the\n"
    "two states are compared key by key; a handler runs over the last --events events\n"
    "and what it emits is compared with what the live version emitted for them. The\n"
    "report lists the keys added, removed and changed (old -> new), or the emits added,\n"
    "dropped and changed, and every fault with its event and line; the exit status is 1\n"
    "when the new version faulted.\n"
    "\n"
    "  --connect ADDR  the server's RPC port, HOST:PORT (default: the admin socket of\n"
    "                  --data, else 127.0.0.1:7420)\n"
    "  --data DIR      the data folder of a server running on this machine\n"
    "  --dry-run       preview NAME's new version: FILE, or its own file\n"
    "  --apply         swap in the version the dry run previewed, if FILE still holds\n"
    "                  it and the live version has not changed since (with --dry-run:\n"
    "                  once the dry run is done, if the new version did not fault)\n"
    "  --events N      handlers: run over the last N events (default 1000)\n"
    "  --examples N    show the first N differences of each kind (default 10)\n"
    "  --cancel        stop NAME's dry run\n"
    "  --json          print the server's answer as one JSON object\n";

struct opts {
	const char *addr, *dir, *name;
	char file[PATH_MAX];
	int dry, apply, cancel, json;
	uint64_t events, examples;
};

/* ---- reading the answer ---- */

/* The value of `key` in the msgpack map at m: 0 with *v, *vl; -1 when absent. */
static int get(const uint8_t *m, size_t len, const char *key, const uint8_t **v, size_t *vl)
{
	struct ml_msgpack_reader r;
	uint32_t n;
	size_t kl = strlen(key);
	ml_msgpack_reader_init(&r, m, len);
	if (ml_msgpack_get_map(&r, &n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *kraw;
		size_t kraw_len;
		const char *k;
		uint32_t l;
		struct ml_msgpack_reader kr;
		if (ml_msgpack_skip(&r, &kraw, &kraw_len) != 0 || ml_msgpack_skip(&r, v, vl) != 0)
			return -1;
		ml_msgpack_reader_init(&kr, kraw, kraw_len);
		if (ml_msgpack_get_str(&kr, &k, &l) == 0 && l == kl && memcmp(k, key, kl) == 0)
			return 0;
	}
	return -1;
}

static uint64_t get_uint(const uint8_t *m, size_t len, const char *key)
{
	const uint8_t *v;
	size_t vl;
	uint64_t u = 0;
	struct ml_msgpack_reader r;
	if (get(m, len, key, &v, &vl) == 0) {
		ml_msgpack_reader_init(&r, v, vl);
		ml_msgpack_get_uint(&r, &u);
	}
	return u;
}

/* A value as text: a string as it is, anything else as JSON ("" when absent). */
static void text_of(const uint8_t *v, size_t vl, struct ml_buf *out)
{
	struct ml_msgpack_reader r;
	const char *s;
	uint32_t n;
	ml_msgpack_reader_init(&r, v, vl);
	if (ml_msgpack_get_str(&r, &s, &n) == 0)
		ml_buf_add(out, s, n);
	else if (ml_msgpack_to_json(v, vl, out) != 0)
		ml_buf_add(out, "?", 1);
}

static void get_text(const uint8_t *m, size_t len, const char *key, struct ml_buf *out)
{
	const uint8_t *v;
	size_t vl;
	if (get(m, len, key, &v, &vl) == 0)
		text_of(v, vl, out);
}

/* Calls fn on each element of the array under `key`. */
static void each(const uint8_t *m, size_t len, const char *key,
		 void (*fn)(const uint8_t *v, size_t vl, const char *what), const char *what)
{
	const uint8_t *v, *el;
	size_t vl, ell;
	uint32_t n;
	struct ml_msgpack_reader r;
	if (get(m, len, key, &v, &vl) != 0)
		return;
	ml_msgpack_reader_init(&r, v, vl);
	if (ml_msgpack_get_array(&r, &n) != 0)
		return;
	for (uint32_t i = 0; i < n && ml_msgpack_skip(&r, &el, &ell) == 0; i++)
		fn(el, ell, what);
}

/* ---- printing the report ---- */

static void print_key(const uint8_t *v, size_t vl, const char *what)
{
	struct ml_buf b = {0};
	get_text(v, vl, "key", &b);
	ml_buf_add(&b, ": ", 2);
	if (strcmp(what, "added") != 0)
		get_text(v, vl, "old", &b);
	if (strcmp(what, "changed") == 0)
		ml_buf_add(&b, " -> ", 4);
	if (strcmp(what, "removed") != 0)
		get_text(v, vl, "new", &b);
	printf("    %.*s\n", (int)b.len, b.data);
	ml_buf_free(&b);
}

/* An emitted event: stream Type {data}. */
static void emit_text(const uint8_t *m, size_t len, const char *key, struct ml_buf *b)
{
	const uint8_t *v;
	size_t vl;
	if (get(m, len, key, &v, &vl) != 0)
		return;
	get_text(v, vl, "stream", b);
	ml_buf_add(b, " ", 1);
	get_text(v, vl, "type", b);
	ml_buf_add(b, " ", 1);
	get_text(v, vl, "data", b);
}

/* The event that caused it: #position stream Type. */
static void cause_text(const uint8_t *v, size_t vl, struct ml_buf *b)
{
	ml_buf_addf(b, "#%llu ", (unsigned long long)get_uint(v, vl, "position"));
	get_text(v, vl, "stream", b);
	ml_buf_add(b, " ", 1);
	get_text(v, vl, "type", b);
}

static void print_emit(const uint8_t *v, size_t vl, const char *what)
{
	struct ml_buf b = {0};
	cause_text(v, vl, &b);
	if (strcmp(what, "changed") == 0) {
		ml_buf_add(&b, ": ", 2);
		emit_text(v, vl, "old", &b);
		ml_buf_add(&b, " -> ", 4);
		emit_text(v, vl, "new", &b);
	} else {
		ml_buf_add(&b, strcmp(what, "added") == 0 ? ": + " : ": - ", 4);
		emit_text(v, vl, "emit", &b);
	}
	printf("    %.*s\n", (int)b.len, b.data);
	ml_buf_free(&b);
}

static void print_fault(const uint8_t *v, size_t vl, const char *what)
{
	(void)what;
	struct ml_buf b = {0};
	const uint8_t *x;
	size_t xl;
	if (get(v, vl, "position", &x, &xl) == 0)
		cause_text(v, vl, &b);
	else
		ml_buf_add(&b, "loading it", 10);
	if (get(v, vl, "line", &x, &xl) == 0)
		ml_buf_addf(&b, ", line %llu", (unsigned long long)get_uint(v, vl, "line"));
	ml_buf_add(&b, ": ", 2);
	get_text(v, vl, "error", &b);
	printf("    %.*s\n", (int)b.len, b.data);
	ml_buf_free(&b);
}

static void print_list(const uint8_t *m, size_t len, const char *key, uint64_t count,
		       void (*fn)(const uint8_t *, size_t, const char *))
{
	const uint8_t *v;
	size_t vl;
	uint32_t n = 0;
	struct ml_msgpack_reader r;
	if (count == 0 || get(m, len, key, &v, &vl) != 0)
		return;
	ml_msgpack_reader_init(&r, v, vl);
	ml_msgpack_get_array(&r, &n);
	printf("  %s%s:\n", key, n < count ? " (the first of them)" : "");
	each(m, len, key, fn, key);
}

static void print_counts(const uint8_t *m, size_t len, const char *key, const char *const *names)
{
	const uint8_t *v;
	size_t vl;
	if (get(m, len, key, &v, &vl) != 0)
		return;
	printf("  %s:", key);
	for (int i = 0; names[i]; i++)
		printf("%s %llu %s", i ? "," : "", (unsigned long long)get_uint(v, vl, names[i]),
		       strcmp(names[i], "same") == 0 ? "the same" : names[i]);
	printf("\n");
}

static uint64_t count_of(const uint8_t *m, size_t len, const char *group, const char *key)
{
	const uint8_t *v;
	size_t vl;
	return get(m, len, group, &v, &vl) == 0 ? get_uint(v, vl, key) : 0;
}

static void print_report(const uint8_t *m, size_t len, const struct opts *o)
{
	struct ml_buf kind = {0}, file = {0}, hash = {0}, live = {0};
	get_text(m, len, "kind", &kind);
	get_text(m, len, "file", &file);
	get_text(m, len, "hash", &hash);
	get_text(m, len, "live_hash", &live);
	printf("%s (%.*s): dry run of %.*s", o->name, (int)kind.len, kind.data, (int)file.len,
	       file.data);
	if (hash.len)
		printf(" (code %.*s, live code %.*s)", (int)hash.len, hash.data, (int)live.len,
		       live.data);
	printf("\n");
	uint64_t events = get_uint(m, len, "events"), ms = get_uint(m, len, "elapsed_ms");
	const uint8_t *v;
	size_t vl;
	int handler = kind.len == 7 && memcmp(kind.data, "handler", 7) == 0;
	if (handler && get(m, len, "emits", &v, &vl) == 0) {
		printf(
		    "  ran over the events %llu to %llu (%llu events, %llu handled) in %llu ms\n",
		    (unsigned long long)get_uint(m, len, "from"),
		    (unsigned long long)get_uint(m, len, "to"), (unsigned long long)events,
		    (unsigned long long)get_uint(m, len, "handled"), (unsigned long long)ms);
		static const char *const names[] = {"added", "dropped", "changed", "same", NULL};
		print_counts(m, len, "emits", names);
		for (int i = 0; i < 3; i++)
			print_list(m, len, names[i], count_of(m, len, "emits", names[i]),
				   print_emit);
		if (get_uint(m, len, "uncompared"))
			printf("  %llu events not compared: their batches were written before "
			       "moonlog recorded a batch's size in its checkpoint\n",
			       (unsigned long long)get_uint(m, len, "uncompared"));
	} else if (get(m, len, "keys", &v, &vl) == 0) {
		printf("  folded %llu events in %llu ms; the states compared at position %llu\n",
		       (unsigned long long)events, (unsigned long long)ms,
		       (unsigned long long)get_uint(m, len, "at"));
		static const char *const names[] = {"added", "removed", "changed", "same", NULL};
		print_counts(m, len, "keys", names);
		for (int i = 0; i < 3; i++)
			print_list(m, len, names[i], count_of(m, len, "keys", names[i]), print_key);
	}
	uint64_t faults = get_uint(m, len, "fault_count");
	if (faults) {
		printf("  %llu fault%s:\n", (unsigned long long)faults, faults == 1 ? "" : "s");
		each(m, len, "faults", print_fault, "faults");
	} else {
		printf("  no faults\n");
	}
	ml_buf_free(&kind);
	ml_buf_free(&file);
	ml_buf_free(&hash);
	ml_buf_free(&live);
}

static int print_json(const uint8_t *m, size_t len)
{
	struct ml_buf j = {0};
	if (ml_msgpack_to_json(m, len, &j) != 0)
		return cli_diag("reload");
	printf("%.*s\n", (int)j.len, j.data);
	ml_buf_free(&j);
	return CLI_OK;
}

/* ---- calling ---- */

/* Calls dry_run(name, file, options) and copies the answer into out. */
static int call_dry_run(struct cli_client *cl, const struct opts *o, int apply, int cancel,
			int restart, struct ml_buf *out)
{
	struct ml_buf p = {0};
	struct ml_msgpack_reader r;
	ml_msgpack_put_array(&p, 3);
	ml_msgpack_put_cstr(&p, o->name);
	if (o->file[0])
		ml_msgpack_put_cstr(&p, o->file);
	else
		ml_msgpack_put_nil(&p);
	ml_msgpack_put_map(&p, 3 + (o->events ? 1 : 0) + (o->examples ? 1 : 0));
	ml_msgpack_put_cstr(&p, "restart");
	ml_msgpack_put_bool(&p, restart);
	ml_msgpack_put_cstr(&p, "apply");
	ml_msgpack_put_bool(&p, apply);
	ml_msgpack_put_cstr(&p, "cancel");
	ml_msgpack_put_bool(&p, cancel);
	if (o->events) {
		ml_msgpack_put_cstr(&p, "events");
		ml_msgpack_put_uint(&p, o->events);
	}
	if (o->examples) {
		ml_msgpack_put_cstr(&p, "examples");
		ml_msgpack_put_uint(&p, o->examples);
	}
	int rc = cli_client_call(cl, "dry_run", &p, &r);
	ml_buf_free(&p);
	out->len = 0;
	if (rc == 0)
		ml_buf_add(out, r.p, ml_msgpack_left(&r));
	return rc;
}

static int running(const struct ml_buf *a)
{
	struct ml_buf st = {0};
	get_text((const uint8_t *)a->data, a->len, "state", &st);
	int yes = st.len == 7 && memcmp(st.data, "running", 7) == 0;
	ml_buf_free(&st);
	return yes;
}

static int dry_run(struct cli_client *cl, const struct opts *o)
{
	struct ml_buf a = {0};
	int tty = isatty(STDERR_FILENO), said = 0;
	for (int first = 1;; first = 0) { /* a fresh one, then follow it */
		if (call_dry_run(cl, o, 0, 0, first, &a) != 0) {
			ml_buf_free(&a);
			return cli_diag("reload");
		}
		if (!running(&a))
			break;
		const uint8_t *m = (const uint8_t *)a.data;
		uint64_t p = get_uint(m, a.len, "position"), of = get_uint(m, a.len, "of");
		if (tty && of)
			said = fprintf(stderr,
				       "\rmoonlog reload: dry run of %s at %llu of %llu (%llu%%)",
				       o->name, (unsigned long long)p, (unsigned long long)of,
				       (unsigned long long)(p * 100 / of));
		usleep(POLL_MS * 1000);
	}
	if (said)
		fprintf(stderr, "\r%*s\r", said, "");
	const uint8_t *m = (const uint8_t *)a.data;
	int faulted = get_uint(m, a.len, "fault_count") > 0;
	int rc = o->json ? print_json(m, a.len) : (print_report(m, a.len, o), CLI_OK);
	if (rc == CLI_OK && faulted)
		rc = CLI_REFUSED;
	if (rc == CLI_OK && o->apply) {
		if (call_dry_run(cl, o, 1, 0, 0, &a) != 0)
			rc = cli_diag("reload");
		else if (o->json)
			rc = print_json((const uint8_t *)a.data, a.len);
		else
			printf("applied: %s now runs the version previewed\n", o->name);
	} else if (rc == CLI_OK && !o->json) {
		printf("to swap it in: moonlog reload --apply %s%s%s\n", o->name,
		       o->file[0] ? " " : "", o->file);
	}
	ml_buf_free(&a);
	return rc;
}

/* reload(name) or reload(): one outcome, or a list of them. */
static void print_outcome(const uint8_t *v, size_t vl, const char *what)
{
	(void)what;
	struct ml_buf b = {0};
	get_text(v, vl, "name", &b);
	ml_buf_add(&b, ": ", 2);
	get_text(v, vl, "outcome", &b);
	const uint8_t *x;
	size_t xl;
	if (get(v, vl, "error", &x, &xl) == 0) {
		ml_buf_add(&b, ": ", 2);
		text_of(x, xl, &b);
	}
	printf("%.*s\n", (int)b.len, b.data);
	ml_buf_free(&b);
}

static int reload(struct cli_client *cl, const struct opts *o)
{
	struct ml_buf p = {0};
	struct ml_msgpack_reader r;
	ml_msgpack_put_array(&p, o->name ? 1 : 0);
	if (o->name)
		ml_msgpack_put_cstr(&p, o->name);
	int rc = cli_client_call(cl, "reload", &p, &r);
	ml_buf_free(&p);
	if (rc != 0)
		return cli_diag("reload");
	const uint8_t *m = r.p;
	size_t len = ml_msgpack_left(&r);
	if (o->json)
		return print_json(m, len);
	uint32_t n;
	const uint8_t *el;
	size_t ell;
	int failed = 0;
	if (ml_msgpack_get_array(&r, &n) != 0)
		n = 1;
	for (uint32_t i = 0; i < n && ml_msgpack_skip(&r, &el, &ell) == 0; i++) {
		const uint8_t *x;
		size_t xl;
		failed |= get(el, ell, "error", &x, &xl) == 0;
		print_outcome(el, ell, NULL);
	}
	return failed ? CLI_REFUSED : CLI_OK;
}

/* ---- options ---- */

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
	    {"connect", required_argument, 0, 'c'},  {"data", required_argument, 0, 'd'},
	    {"dry-run", no_argument, 0, 'n'},	     {"apply", no_argument, 0, 'a'},
	    {"cancel", no_argument, 0, 'x'},	     {"events", required_argument, 0, 'e'},
	    {"examples", required_argument, 0, 'E'}, {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},	     {0, 0, 0, 0},
	};
	int c;
	o->dir = "./moonlog-data";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->addr = optarg;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'n':
			o->dry = 1;
			break;
		case 'a':
			o->apply = 1;
			break;
		case 'x':
			o->cancel = 1;
			break;
		case 'e':
			if (cli_uint("reload", "--events", optarg, &o->events) != 0)
				return CLI_USAGE;
			break;
		case 'E':
			if (cli_uint("reload", "--examples", optarg, &o->examples) != 0)
				return CLI_USAGE;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_fail("reload", CLI_USAGE, "see moonlog reload --help");
		}
	}
	int preview = o->dry || o->apply || o->cancel;
	if (argc - optind > (preview ? 2 : 1))
		return cli_fail("reload", CLI_USAGE,
				"too many arguments: NAME, and with --dry-run or --apply a FILE");
	if (optind < argc)
		o->name = argv[optind];
	if (preview && o->name == NULL)
		return cli_fail("reload", CLI_USAGE,
				"--dry-run, --apply and --cancel take the script's NAME");
	if (optind + 1 < argc && realpath(argv[optind + 1], o->file) == NULL)
		return cli_fail("reload", CLI_REFUSED, "cannot find the file %s: %s",
				argv[optind + 1], strerror(errno));
	return CLI_OK;
}

int cmd_reload(int argc, char **argv)
{
	struct opts o = {0};
	int rc = parse(argc, argv, &o);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc;
	struct cli_client cl;
	if (cli_server_open(&cl, o.addr, o.dir) != 0)
		return cli_diag("reload");
	struct ml_buf a = {0};
	if (o.dry) {
		rc = dry_run(&cl, &o);
	} else if (o.apply || o.cancel) {
		if (call_dry_run(&cl, &o, o.apply, o.cancel, 0, &a) != 0)
			rc = cli_diag("reload");
		else if (o.json)
			rc = print_json((const uint8_t *)a.data, a.len);
		else if (o.apply)
			printf("applied: %s now runs the version previewed\n", o.name);
		else
			printf("%s: no dry run runs any more\n", o.name);
	} else {
		rc = reload(&cl, &o);
	}
	ml_buf_free(&a);
	cli_client_close(&cl);
	return rc;
}
