/*
 * cmd_bench_cluster.c - `moonlog bench cluster --nats URLS`: two moonlog nodes
 * on one replicated log (docs/scale-out.md), measured from outside.
 *
 * It starts this executable twice as `moonlog serve --replicate URLS`, each
 * node on a scratch folder of its own and a free loopback port, on a JetStream
 * stream made for this run (so that the nodes start empty and nothing is read
 * back from an earlier run), and drives them with the networked bench client
 * (bench_net.c): appends spread over both nodes, then the lag from an append
 * on node A to its delivery on node B. Then it stops the nodes, deletes the
 * stream (through the plugin) and the folder. The NATS cluster is the user's:
 * tools/nats-cluster.sh starts one on this machine.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/replicate.h>

#include "cli/bench_net.h"
#include "cli/cli.h"
#include "cli/client.h"

#define START_WAIT_S 120 /* a node's start: JetStream making the stream, a leader elected */
#define STOP_WAIT_S  20	 /* a node's clean stop before SIGKILL */

static const char help[] =
    "usage: moonlog bench cluster --nats URLS [options]\n"
    "\n"
    "Two moonlog nodes on one replicated log (docs/scale-out.md), on the NATS JetStream\n"
    "cluster at URLS (tools/nats-cluster.sh up starts one on this machine). It starts\n"
    "`moonlog serve --replicate URLS --fsync always` twice, each node on a scratch folder\n"
    "and a free loopback port, on a JetStream stream made for this run, and measures:\n"
    "  appends  N connections spread over both nodes, D single-event appends (100-byte\n"
    "           events) in flight on each: durable appends/s, and each append's time\n"
    "           to its answer (p50, p99)\n"
    "  lag      one connection appends to node A at R events/s, a live subscription on\n"
    "           node B: the time from each append to its delivery on B (p50, p99)\n"
    "Then it stops the nodes and deletes the stream and the folder.\n"
    "\n"
    "  --nats URLS     nats://HOST:PORT[,...] (required)\n"
    "  --conns N       connections (default 64)\n"
    "  --depth D       appends in flight per connection (default 32)\n"
    "  --seconds S     how long the appends run (default 5)\n"
    "  --rate R        events/s of the lag run (default 1000)\n"
    "  --lag-seconds S how long the lag run appends (default 5)\n"
    "  --replicas N    copies JetStream keeps of the run's stream (default 3)\n"
    "  --fsync MODE    of the nodes (default always)\n"
    "  --dir DIR       the scratch folder (default ./moonlog-bench-cluster; removed after)\n";

struct copts {
	const char *nats, *dir, *fsync;
	uint64_t conns, depth, rate, replicas;
	double seconds, lag_seconds;
};

struct node {
	pid_t pid;
	char addr[32], data[1100], log[1100];
};

