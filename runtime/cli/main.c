/*
 * main.c - the moonlog command: dispatches to one function per sub-command.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <lua.h>
#include <msgpack.h>

#include "cli/cli.h"

static const struct cli_command commands[] = {
    {"append", cmd_append, "append an event to a stream"},
    {"read", cmd_read, "print the events of a stream or of $all"},
    {"delete", cmd_delete, "delete a stream (--hard: for good), as a $deleted event"},
    {"meta", cmd_meta, "read or set a stream's retention: max age, max count, truncate"},
    {"check", cmd_check, "verify every record of the log (--repair cuts a torn tail)"},
    {"export", cmd_export, "write the log's events as JSON Lines, every field kept"},
    {"import", cmd_import, "append the events of an export to a log, ids and times kept"},
    {"backup", cmd_backup, "a consistent copy of a running server's log (hard links where it can)"},
    {"restore", cmd_restore, "make a data folder from a backup, and check it"},
    {"scavenge", cmd_scavenge, "give back the disk of removed events (online or on a closed log)"},
    {"replay", cmd_replay, "fold the log through a script and print its final state"},
    {"test", cmd_test, "run busted specs with the moonlog Lua modules of this moonlog"},
    {"lint", cmd_lint, "check scripts as the server loads them: file:line: message"},
    {"new", cmd_new, "start a script and its spec from a template (new projection NAME)"},
    {"repl", cmd_repl, "a Lua prompt into the log and the running scripts"},
    {"eval", cmd_eval, "evaluate one Lua chunk, as the REPL does"},
    {"serve", cmd_serve, "serve the log: msgpack-RPC, HTTP and subscriptions"},
    {"tail", cmd_tail, "follow the events of a running server (a pattern, catching up first)"},
    {"scripts", cmd_scripts, "the scripts a running server hosts: state, position, lag, errors"},
    {"reload", cmd_reload, "reload a script of a running server, or preview it first (--dry-run)"},
    {"bench", cmd_bench, "measure speed (moonlog bench --help lists the scenarios)"},
    {"help", NULL, "show this help (--version: the version)"},
};

static void usage(FILE *out)
{
	fprintf(out,
		"moonlog - an event-sourcing runtime: a durable event log with Lua scripts\n\n"
		"usage: moonlog COMMAND [options]   (moonlog COMMAND --help for its options)\n\n"
		"commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

/* The version, and those of the libraries it runs with: what a bug report needs. */
static int version(void)
{
	printf("moonlog %s (%s, libevent %s, msgpack-c %s)\n", ML_VERSION, LUA_RELEASE,
	       event_get_version(), msgpack_version());
	return CLI_OK;
}

int main(int argc, char **argv)
{
	/* A write past RLIMIT_FSIZE must fail with EFBIG, not kill the process. */
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return argc < 2 ? CLI_USAGE : 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)
		return version();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].run && strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "moonlog: unknown command '%s'; run 'moonlog help' for the list\n",
		argv[1]);
	return CLI_USAGE;
}
