/*
 * bench_net.c - network benchmarks: `moonlog bench append --connect`,
 * `moonlog bench subscribe`.
 */
#include "cli/cli.h"
