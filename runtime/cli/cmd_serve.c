/*
 * cmd_serve.c - `moonlog serve`: run the server on a data folder until
 * SIGTERM or SIGINT. docs/operations.md describes the flags.
 *
 * This is where the parts meet: the log is opened here and handed to the
 * server and to the script host, and closed here once both are done with it.
 */
#include <getopt.h>
#include <string.h>

#include <sys/stat.h>

#include <moonlog/host.h>
#include <moonlog/log.h>
#include <moonlog/replicate.h>
#include <moonlog/server.h>
#include <moonlog/util.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog serve [--data DIR] [--scripts DIR] [--listen ADDR] [--http ADDR] [options]\n"
    "\n"
    "Serves the log in DIR: msgpack-RPC on --listen, HTTP with JSON on --http, and the\n"
    "admin socket DIR/moonlog.sock (mode 0600, where eval is allowed). Stops on SIGTERM\n"
    "or SIGINT once appends in flight are durable. Every *.lua in the scripts folder runs\n"
    "against the live log (docs/scripts-in-server.md).\n"
    "\n"
    "  --data DIR          the data folder (default ./moonlog-data; made mode 0700)\n"
    "  --scripts DIR       the scripts folder (default ./scripts, when it exists)\n"
    "  --reload MODE       auto (default): a script reloads when its file is saved;\n"
    "                      manual: only when asked (moonlog reload, reload(), SIGHUP), so\n"
    "                      that moonlog reload --dry-run can preview the file first\n"
    "  --checkpoint-events N  handlers: checkpoint after N events (default 10000)\n"
    "  --checkpoint-ms MS  handlers: checkpoint after MS with events handled (default 5000)\n"
    "  --snapshot-events N projections, reducers: snapshot after N events (default 1000000)\n"
    "  --snapshot-ms MS    projections, reducers: snapshot after MS (default 30000)\n"
    "  --decider-cache N   deciders: keep the state of N streams (default 100000; 0 = none)\n"
    "  --listen ADDR       msgpack-RPC HOST:PORT (default 127.0.0.1:7420; 'off' for none)\n"
    "  --http ADDR         HTTP HOST:PORT (default 127.0.0.1:7421; 'off' for none); the\n"
    "                      web console is at http://HOST:PORT/ (docs/console.md)\n"
    "  --admin PATH        the admin socket (default DIR/moonlog.sock; 'off' for none)\n"
    "  --fsync MODE        always (default), batch or never\n"
    "  --segment-size N    roll the log to a new segment file past N bytes (default\n"
    "                      268435456, 4096 to 2147483648); only finished segments are\n"
    "                      scavenged (moonlog scavenge)\n"
    "  --token FILE        require this token: 'Authorization: Bearer' on HTTP, auth() on TCP\n"
    "  --max-request N     bytes in one request or HTTP body (default 16777216)\n"
    "  --max-conns N       open TCP and HTTP connections; past it a new one is refused at\n"
    "                      once (default: the descriptor limit, raised to its hard limit,\n"
    "                      less those in use at start, less 64; admin ones not counted)\n"
    "  --header-timeout MS HTTP: a request's head must arrive within MS, else 408 and\n"
    "                      close (default 10000; 0 = no limit)\n"
    "  --idle-timeout MS   HTTP: close a keep-alive connection idle for MS, or one whose\n"
    "                      body or answer makes no progress for MS (default 60000)\n"
    "  --frame-timeout MS  RPC: close a connection that sent part of a request and\n"
    "                      nothing more for MS (default 10000)\n"
    "  --rpc-idle-timeout MS  RPC over TCP: close a connection with no subscription and\n"
    "                      nothing in flight after MS without a request (default 0: never)\n"
    "  --sse-heartbeat MS  HTTP event streams: a comment after MS without events, so that\n"
    "                      proxies keep them open (default 15000; 0 = none)\n"
    "  --cors ORIGIN       let web pages of ORIGIN (https://host[:port], or '*') call the\n"
    "                      HTTP API and follow event streams (default: none)\n"
    "  --max-outbuf N      bytes waiting to go to one connection before its subscriptions\n"
    "                      pause and fall back to the log (default 8388608)\n"
    "  --max-read N        events in one read answer (default 10000)\n"
    "  --eval-budget N     Lua instructions one eval may run (default 100000000)\n"
    "  --ack-timeout MS    groups: redeliver an unacked event after MS (default 30000)\n"
    "  --max-deliveries N  groups: park an event after N deliveries (default 5)\n"
    "  --script-memory MIB each script's Lua memory limit (default 256)\n"
    "  --script-time MS    the time (CPU time) a script may take for one event, query or\n"
    "                      command (default 1000); past it the script faults, or the\n"
    "                      request fails alone (docs/scripts-in-server.md, Limits)\n"
    "  --script-instructions N  the Lua instructions one event or call may run\n"
    "                      (default 100000000)\n"
    "  --stuck-after MS    a script call still running this long past --script-time is\n"
    "                      stuck where nothing can stop it: the server records the\n"
    "                      script's fault and exits, for its supervisor to restart it\n"
    "                      (default 5000)\n"
    "  --quiet             no log lines on stderr\n"
    "\n"
    "Scale-out (docs/scale-out.md): several nodes, each with its own data folder, share\n"
    "one log kept by a NATS JetStream cluster (the plugin moonlog_jetstream.so):\n"
    "  --replicate URLS    the NATS servers, nats://HOST:PORT[,...]; every node applies\n"
    "                      the shared journal to its own log, and serves once caught up\n"
    "  --replicate-stream NAME  the JetStream stream of the journal (default MOONLOG;\n"
    "                      made if missing, refused if its settings do not fit)\n"
    "  --replicate-replicas N  copies JetStream keeps when it makes the stream (default 3)\n"
    "A handler runs on one node at a time, the one that holds its lease ($lease-NAME);\n"
    "on the others it stands by (scripts() says where it runs), and one of them takes\n"
    "it over when its node stops, or is gone (about 3 s without its heartbeats).\n";

