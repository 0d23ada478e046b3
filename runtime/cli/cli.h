/*
 * cli.h - what the sub-commands of the moonlog executable share.
 */
#ifndef ML_CLI_H
#define ML_CLI_H

/* Exit statuses (DESIGN.md): 0 success, 1 a refused operation, 2 a usage error. */
enum { CLI_OK = 0, CLI_REFUSED = 1, CLI_USAGE = 2 };

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the sub-command's name */
	const char *summary;
};

#endif
