/*
 * cmd_repl.c - `moonlog repl` and `moonlog eval`: a Lua prompt into the log and
 * the running scripts.
 *
 * With a server running on the data folder (its admin socket exists and
 * answers), chunks are evaluated in the server; with --connect, in the server
 * at that address; otherwise the log is opened here.
 */
#include <getopt.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/repl.h"

static const char repl_help[] =
    "usage: moonlog repl [--data DIR | --connect PATH] [--scripts DIR]\n"
    "\n"
    "A Lua prompt into the log and the running scripts. With a server running on\n"
    "DIR, chunks are evaluated in the server (through DIR/moonlog.sock); with\n"
    "--connect PATH, in the server whose admin socket is PATH (a server evaluates\n"
    "Lua only for its admin socket, never over TCP); otherwise the log in DIR is\n"
    "opened here.\n"
    "Type help() at the prompt. Not on a terminal, chunks are read from standard\n"
    "input and results printed without prompts.\n"
    "\n"
    "  --data DIR      the data folder (default ./moonlog-data)\n"
    "  --connect PATH  a server's admin socket (DATA/moonlog.sock)\n"
    "  --scripts DIR   the scripts to load when the log is opened here\n";

static const char eval_help[] =
    "usage: moonlog eval [--data DIR | --connect PATH] 'LUA CHUNK'\n"
    "\n"
    "Evaluates one chunk the way the REPL does, prints its value, and exits with\n"
    "status 1 if it failed.\n";

struct repl_args {
	const char *dir, *connect, *scripts, *chunk;
};

static int parse(const char *cmd, int argc, char **argv, struct repl_args *a, const char *help)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"connect", required_argument, 0, 'c'},
	    {"scripts", required_argument, 0, 's'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			a->dir = optarg;
			break;
		case 'c':
			a->connect = optarg;
			break;
		case 's':
			a->scripts = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_fail(cmd, CLI_USAGE, "see moonlog %s --help", cmd);
		}
	}
	int want = strcmp(cmd, "eval") == 0;
	if (argc - optind != want)
		return cli_fail(cmd, CLI_USAGE,
				want ? "needs one Lua chunk, e.g. moonlog eval 'log.head()'"
				     : "takes no arguments besides options");
	if (want)
		a->chunk = argv[optind];
	return 0;
}

/* Is a server listening on DIR's admin socket? */
static int server_running(const char *dir, char *sock, size_t cap)
{
	snprintf(sock, cap, "%s/moonlog.sock", dir);
	struct stat st;
	if (stat(sock, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	int up = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return up;
}

static struct repl_backend *open_backend(const struct repl_args *a)
{
	char sock[4200];
	if (a->connect)
		return repl_remote_open(a->connect, a->connect);
	if (server_running(a->dir, sock, sizeof(sock)))
		return repl_remote_open(sock, a->dir);
	return repl_local_open(a->dir, a->scripts);
}

int cmd_repl(int argc, char **argv)
{
	struct repl_args a = {.dir = "./moonlog-data"};
	int rc = parse("repl", argc, argv, &a, repl_help);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	struct repl_backend *b = open_backend(&a);
	if (b == NULL)
		return CLI_REFUSED;
	rc = repl_run(b, isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
	b->close(b);
	return rc ? CLI_REFUSED : CLI_OK;
}

int cmd_eval(int argc, char **argv)
{
	struct repl_args a = {.dir = "./moonlog-data"};
	int rc = parse("eval", argc, argv, &a, eval_help);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	struct repl_backend *b = open_backend(&a);
	if (b == NULL)
		return CLI_REFUSED;
	rc = repl_eval_once(b, a.chunk);
	b->close(b);
	return rc ? CLI_REFUSED : CLI_OK;
}
