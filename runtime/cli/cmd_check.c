/*
 * cmd_check.c - `moonlog check`: verify every record of the log.
 */
#include <getopt.h>
#include <inttypes.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog check [--data DIR] [--repair]\n"
    "\n"
    "Reads every record of every segment and verifies its checksum, its position and\n"
    "its batch. Reports the first bad record with its segment file and offset; exit\n"
    "status 1 if there is one.\n"
    "\n"
    "  --data DIR   the data folder (default ./moonlog-data)\n"
    "  --repair     cut off a torn tail (an unfinished last batch, as a crash can leave);\n"
    "               other damage is only reported\n";

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"repair", no_argument, 0, 'r'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-data";
	int repair = 0, force = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'r':
			repair = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("check", CLI_USAGE, "see moonlog check --help");
		}
	}
	if (optind != argc)
		return cli_fail("check", CLI_USAGE, "takes no arguments besides options");
	if (force && !repair)
		return cli_fail("check", CLI_USAGE, "--force goes with --repair");
	if (force)
		repair = 2;
	struct ml_check_report r;
	if (ml_log_check(dir, repair, &r) != 0)
		return cli_diag("check");
	if (r.cut_bytes)
		printf("repaired: cut a torn tail of %" PRIu64 " bytes off %s\n", r.cut_bytes,
		       r.bad_segment);
	printf("ok: %" PRIu64 " segments, %" PRIu64 " events in %" PRIu64
	       " batches, last position %" PRIu64 "\n",
	       r.segments, r.records, r.batches, r.last_position);
	return CLI_OK;
}
