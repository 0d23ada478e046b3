/*
 * pb_main.c - `moonlog-peerbench`: the command line of the peer bench client.
 *
 *   moonlog-peerbench SYSTEM WORKLOAD [options]
 *   moonlog-peerbench freeport            print a free TCP port on 127.0.0.1
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
    "       moonlog-peerbench freeport\n"
    "\n"
    "workloads: wait (until the server answers), append, load, read (pages, one in\n"
    "           flight), consume (the system's consumer; pages where it has none),\n"
    "           fold, latency\n"
    "  --port P      the server's port on 127.0.0.1 (required)\n"
    "  --conns N     connections for append/load (default 1)\n"
    "  --window W    requests in flight per connection (default 32)\n"
    "  --seconds S   how long append runs (default 2); wait's limit\n"
    "  --count N     events for load/read/fold/latency (default 1000000)\n"
    "  --chunk N     events per read request (default 1000)\n"
    "  --rate R      events/s for latency (default 1000)\n"
    "  --fold-file F the Redis Function library for fold\n";

static int freeport(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		return 1;
	printf("%d\n", ntohs(sa.sin_port));
	close(fd);
	return 0;
}

/* Connects and says hello until it works or the time is up. */
static int wait_ready(const struct pb_proto *p, const struct pb_opts *o)
{
	uint64_t until = pb_now_ns() + (uint64_t)(o->seconds * 1e9);
	for (;;) {
		struct pb_conn c;
		pb_quiet = 1;
		int ok = pb_connect(&c, o->port, 0) == 0 && p->hello(&c) == 0;
		pb_quiet = 0;
		pb_close(&c);
		if (ok)
			return 0;
		if (pb_now_ns() > until)
			return pb_fail("%s on port %d did not answer", p->name, o->port);
		usleep(100000);
	}
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
	    {0, 0, 0, 0},
	};
	*o = (struct pb_opts){
	    .conns = 1, .window = 32, .chunk = 1000, .rate = 1000, .count = 1000000, .seconds = 2};
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			o->port = atoi(optarg);
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
		default:
			return -1;
		}
	}
	int ok = o->port > 0 && o->conns > 0 && o->window > 0 && o->chunk > 0 && o->rate > 0 &&
		 o->count > 0 && o->seconds > 0;
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
	if (argc == 2 && strcmp(argv[1], "freeport") == 0)
		return freeport();
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
