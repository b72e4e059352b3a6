/*
 * What ldmeshctl's files share: the parsed command line, exit codes, error
 * messages and the Unix connection helper.  ldmeshctl.c parses and runs
 * the control verbs; run.c is `run`; ca.c and top.c are their verbs.
 */
#ifndef LDMESH_CTL_CLI_H
#define LDMESH_CTL_CLI_H

#include "ldmesh/common.h"

enum exit_code {
	EXIT_OK = 0,
	EXIT_ERROR = 1, /* usage errors and failures the daemon reported */
	EXIT_PROBLEM = 1, /* check found a problem */
	EXIT_UNREACHABLE = 2,
	EXIT_DENY = 3,
};

struct cli {
	const char *runtime_dir; /* borrowed from argv or the environment */
	int json;
	int help;
	int version;
	int argc; /* words left once global flags are taken out */
	char **argv; /* owned array of borrowed strings, NULL-terminated */
};

/* "ldmeshctl: <message>" on stderr. */
void errorf(const char *fmt, ...) LDM_PRINTF(1, 2);
/* A usage error: the reason, then where to read more.  Returns EXIT_ERROR. */
int usage_error(const char *synopsis, const char *fmt, ...) LDM_PRINTF(2, 3);
/* A Unix stream socket connected to dir/name, with send and receive
 * timeouts of timeout_s; the fd or -errno. */
int unix_connect(const char *dir, const char *name, int timeout_s);

/* run.c: `ldmeshctl run [--config FILE] -- CMD [ARGS...]` */
int cmd_run(const struct cli *c);
/* inject_cmd.c: `ldmeshctl inject [FILE|-] [--image IMAGE]` */
int cmd_inject(const struct cli *c);
/* webhook.c: `ldmeshctl webhook --listen ADDR --cert F --key F [--image IMAGE]` */
int cmd_webhook(const struct cli *c);

#endif
