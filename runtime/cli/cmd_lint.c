/*
 * cmd_lint.c - `moonlog lint FILE...` and `moonlog new KIND NAME`: commands
 * written in Lua (lua/moonlog/tools/), run under lua5.4 with this moonlog's
 * modules (lua_run.c).
 */
#include <stdlib.h>

#include "cli/cli.h"

/* s as a Lua string literal: every byte but [A-Za-z0-9/._-] as a \ddd escape. */
static void lua_literal(struct ml_buf *b, const char *s)
{
	ml_buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '/' || c == '.' || c == '_' || c == '-')
			ml_buf_add(b, s, 1);
		else
			ml_buf_addf(b, "\\%03u", c);
	}
	ml_buf_add(b, "\"", 1);
}

/* Runs require(module).main({argv[1], ...}) and exits with what it returns. */
static int run_tool(const char *cmd, const char *module, int argc, char **argv)
{
	struct ml_buf chunk = {0};
	ml_buf_addf(&chunk, "os.exit(require('%s').main({", module);
	for (int i = 1; i < argc; i++) {
		lua_literal(&chunk, argv[i]);
		ml_buf_add(&chunk, ",", 1);
	}
	ml_buf_add(&chunk, "}))", 4); /* with its NUL */
	char *args[] = {"-e", chunk.data};
	int rc = cli_exec_lua(cmd, args, 2);
	ml_buf_free(&chunk);
	return rc;
}

int cmd_lint(int argc, char **argv)
{
	return run_tool("lint", "moonlog.tools.lint", argc, argv);
}

int cmd_new(int argc, char **argv)
{
	return run_tool("new", "moonlog.tools.new", argc, argv);
}
