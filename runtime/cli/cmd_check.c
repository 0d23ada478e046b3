/*
 * cmd_check.c - `moonlog check`: verify every record of the log.
 *
 * A torn tail is told apart from damage: it is what a crash leaves (the last
 * batch, never acknowledged, not completely written), the next open cuts it
 * off, and check says so and exits 0. Damage exits 1.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog check [--data DIR] [--repair [--force]]\n"
    "\n"
    "Reads every record of every segment and verifies its checksum, its position and\n"
    "its batch. Reports the first bad record with its segment file and offset; exit\n"
    "status 1 if there is one. A torn tail (the last batch not completely written\n"
    "before a crash: it was never acknowledged, and the next open cuts it off) is not\n"
    "damage: check prints a line that starts with 'torn tail:' and exits 0. Nor is\n"
    "damage in the last write with whole batches after it that all say they were\n"
    "written before the damaged records were synced (a power loss, with the disk\n"
    "writing pages out of order): check prints 'lost write:' and exits 0, and the\n"
    "next open cuts it off too.\n"
    "\n"
    "The index files (DIR/log/*.idx, *.run) are verified against the records too. A\n"
    "damaged one fails the check; --repair removes it, and the next open builds it\n"
    "again from the segments. Records no index file holds yet (the next open walks\n"
    "them, or indexes their segment) are counted, and are not damage.\n"
    "\n"
    "  --data DIR   the data folder (default ./moonlog-data)\n"
    "  --repair     cut off a torn tail now, and remove damaged index files; other\n"
    "               damage is only reported\n"
    "  --force      with --repair: also cut the last segment at damage that good records\n"
    "               follow even when they say it was synced (the records after it are lost)\n"
    "\n"
    "On a terminal, a line on stderr says which segment it is at.\n";

/* On a terminal: "moonlog check: segment 3 of 80 (2%), 1234567 events so far". */
static void show_progress(const struct ml_check_report *r, size_t segment, size_t segments,
			  void *arg)
{
	(void)arg;
	fprintf(stderr, "\rmoonlog check: segment %zu of %zu (%zu%%), %llu events so far\033[K",
		segment + 1, segments, segments ? segment * 100 / segments : 100,
		(unsigned long long)r->records);
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"repair", no_argument, 0, 'r'},
	    {"force", no_argument, 0, 'f'},
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
		case 'f':
			force = 1;
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
	int tty = isatty(STDERR_FILENO);
	int rc = ml_log_check_progress(dir, repair, &r, tty ? show_progress : NULL, NULL);
	if (tty)
		fputs("\r\033[K", stderr); /* the line goes: the result follows on stdout */
	if (rc != 0)
		return cli_diag("check");
	if (r.cut_bytes)
		printf("repaired: cut %s of %" PRIu64 " bytes off %s\n",
		       r.lost_write  ? "the last write's records"
		       : r.torn_tail ? "a torn tail"
				     : "the damaged end",
		       r.cut_bytes, r.bad_segment);
	else if (r.lost_write)
		printf("lost write: the last write's records from offset %" PRIu64
		       " of segment %s were damaged at offset %" PRIu64
		       " by a power loss, with %" PRIu64
		       " whole batches after the damage that every one says was written before the "
		       "damage was synced; none of it was acknowledged, and the next open cuts it "
		       "off\n",
		       r.torn_offset, r.bad_segment, r.bad_offset, r.lost_batches);
	else if (r.torn_tail)
		printf("torn tail: the last batch (%" PRIu64 " bytes at offset %" PRIu64
		       " of segment %s) was not completely written before a crash; it was never "
		       "acknowledged, and the next open cuts it off\n",
		       r.torn_bytes, r.torn_offset, r.bad_segment);
	if (r.index_removed)
		printf("repaired: removed %" PRIu64
		       " damaged index file%s (first %s); the next open "
		       "builds %s again\n",
		       r.index_removed, r.index_removed == 1 ? "" : "s", r.bad_index,
		       r.index_removed == 1 ? "it" : "them");
	printf("ok: %" PRIu64 " segments, %" PRIu64 " events in %" PRIu64
	       " batches, last position %" PRIu64 "; index: %" PRIu64 " blocks and %" PRIu64
	       " runs verified, %" PRIu64 " events left for the next open to index\n",
	       r.segments, r.records, r.batches, r.last_position, r.index_blocks, r.index_runs,
	       r.unindexed);
	if (r.scavenged)
		printf("scavenged: %" PRIu64 " segment%s rewritten by a scavenge, with %" PRIu64
		       " stubs of removed events (docs/log.md, scavenged segments)\n",
		       r.scavenged, r.scavenged == 1 ? "" : "s", r.stubs);
	return CLI_OK;
}