/* A port free on 127.0.0.1 now (the node binds it a moment later). */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Starts `moonlog serve` on n's folder, its stderr into n->log. */
static int node_start(struct node *n, const struct copts *o, const char *stream, const char *exe)
{
	int port = free_port();
	if (port < 0)
		return cli_fail("bench", CLI_REFUSED, "found no free port on 127.0.0.1: %s",
				strerror(errno));
	snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d", port);
	char replicas[24];
	snprintf(replicas, sizeof(replicas), "%" PRIu64, o->replicas);
	char *argv[] = {(char *)exe,
			"serve",
			"--data",
			n->data,
			"--listen",
			n->addr,
			"--http",
			"off",
			"--admin",
			"off",
			"--fsync",
			(char *)o->fsync,
			"--replicate",
			(char *)o->nats,
			"--replicate-stream",
			(char *)stream,
			"--replicate-replicas",
			replicas,
			NULL};
	int fd = open(n->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cli_fail("bench", CLI_REFUSED, "cannot create %s: %s", n->log,
				strerror(errno));
	fflush(NULL);
	n->pid = fork();
	if (n->pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execv(exe, argv);
		_exit(127);
	}
	close(fd);
	return n->pid > 0
		   ? 0
		   : cli_fail("bench", CLI_REFUSED, "cannot start a node: %s", strerror(errno));
}

/* The last line the node wrote, for a message. */
static void last_line(const struct node *n, char *out, size_t cap)
{
	out[0] = '\0';
	FILE *f = fopen(n->log, "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f))
		if (line[0] != '\n')
			snprintf(out, cap, "%s", line);
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

/* Waits until the node answers a request (it serves once it has caught up). */
static int node_ready(struct node *n)
{
	time_t until = time(NULL) + START_WAIT_S;
	for (;;) {
		int status;
		if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
			n->pid = 0;
			char why[512];
			last_line(n, why, sizeof(why));
			return cli_fail("bench", CLI_REFUSED, "a node did not start: %s (%s)",
					why[0] ? why : "it said nothing", n->log);
		}
		struct cli_client c;
		struct ml_buf p = {0};
		struct ml_msgpack_reader r;
		ml_msgpack_put_array(&p, 0);
		int ok = cli_client_connect(&c, n->addr) == 0 &&
			 cli_client_call(&c, "stats", &p, &r) == 0;
		cli_client_close(&c);
		ml_buf_free(&p);
		if (ok)
			return 0;
		if (time(NULL) > until)
			return cli_fail("bench", CLI_REFUSED,
					"a node did not answer in %d s; see %s", START_WAIT_S,
					n->log);
		usleep(100000);
	}
}

/* SIGTERM (a clean stop: appends in flight end), SIGKILL if it takes too long. */
static void node_stop(struct node *n)
{
	if (n->pid <= 0)
		return;
	kill(n->pid, SIGTERM);
	for (int i = 0; i < STOP_WAIT_S * 10; i++) {
		if (waitpid(n->pid, NULL, WNOHANG) == n->pid) {
			n->pid = 0;
			return;
		}
		usleep(100000);
	}
	kill(n->pid, SIGKILL);
	waitpid(n->pid, NULL, 0);
	n->pid = 0;
}

static int run(const struct copts *o, struct node *nodes)
{
	const char *addrs[2] = {nodes[0].addr, nodes[1].addr};
	struct cli_bench_appends a;
	int rc = cli_bench_appends(addrs, 2, o->conns, o->depth, o->seconds, &a);
	if (rc != CLI_OK)
		return rc;
	printf("appends: 2 nodes, %" PRIu64 " connections x %" PRIu64
	       " in flight, 100-byte events: %.0f durable appends/s (%" PRIu64
	       " in %.2f s, %" PRIu64 " failed); each answered in p50 %.1f us, p99 %.1f us\n",
	       o->conns, o->depth, (double)a.events / a.seconds, a.events, a.seconds, a.failed,
	       a.p50_us, a.p99_us);
	fflush(stdout);
	struct cli_bench_lag l;
	if ((rc = cli_bench_lag(nodes[0].addr, nodes[1].addr, o->rate, o->lag_seconds, &l)) != 0)
		return rc;
	printf("lag: %" PRIu64 " events appended on node A at %.0f/s, %" PRIu64
	       " delivered on node B; append-to-delivery p50 %.1f us, p99 %.1f us, p99.9 %.1f "
	       "us, max %.1f us\n",
	       l.sent, l.rate, l.delivered, l.p50_us, l.p99_us, l.p999_us, l.max_us);
	return l.delivered == l.sent
		   ? CLI_OK
		   : cli_fail("bench", CLI_REFUSED,
			      "node B delivered %" PRIu64 " of %" PRIu64 " events", l.delivered,
			      l.sent);
}

static int parse(int argc, char **argv, struct copts *o)
{
	static const struct option opts[] = {
	    {"nats", required_argument, 0, 'N'},
	    {"conns", required_argument, 0, 'n'},
	    {"depth", required_argument, 0, 'p'},
	    {"seconds", required_argument, 0, 's'},
	    {"rate", required_argument, 0, 'r'},
	    {"lag-seconds", required_argument, 0, 'l'},
	    {"replicas", required_argument, 0, 'R'},
	    {"fsync", required_argument, 0, 'f'},
	    {"dir", required_argument, 0, 'd'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c, bad = 0;
	enum ml_fsync mode;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'N':
			o->nats = optarg;
			break;
		case 'n':
			bad |= cli_uint("bench", "--conns", optarg, &o->conns);
			break;
		case 'p':
			bad |= cli_uint("bench", "--depth", optarg, &o->depth);
			break;
		case 'r':
			bad |= cli_uint("bench", "--rate", optarg, &o->rate);
			break;
		case 'R':
			bad |= cli_uint("bench", "--replicas", optarg, &o->replicas);
			break;
		case 's':
			o->seconds = atof(optarg);
			break;
		case 'l':
			o->lag_seconds = atof(optarg);
			break;
		case 'f':
			if (ml_fsync_parse(optarg, &mode) != 0)
				return cli_diag("bench");
			o->fsync = optarg;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_fail("bench", CLI_USAGE, "see moonlog bench cluster --help");
		}
	}
	if (bad)
		return CLI_USAGE;
	if (o->nats == NULL)
		return cli_fail(
		    "bench", CLI_USAGE,
		    "bench cluster needs --nats URLS, the NATS servers of a JetStream "
		    "cluster (tools/nats-cluster.sh up starts one; its `urls` prints them)");
	if (o->conns == 0 || o->depth == 0 || o->rate == 0 || o->seconds <= 0 ||
	    o->lag_seconds <= 0 || o->replicas < 1 || o->replicas > 5)
		return cli_fail("bench", CLI_USAGE,
				"--conns, --depth, --rate and the seconds must be positive, "
				"--replicas from 1 to 5");
	return CLI_OK;
}

int cli_bench_cluster(int argc, char **argv)
{
	struct copts o = {.dir = "./moonlog-bench-cluster",
			  .fsync = "always",
			  .conns = 64,
			  .depth = 32,
			  .rate = 1000,
			  .replicas = 3,
			  .seconds = 5,
			  .lag_seconds = 5};
	int rc = parse(argc, argv, &o);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc; /* -1: --help */
	char exe[4096], stream[40], cmd[2200];
	if (cli_self_path(exe, sizeof(exe)) != 0)
		return cli_diag("bench");
	snprintf(stream, sizeof(stream), "BENCH-%ld-%ld", (long)getpid(), (long)time(NULL));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", o.dir, o.dir);
	if (strchr(o.dir, '\'') || system(cmd) != 0)
		return cli_fail("bench", CLI_REFUSED, "cannot make the scratch folder %s", o.dir);
	struct node nodes[2] = {{0}};
	for (int i = 0; i < 2; i++) {
		snprintf(nodes[i].data, sizeof(nodes[i].data), "%s/node-%c", o.dir, 'a' + i);
		snprintf(nodes[i].log, sizeof(nodes[i].log), "%s/node-%c.log", o.dir, 'a' + i);
	}
	printf("cluster: two nodes on the JetStream stream %s (%" PRIu64
	       " copies) at %s, --fsync %s\n",
	       stream, o.replicas, o.nats, o.fsync);
	fflush(stdout);
	for (int i = 0; i < 2 && rc == CLI_OK; i++)
		rc = node_start(&nodes[i], &o, stream, exe);
	for (int i = 0; i < 2 && rc == CLI_OK; i++)
		rc = node_ready(&nodes[i]);
	if (rc == CLI_OK)
		rc = run(&o, nodes);
	node_stop(&nodes[0]);
	node_stop(&nodes[1]);
	struct ml_replicate_options ro = {.urls = o.nats, .stream = stream};
	if (cli_replicate_drop(&ro) != 0)
		fprintf(stderr, "moonlog bench: %s\n", ml_diag_last());
	if (rc == CLI_OK) { /* on failure the nodes' logs stay, for a look */
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "moonlog bench: could not remove %s\n", o.dir);
	}
	return rc;
}
