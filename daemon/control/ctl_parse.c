/*
 * Control-socket request parsing.  See ctl_parse.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ldmesh/common.h"
#include "ldmesh/ctl.h"
#include "control/ctl_parse.h"

enum ctl_frame ctl_frame(const char *buf, size_t len, size_t max, size_t *line_len)
{
	const char *nl = memchr(buf, '\n', len);

	if (nl) {
		/* A NUL would cut the line short of what the client sent. */
		if (memchr(buf, '\0', (size_t)(nl - buf))) {
			return CTL_FRAME_NUL;
		}
		*line_len = (size_t)(nl - buf);
		return CTL_FRAME_LINE;
	}
	return len >= max ? CTL_FRAME_TOO_LONG : CTL_FRAME_MORE;
}

int ctl_parse_request(char *line, struct ctl_request *req)
{
	char *save = NULL, *w;

	req->n = 0;
	req->json = 0;
	for (w = strtok_r(line, " \t", &save); w && req->n < (int)ARRAY_SIZE(req->words);
	     w = strtok_r(NULL, " \t", &save)) {
		req->words[req->n++] = w;
	}
	if (req->n < 3 || strcmp(req->words[0], LDM_CTL_PREFIX) ||
	    (strcmp(req->words[1], "text") && strcmp(req->words[1], "json"))) {
		return -EINVAL;
	}
	req->json = !strcmp(req->words[1], "json");
	return 0;
}

int ctl_drain_ms(const char *arg, int default_ms)
{
	/* strtol, not atoi: a huge number must not overflow into a negative
	 * or tiny timeout. */
	long secs = arg ? strtol(arg, NULL, 10) : 0;

	if (secs <= 0) {
		return default_ms;
	}
	if (secs > CTL_DRAIN_MAX_S) {
		secs = CTL_DRAIN_MAX_S;
	}
	return (int)secs * 1000;
}
