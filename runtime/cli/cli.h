/*
 * cli.h - what the sub-commands of the moonlog executable share.
 */
#ifndef ML_CLI_H
#define ML_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <moonlog/log.h>
#include <moonlog/util.h>

/* Exit statuses (DESIGN.md): 0 success, 1 a refused operation, 2 a usage error. */
enum { CLI_OK = 0, CLI_REFUSED = 1, CLI_USAGE = 2 };

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the sub-command's name */
	const char *summary;
};

int cmd_append(int argc, char **argv);
int cmd_delete(int argc, char **argv); /* cmd_delete.c, with cmd_meta */
int cmd_meta(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_scavenge(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cli_bench_cluster(int argc, char **argv); /* bench cluster (cmd_bench_cluster.c) */
int cmd_replay(int argc, char **argv);
int cmd_test(int argc, char **argv);
int bench_replay(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_scripts(int argc, char **argv);
int cli_scripts_history(int argc, char **argv); /* scripts history NAME (cmd_scripts_history.c) */
int cmd_reload(int argc, char **argv);
int cmd_lint(int argc, char **argv);
int cmd_new(int argc, char **argv);
int cmd_repl(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* serve --replicate: loads the replication plugin and starts it on log (replicate.c). */
struct ml_replicate_options;
int cli_replicate_start(struct ml_log *log, const struct ml_replicate_options *o);
/* bench cluster: deletes the journal it made for its run, through the plugin. -1 with diag. */
int cli_replicate_drop(const struct ml_replicate_options *o);

/* The path of the moonlog executable running (for its plugins, and to start it again). */
int cli_self_path(char *out, size_t cap);

/* lua_run.c: the first executable `name` on PATH, into out (0), or -1. */
int cli_find_program(const char *name, char *out, size_t n);
/* lua_run.c: runs lua5.4 with args (nargs of them) and this moonlog's Lua modules in reach,
 * in place of this process; returns (a status, with a message) only if it cannot. */
int cli_exec_lua(const char *cmd, char **args, int nargs);
/* "there is no stream NAME", status 1: for read (local and through a server). */
int cli_no_stream(const char *stream);
/* Prints "moonlog CMD: message" on stderr and returns the exit status. */
int cli_fail(const char *cmd, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The exit status for the current diag: 2 for usage errors, 1 otherwise. */
int cli_status(void);
/* Reports the current diag for cmd and returns its exit status. */
int cli_diag(const char *cmd);

/* Parses a non-negative integer option; -1 with a message if it is not one. */
int cli_uint(const char *cmd, const char *opt, const char *s, uint64_t *out);

/* Opens the log in dir for a command, with a message for a person if it cannot. */
struct ml_log *cli_open_log(const char *cmd, const char *dir, int readonly, enum ml_fsync fsync);

/* Appends an event as one JSON object and a newline (a JSON Lines row) to out. */
int cli_event_json(const struct ml_event *e, struct ml_buf *out);
/* Appends an event as one readable line to out. */
int cli_event_line(const struct ml_event *e, struct ml_buf *out);

#endif
