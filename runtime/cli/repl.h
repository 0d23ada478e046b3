/*
 * repl.h - the REPL's front end and the backends it evaluates through.
 *
 * The front end (repl.c) reads lines (libedit on a terminal, plain lines from
 * a pipe), gathers multi-line chunks, prints results and follows tails. A
 * backend evaluates: in this process on a log it opened (repl_local.c), or in
 * a running server through its admin socket or RPC port (repl_remote.c). Both
 * evaluate with lua/moonlog/repl.lua, so a session behaves the same either way.
 */
#ifndef ML_CLI_REPL_H
#define ML_CLI_REPL_H

#include <signal.h>
#include <stdint.h>

#include <moonlog/util.h>

struct repl_result {
	int ok;		    /* the chunk ran */
	int incomplete;	    /* the chunk lacks its end: read another line */
	struct ml_buf text; /* what to show: the values, or the error (NUL-terminated) */
	char tail[256];	    /* non-empty: follow this pattern ... */
	uint64_t tail_from; /* ... from this position */
};

struct repl_backend {
	const char *where; /* for the banner and prompt: "./moonlog-data" or "127.0.0.1:7420" */
	const char *how;   /* "server" (evaluated there) or "local" (log opened here) */
	int (*eval)(struct repl_backend *b, const char *chunk, struct repl_result *r);
	/* Candidates for the end of line; returns how many, in *out (free each and *out). */
	int (*complete)(struct repl_backend *b, const char *line, char ***out);
	/* Prints events matching pattern from position on until *stop is set. */
	int (*tail)(struct repl_backend *b, const char *pattern, uint64_t from,
		    volatile sig_atomic_t *stop);
	void (*close)(struct repl_backend *b);
};

/* Set by SIGINT while a tail or an evaluation runs. */
extern volatile sig_atomic_t repl_interrupted;

/* Opens the log in dir here (scripts from scripts_dir, may be NULL); NULL with a message. */
struct repl_backend *repl_local_open(const char *dir, const char *scripts_dir);
/* Connects to a server: addr is an admin socket path (eval is refused over TCP);
 * `where` names it in the prompt. NULL with a message. */
struct repl_backend *repl_remote_open(const char *addr, const char *where);

/* Runs the interactive loop on a terminal, or reads chunks from a pipe. Exit status. */
int repl_run(struct repl_backend *b, int interactive);
/* Evaluates one chunk and prints its result: 0, or 1 if it failed. */
int repl_eval_once(struct repl_backend *b, const char *chunk);

/* Prints an event the way the REPL shows events (one line). */
void repl_print_event_line(const char *line);

#endif
