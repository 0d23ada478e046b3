/*
 * pb_main.c - `moonlog-peerbench`: the command line of the peer bench client.
 *
 *   moonlog-peerbench SYSTEM WORKLOAD [options]
 *   moonlog-peerbench freeport [--span N] print a free TCP port on 127.0.0.1 (the
 *                                         first of N free ones in a row)
 *
 * SYSTEM is moonlog, redis, nats or tarantool; WORKLOAD is wait, append,
 * load, read, consume, fold or latency (see pb_drive.c). bench/run.lua calls it and reads the one
 * key=value line it prints; errors go to stderr with exit status 1.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pb.h"

static const char usage[] =
    "usage: moonlog-peerbench moonlog|redis|nats|tarantool WORKLOAD [options]\n"
    "       moonlog-peerbench freeport [--span N]\n"
    "\n"
    "workloads: wait (until the server answers), append, load, read (pages, one in\n"
    "           flight), consume (the system's consumer; pages where it has none),\n"
    "           fold, latency\n"
    "  --port P[,P..] the server's port on 127.0.0.1 (required); several: the servers of\n"
    "                one cluster, append's connections spread over them, latency's\n"
    "                publisher on the first and its subscriber on the second\n"
    "  --conns N     connections for append/load (default 1)\n"
    "  --window W    requests in flight per connection (default 32)\n"
    "  --seconds S   how long append runs (default 2); wait's limit\n"
    "  --count N     events for load/read/fold/latency (default 1000000)\n"
    "  --chunk N     events per read request (default 1000)\n"
    "  --rate R      events/s for latency (default 1000)\n"
    "  --fold-file F the Redis Function library for fold\n"
    "  --replicas N  nats: the copies of the stream it makes (default 1; 3 on a cluster)\n"
    "  --fields F,.. moonlog: read asks for these fields of each event (an array of\n"
    "                them) instead of the whole event map\n";

/* Binds 127.0.0.1:port (0: any); the socket, or -1. *port gets the port bound. */
static int bind_port(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
	socklen_t len = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A free port, or with --span N the first of N free ports in a row (a NATS cluster's). */
static int freeport(int argc, char **argv)
{
	int span = 1;
	if (argc == 4 && strcmp(argv[2], "--span") == 0)
		span = atoi(argv[3]);
	else if (argc != 2)
		span = 0;
	if (span < 1 || span > 100) {
		fputs("usage: moonlog-peerbench freeport [--span N]   (N from 1 to 100)\n", stderr);
		return 2;
	}
	for (int tries = 0; tries < 200; tries++) {
		int base = 0, fds[100], n = 0;
		if ((fds[n] = bind_port(&base)) >= 0)
			n++;
		while (n > 0 && n < span && base + n < 65536) {
			int port = base + n;
			if ((fds[n] = bind_port(&port)) < 0)
				break;
			n++;
		}
		for (int i = 0; i < n; i++)
			close(fds[i]);
		if (n == span) {
			printf("%d\n", base);
			return 0;
		}
	}
	fprintf(stderr, "peerbench: found no %d free ports in a row on 127.0.0.1\n", span);
	return 1;
}

/* --port P[,P...] */
static int parse_ports(const char *s, struct pb_opts *o)
{
	o->nports = 0;
	for (char *end; *s && o->nports < PB_MAX_PORTS; s = *end == ',' ? end + 1 : end) {
		long p = strtol(s, &end, 10);
		if (end == s || p <= 0 || p > 65535 || (*end && *end != ','))
			return -1;
		o->ports[o->nports++] = (int)p;
	}
	return o->nports > 0 && *s == '\0' ? 0 : -1;
}

/* Connects and says hello until it works or the time is up. */
static int wait_ready(const struct pb_proto *p, const struct pb_opts *o)
{
	uint64_t until = pb_now_ns() + (uint64_t)(o->seconds * 1e9);
	for (int i = 0; i < o->nports;) {
		struct pb_conn c;
		pb_quiet = 1;
		int ok = pb_connect(&c, o->ports[i], 0) == 0 && p->hello(&c) == 0;
		pb_quiet = 0;
		pb_close(&c);
		if (ok) {
			i++;
			continue;
		}
		if (pb_now_ns() > until)
			return pb_fail("%s on port %d did not answer", p->name, o->ports[i]);
		usleep(100000);
	}
	return 0;
}

static int parse(int argc, char **argv, struct pb_opts *o)
{
	static const struct option opts[] = {
	    {"port", required_argument, 0, 'p'},
	    {"conns", required_argument, 0, 'c'},
	    {"window", required_argument, 0, 'w'},
	    {"seconds", required_argument, 0, 's'},
	    {"count", required_argument, 0, 'n'},
	    {"chunk", required_argument, 0, 'k'},
	    {"rate", required_argument, 0, 'r'},
	    {"fold-file", required_argument, 0, 'f'},
	    {"replicas", required_argument, 0, 'R'},
	    {"fields", required_argument, 0, 'F'},
	    {0, 0, 0, 0},
	};
	*o = (struct pb_opts){.conns = 1,
			      .window = 32,
			      .chunk = 1000,
			      .rate = 1000,
			      .replicas = 1,
			      .count = 1000000,
			      .seconds = 2};
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (parse_ports(optarg, o) != 0)
				return -1;
			break;
		case 'c':
			o->conns = atoi(optarg);
			break;
		case 'w':
			o->window = atoi(optarg);
			break;
		case 's':
			o->seconds = atof(optarg);
			break;
		case 'n':
			o->count = strtoull(optarg, NULL, 10);
			break;
		case 'k':
			o->chunk = atoi(optarg);
			break;
		case 'r':
			o->rate = atoi(optarg);
			break;
		case 'f':
			o->arg = optarg;
			break;
		case 'R':
			o->replicas = atoi(optarg);
			break;
		case 'F':
			o->fields = optarg;
			break;
		default:
			return -1;
		}
	}
	int ok = o->nports > 0 && o->replicas >= 1 && o->replicas <= 5 && o->conns > 0 &&
		 o->window > 0 && o->chunk > 0 && o->rate > 0 && o->count > 0 && o->seconds > 0;
	return ok ? 0 : -1;
}

static const struct pb_proto *system_named(const char *name)
{
	const struct pb_proto *all[] = {&pb_moonlog, &pb_redis, &pb_nats, &pb_tnt};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "freeport") == 0)
		return freeport(argc, argv);
	const struct pb_proto *p = argc >= 3 ? system_named(argv[1]) : NULL;
	struct pb_opts o;
	if (p == NULL || parse(argc - 2, argv + 2, &o) != 0) {
		fputs(usage, stderr);
		return 2;
	}
	static const struct {
		const char *name;
		int (*run)(const struct pb_proto *, const struct pb_opts *);
	} workloads[] = {{"wait", wait_ready},	      {"append", pb_run_append},
			 {"load", pb_run_load},	      {"read", pb_run_read},
			 {"consume", pb_run_consume}, {"fold", pb_run_fold},
			 {"latency", pb_run_latency}};
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (strcmp(workloads[i].name, argv[2]) == 0)
			return workloads[i].run(p, &o) == 0 ? 0 : 1;
	fputs(usage, stderr);
	return 2;
}
