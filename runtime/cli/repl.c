/*
 * repl.c - the REPL's front end: line editing, history, multi-line chunks,
 * completion, Ctrl-C, and the pipe mode (see repl.h).
 *
 * As in lua.c, a chunk the backend calls incomplete (its syntax error ends at
 * <eof>) is continued on the next line. Ctrl-C at the prompt drops the line
 * being typed; during a tail it stops the tail; it never ends the REPL.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli/repl.h"

volatile sig_atomic_t repl_interrupted;
static struct repl_backend *completing;

static void on_sigint(int sig)
{
	(void)sig;
	repl_interrupted = 1;
}

static void catch_sigint(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: a blocked read returns EINTR */
}

static void history_path(char *out, size_t cap)
{
	const char *home = getenv("HOME");
	snprintf(out, cap, "%s/.moonlog_history", home && *home ? home : ".");
}

/* libedit asks for candidates one at a time; the backend answers for the whole line. */
static char **candidates;
static int ncandidates;

static char *next_candidate(const char *text, int state)
{
	static int i;
	if (state == 0)
		i = 0;
	size_t skip = strlen(rl_line_buffer) - strlen(text); /* the part before the word */
	while (i < ncandidates) {
		const char *c = candidates[i++];
		if (strlen(c) >= skip)
			return strdup(c + skip);
	}
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	(void)start;
	for (int i = 0; i < ncandidates; i++)
		free(candidates[i]);
	free(candidates);
	candidates = NULL;
	char *line = strndup(rl_line_buffer, (size_t)end);
	ncandidates = completing->complete(completing, line, &candidates);
	free(line);
	rl_attempted_completion_over = 1; /* never fall back to file names */
	if (ncandidates <= 0)
		return NULL;
	return rl_completion_matches(text, next_candidate);
}

static void show(const struct repl_result *r, FILE *out)
{
	if (r->text.len == 0)
		return;
	fputs(r->text.data, out);
	fputc('\n', out);
	fflush(out);
}

static void follow(struct repl_backend *b, const struct repl_result *r)
{
	printf("following %s from position %llu; Ctrl-C stops\n", r->tail,
	       (unsigned long long)r->tail_from);
	fflush(stdout);
	repl_interrupted = 0;
	b->tail(b, r->tail, r->tail_from, &repl_interrupted);
	repl_interrupted = 0;
	printf("\n(tail stopped)\n");
}

/* Evaluates the gathered chunk; returns 1 if it needs more lines. */
static int eval_chunk(struct repl_backend *b, const char *chunk, int interactive, int *failed)
{
	struct repl_result r = {0};
	b->eval(b, chunk, &r);
	if (r.incomplete) {
		ml_buf_free(&r.text);
		return 1;
	}
	if (!r.ok)
		*failed = 1;
	show(&r, r.ok || interactive ? stdout : stderr);
	if (r.ok && r.tail[0])
		follow(b, &r);
	ml_buf_free(&r.text);
	return 0;
}

static int run_terminal(struct repl_backend *b)
{
	char hist[4096], prompt[300];
	history_path(hist, sizeof(hist));
	using_history();
	read_history(hist);
	rl_catch_signals = 0;
	completing = b;
	rl_attempted_completion_function = complete;
	rl_completion_append_character = '\0'; /* "streams" may go on with ".count" */
	catch_sigint();
	snprintf(prompt, sizeof(prompt), "moonlog %s> ", b->where);
	printf("moonlog REPL on %s (%s). help() for help, Ctrl-D to leave.\n", b->where,
	       strcmp(b->how, "server") == 0 ? "evaluated in the running server"
					     : "log opened here: no server runs on it");
	struct ml_buf chunk = {0};
	int failed = 0;
	for (;;) {
		repl_interrupted = 0;
		char *line = readline(chunk.len ? ">> " : prompt);
		if (line == NULL && repl_interrupted) { /* Ctrl-C: drop what was typed */
			printf("^C\n");
			chunk.len = 0;
			continue;
		}
		if (line == NULL)
			break;
		if (chunk.len == 0 && line[strspn(line, " \t")] == '\0') {
			free(line);
			continue;
		}
		if (chunk.len)
			ml_buf_add(&chunk, "\n", 1);
		ml_buf_add(&chunk, line, strlen(line));
		ml_buf_add(&chunk, "", 1);
		chunk.len--;
		free(line);
		if (eval_chunk(b, chunk.data, 1, &failed))
			continue;
		add_history(chunk.data);
		chunk.len = 0;
	}
	printf("\n");
	write_history(hist);
	ml_buf_free(&chunk);
	return 0;
}

/* Not on a terminal: chunks from stdin, results on stdout, errors on stderr. */
static int run_pipe(struct repl_backend *b)
{
	struct ml_buf chunk = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int failed = 0;
	catch_sigint();
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (chunk.len == 0 && line[strspn(line, " \t")] == '\0')
			continue;
		if (chunk.len)
			ml_buf_add(&chunk, "\n", 1);
		ml_buf_add(&chunk, line, (size_t)n);
		ml_buf_add(&chunk, "", 1);
		chunk.len--;
		if (!eval_chunk(b, chunk.data, 0, &failed))
			chunk.len = 0;
	}
	if (chunk.len) { /* the input ended inside a chunk: report it as it is */
		struct repl_result r = {0};
		b->eval(b, chunk.data, &r);
		fprintf(stderr, "moonlog repl: the input ended inside an unfinished chunk: %s\n",
			r.text.len ? r.text.data : "it lacks its end");
		ml_buf_free(&r.text);
		failed = 1;
	}
	free(line);
	ml_buf_free(&chunk);
	return failed;
}

int repl_run(struct repl_backend *b, int interactive)
{
	return interactive ? run_terminal(b) : run_pipe(b);
}

int repl_eval_once(struct repl_backend *b, const char *chunk)
{
	struct repl_result r = {0};
	b->eval(b, chunk, &r);
	if (r.incomplete)
		r.ok = 0;
	show(&r, r.ok ? stdout : stderr);
	if (r.ok && r.tail[0]) {
		catch_sigint();
		follow(b, &r);
	}
	ml_buf_free(&r.text);
	return r.ok ? 0 : 1;
}
