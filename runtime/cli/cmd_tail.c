/*
 * cmd_tail.c - `moonlog tail`: follow a running server's events.
 */
#include "cli/cli.h"

int cmd_tail(int argc, char **argv)
{
	return cli_fail("tail", CLI_USAGE, "not built yet");
}
