/*
 * bench_net.h - the networked bench client (bench_net.c) for the scenarios
 * that start the servers they measure (cmd_bench_cluster.c): pipelined appends
 * spread over several servers, and the lag from an append on one server to
 * its delivery on another.
 */
#ifndef ML_CLI_BENCH_NET_H
#define ML_CLI_BENCH_NET_H

#include <stddef.h>
#include <stdint.h>

struct cli_bench_appends {
	uint64_t events, failed; /* answered, and of those refused */
	double seconds, p50_us, p99_us;
};

/*
 * `conns` connections, connection i to addrs[i % naddrs], each keeping `depth`
 * single-event appends (100-byte events) in flight for `seconds`; each append's
 * time from its send to its answer. The exit status (CLI_OK), with a message
 * on stderr if not.
 */
int cli_bench_appends(const char *const *addrs, size_t naddrs, uint64_t conns, uint64_t depth,
		      double seconds, struct cli_bench_appends *out);

struct cli_bench_lag {
	uint64_t sent, delivered;
	double rate, p50_us, p99_us, p999_us, max_us;
};

/*
 * One connection appends to `pub` at `rate` events/s for `seconds`; a live
 * subscription on `sub` (the same server, or another node of one replicated
 * log) measures each event's time from its send to its delivery.
 */
int cli_bench_lag(const char *pub, const char *sub, uint64_t rate, double seconds,
		  struct cli_bench_lag *out);

#endif