static int num(const char *opt, const char *s, uint32_t *out)
{
	uint64_t v;
	if (cli_uint("serve", opt, s, &v) != 0)
		return -1;
	if (v == 0 || v > UINT32_MAX) {
		cli_fail("serve", CLI_USAGE, "%s must be between 1 and %u", opt, UINT32_MAX);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Milliseconds, 0 meaning never. */
static int ms(const char *opt, const char *s, uint32_t *out)
{
	uint64_t v;
	if (cli_uint("serve", opt, s, &v) != 0)
		return -1;
	if (v > UINT32_MAX) {
		cli_fail("serve", CLI_USAGE, "%s must be at most %u milliseconds", opt, UINT32_MAX);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static const char *off(const char *s)
{
	return strcmp(s, "off") == 0 ? "" : s;
}

struct serve_scripts {
	const char *dir;
	int given;
	struct ml_host_options ho;
	struct ml_replicate_options rep; /* --replicate: rep.urls set */
};

static int parse(int argc, char **argv, struct ml_server_options *o, struct ml_log_options *lo,
		 struct serve_scripts *sc)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"scripts", required_argument, 0, 's'},
	    {"listen", required_argument, 0, 'l'},
	    {"http", required_argument, 0, 'H'},
	    {"admin", required_argument, 0, 'a'},
	    {"fsync", required_argument, 0, 'f'},
	    {"token", required_argument, 0, 't'},
	    {"max-request", required_argument, 0, 1},
	    {"max-conns", required_argument, 0, 2},
	    {"max-outbuf", required_argument, 0, 3},
	    {"max-read", required_argument, 0, 4},
	    {"eval-budget", required_argument, 0, 5},
	    {"ack-timeout", required_argument, 0, 6},
	    {"max-deliveries", required_argument, 0, 7},
	    {"checkpoint-events", required_argument, 0, 8},
	    {"checkpoint-ms", required_argument, 0, 9},
	    {"snapshot-events", required_argument, 0, 10},
	    {"snapshot-ms", required_argument, 0, 11},
	    {"decider-cache", required_argument, 0, 12},
	    {"script-memory", required_argument, 0, 20},
	    {"script-time", required_argument, 0, 21},
	    {"script-instructions", required_argument, 0, 22},
	    {"stuck-after", required_argument, 0, 23},
	    {"reload", required_argument, 0, 24},
	    {"header-timeout", required_argument, 0, 13},
	    {"idle-timeout", required_argument, 0, 14},
	    {"frame-timeout", required_argument, 0, 15},
	    {"rpc-idle-timeout", required_argument, 0, 16},
	    {"sse-heartbeat", required_argument, 0, 17},
	    {"cors", required_argument, 0, 18},
	    {"replicate", required_argument, 0, 30},
	    {"replicate-stream", required_argument, 0, 31},
	    {"replicate-replicas", required_argument, 0, 32},
	    {"segment-size", required_argument, 0, 33},
	    {"quiet", no_argument, 0, 'q'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'd':
			o->dir = optarg;
			break;
		case 's':
			sc->dir = optarg;
			sc->given = 1;
			break;
		case 'l':
			o->listen = off(optarg);
			break;
		case 'H':
			o->http = off(optarg);
			break;
		case 'a':
			o->admin = off(optarg);
			break;
		case 't':
			o->token_file = optarg;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'f':
			if (ml_fsync_parse(optarg, &lo->fsync) != 0)
				return cli_diag("serve");
			break;
		case 33:
			bad = cli_uint("serve", "--segment-size", optarg, &v);
			lo->segment_size = v;
			break;
		case 1:
			bad = num("--max-request", optarg, &o->max_request);
			break;
		case 2:
			bad = num("--max-conns", optarg, &o->max_conns);
			break;
		case 3:
			bad = num("--max-outbuf", optarg, &o->max_outbuf);
			break;
		case 4:
			bad = num("--max-read", optarg, &o->max_read);
			break;
		case 5:
			bad = cli_uint("serve", "--eval-budget", optarg, &v);
			o->eval_budget = v;
			break;
		case 6:
			bad = num("--ack-timeout", optarg, &o->ack_timeout_ms);
			break;
		case 7:
			bad = num("--max-deliveries", optarg, &o->max_deliveries);
			break;
		case 8:
			bad = cli_uint("serve", "--checkpoint-events", optarg,
				       &sc->ho.checkpoint_events);
			break;
		case 9:
			bad = num("--checkpoint-ms", optarg, &sc->ho.checkpoint_ms);
			break;
		case 10:
			bad =
			    cli_uint("serve", "--snapshot-events", optarg, &sc->ho.snapshot_events);
			break;
		case 11:
			bad = num("--snapshot-ms", optarg, &sc->ho.snapshot_ms);
			break;
		case 12:
			bad = cli_uint("serve", "--decider-cache", optarg, &v);
			sc->ho.script.decider_cache_streams = (size_t)v;
			break;
		case 20:
			bad = cli_uint("serve", "--script-memory", optarg, &v);
			if (!bad && (v == 0 || v > (1u << 20)))
				return cli_fail("serve", CLI_USAGE,
						"--script-memory takes MiB, from 1 to 1048576");
			sc->ho.script.memory_limit = (size_t)v << 20;
			break;
		case 21:
			bad = num("--script-time", optarg, &sc->ho.script.time_limit_ms);
			break;
		case 22:
			bad = cli_uint("serve", "--script-instructions", optarg, &v);
			sc->ho.script.instruction_limit = v ? v : 1;
			break;
		case 23:
			bad = num("--stuck-after", optarg, &sc->ho.stuck_ms);
			break;
		case 24:
			if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "manual") != 0)
				return cli_fail("serve", CLI_USAGE,
						"--reload takes auto (a saved script reloads) or "
						"manual (only when asked)");
			sc->ho.manual_reload = strcmp(optarg, "manual") == 0;
			break;
		case 13:
			bad = ms("--header-timeout", optarg, &o->header_timeout_ms);
			break;
		case 14:
			bad = ms("--idle-timeout", optarg, &o->idle_timeout_ms);
			break;
		case 15:
			bad = ms("--frame-timeout", optarg, &o->frame_timeout_ms);
			break;
		case 16:
			bad = ms("--rpc-idle-timeout", optarg, &o->rpc_idle_timeout_ms);
			break;
		case 17:
			bad = ms("--sse-heartbeat", optarg, &o->sse_heartbeat_ms);
			break;
		case 18:
			o->cors = optarg;
			break;
		case 30:
			sc->rep.urls = optarg;
			break;
		case 31:
			sc->rep.stream = optarg;
			break;
		case 32:
			bad = cli_uint("serve", "--replicate-replicas", optarg, &v);
			if (!bad && (v < 1 || v > 5))
				return cli_fail(
				    "serve", CLI_USAGE,
				    "--replicate-replicas takes 1 to 5 (copies of the log)");
			sc->rep.replicas = (int)v;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_fail("serve", CLI_USAGE, "see moonlog serve --help");
		}
		if (bad)
			return CLI_USAGE;
	}
	if (optind < argc)
		return cli_fail("serve", CLI_USAGE,
				"unexpected argument '%s'; see moonlog serve --help", argv[optind]);
	if (!sc->rep.urls && (sc->rep.stream || sc->rep.replicas))
		return cli_fail(
		    "serve", CLI_USAGE,
		    "--replicate-stream and --replicate-replicas go with --replicate URLS");
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	struct ml_server_options o;
	struct ml_log_options lo;
	struct serve_scripts sc = {.dir = "./scripts"};
	ml_server_options_init(&o);
	ml_log_options_init(&lo);
	ml_host_options_init(&sc.ho);
	int rc = parse(argc, argv, &o, &lo, &sc);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	lo.dir = o.dir;
	ml_raise_fd_limit(); /* first: the log keeps a descriptor per segment */
	struct ml_log *log = ml_log_open(&lo);
	if (log == NULL)
		return cli_diag("serve");
	if (ml_log_recovered(log)[0] && !o.quiet) /* what the open cut or built, in its line */
		ml_line("moonlog serve", "the log in %s: %s", lo.dir, ml_log_recovered(log));
	if (sc.rep.urls) { /* the shared log: caught up before anything reads this one */
		sc.rep.quiet = o.quiet;
		if (cli_replicate_start(log, &sc.rep) != 0) {
			rc = cli_diag("serve");
			ml_log_close(log);
			return rc;
		}
	}
	struct ml_server *s = ml_server_new(log, &o);
	if (s == NULL) {
		rc = cli_diag("serve");
		ml_log_close(log);
		return rc;
	}
	struct ml_host *h = NULL;
	struct stat st;
	if (sc.given || stat(sc.dir, &st) == 0) { /* the default folder only when it exists */
		sc.ho.scripts_dir = sc.dir;
		sc.ho.data_dir = o.dir;
		sc.ho.quiet = o.quiet;
		if ((h = ml_host_open(log, &sc.ho)) == NULL) {
			rc = cli_diag("serve");
			ml_server_free(s);
			ml_log_close(log);
			return rc;
		}
		ml_host_serve(h, s);
	}
	rc = ml_server_run(s) == 0 ? CLI_OK : cli_diag("serve");
	ml_host_close(h); /* checkpoints and snapshots, before the log closes */
	ml_server_free(s);
	ml_log_close(log);
	return rc;
}
