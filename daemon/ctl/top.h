/*
 * `ldmeshctl top`: a live view of the golden metrics per peer identity and
 * port, refreshed every second, from the daemon's `stats raw` lines.
 */
#ifndef LDMESH_CTL_TOP_H
#define LDMESH_CTL_TOP_H

#include <stddef.h>

/*
 * Fetches one `stats raw` answer body into *body (malloc'd, NUL-terminated)
 * and returns 0, or returns an exit code after printing why.
 */
typedef int (*top_fetch_fn)(void *ctx, char **body);

/*
 * Runs until q, Q, Ctrl-C, SIGTERM or SIGHUP; `where` names the daemon in
 * the title.  Without a terminal it prints a frame a second, no escapes.
 * Returns 0 or the fetch's exit code.
 */
int top_run(top_fetch_fn fetch, void *ctx, const char *where);

#endif
