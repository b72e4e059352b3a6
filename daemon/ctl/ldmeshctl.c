/*
 * ldmeshctl: the ldmesh command-line tool.
 *
 * Three families of verbs:
 *  - control verbs (status, conns, links, stats, top, reload, drain, check, policy
 *    check) send one line to <runtime_dir>/ctl.sock and print the daemon's
 *    answer as-is (include/ldmesh/ctl.h);
 *  - run starts a stock program under ldmesh-run (seccomp launcher, with
 *    the shim for glibc programs), starting a daemon for it when none is
 *    running;
 *  - ca init / ca issue make a CA and SVIDs (ca.c).
 *
 * Exit codes are part of the contract (DESIGN.md): 0 success, 1 usage or
 * other error (and a check that found a problem), 2 daemon unreachable, 3
 * policy check says deny.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ldmesh/common.h"
#include "ldmesh/ctl.h"
#include "ca.h"
#include "cli.h"
#include "top.h"

/* Seconds to wait for the daemon's answer (per receive). */
#define CTL_TIMEOUT_S 10
/* An answer bigger than this is a broken daemon, not a long conns list. */
#define CTL_MAX_ANSWER (64u << 20)

static const char usage_text[] =
	"usage: ldmeshctl [--runtime-dir DIR] [--json] COMMAND [ARGS]\n"
	"\n"
	"Daemon (talks to DIR/ctl.sock):\n"
	"  status                      daemon state, config, identity\n"
	"  conns                       live connections\n"
	"  links                       links to and from other daemons\n"
	"  services                    services, their endpoints and balancer state\n"
	"  stats                       golden metrics per peer identity and port\n"
	"  top                         live requests/s, success rate, p50/p99 (q quits)\n"
	"  reload                      reload config and certificates\n"
	"  drain [--timeout S]         stop accepting, let connections finish\n"
	"  check                       problems: unprotected listeners, identity, config\n"
	"                              (exit 1 when there is one)\n"
	"  policy check [--from SPIFFE_ID] --port P [--method M] [--path PATH]\n"
	"                              would this request be allowed? (exit 0 allow, 3 deny)\n"
	"\n"
	"Workloads:\n"
	"  run [--config FILE] -- CMD [ARGS...]\n"
	"                              run CMD in the mesh, starting ldmeshd if needed\n"
	"\n"
	"Kubernetes:\n"
	"  inject [FILE|-] [--image IMAGE]\n"
	"                              YAML/JSON manifests in, injected YAML out\n"
	"  webhook --listen ADDR --cert F --key F [--image IMAGE]\n"
	"                              mutating admission webhook (HTTPS, POST /inject)\n"
	"\n"
	"Certificates:\n"
	"  ca init  --dir DIR --trust-domain TD [--days N] [--force]\n"
	"  ca issue --dir DIR --id SPIFFE_ID --out OUT [--hours N]\n"
	"\n"
	"Global flags, accepted anywhere before `--`:\n"
	"  --runtime-dir DIR  default $LDMESH_RUNTIME_DIR, then " LDM_DEFAULT_RUNTIME_DIR "\n"
	"  --json             ask for JSON output\n"
	"  -h, --help         this text;  --version  print the version\n"
	"\n"
	"Exit status: 0 ok, 1 usage or error (or check found a problem), 2 daemon\n"
	"unreachable, 3 policy deny.\n";

void errorf(const char *fmt, ...)
{
	va_list ap;

	fputs("ldmeshctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A usage error: the reason, then where to read more.  Always exit 1. */
int usage_error(const char *synopsis, const char *fmt, ...)
{
	va_list ap;

	fputs("ldmeshctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (synopsis)
		fprintf(stderr, "usage: ldmeshctl %s\n", synopsis);
	fputs("Run 'ldmeshctl --help' for all commands.\n", stderr);
	return EXIT_ERROR;
}

/* ---- argument helpers ----------------------------------------------- */

/*
 * Takes --runtime-dir, --json, --help and --version out of argv wherever
 * they are, up to `--`.  For `run`, scanning also stops at the command's
 * first word, so `ldmeshctl run curl --json URL` leaves curl's flags alone.
 */
static int cli_parse_globals(struct cli *c, int argc, char **argv)
{
	const char *verb = NULL;
	int stop = 0;

	c->argv = calloc((size_t)argc + 1, sizeof(*c->argv));
	if (!c->argv) {
		errorf("out of memory");
		return -ENOMEM;
	}
	c->argc = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (stop) {
			c->argv[c->argc++] = argv[i];
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			c->json = 1;
		} else if (strcmp(a, "--runtime-dir") == 0) {
			if (i + 1 >= argc) {
				usage_error(NULL, "--runtime-dir needs a directory");
				return -EINVAL;
			}
			c->runtime_dir = argv[++i];
		} else if (strncmp(a, "--runtime-dir=", 14) == 0) {
			c->runtime_dir = a + 14;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			c->help = 1;
		} else if (strcmp(a, "--version") == 0) {
			c->version = 1;
		} else {
			c->argv[c->argc++] = argv[i];
			if (strcmp(a, "--") == 0) {
				stop = 1;
			} else if (verb && strcmp(verb, "run") == 0) {
				if (strcmp(a, "--config") == 0 && i + 1 < argc)
					c->argv[c->argc++] = argv[++i];
				else if (a[0] != '-')
					stop = 1;
			} else if (!verb && a[0] != '-') {
				verb = a;
			}
		}
	}
	if (c->runtime_dir && c->runtime_dir[0] == '\0') {
		usage_error(NULL, "--runtime-dir must not be empty");
		return -EINVAL;
	}
	if (!c->runtime_dir) {
		const char *env = getenv("LDMESH_RUNTIME_DIR");

		c->runtime_dir = env && *env ? env : LDM_DEFAULT_RUNTIME_DIR;
	}
	return 0;
}

struct opt {
	const char *name; /* "--timeout" */
	const char **value; /* NULL for a flag without a value */
	int *flag; /* set to 1 when a value-less flag is present */
};

/*
 * Parses a verb's own options ("--name VALUE", "--name=VALUE", "--flag").
 * No positional arguments are accepted.  Prints the usage error itself.
 */
static int parse_opts(const char *synopsis, int argc, char **argv, const struct opt *opts,
		      size_t n_opts)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct opt *o = NULL;
		const char *eq;
		size_t nlen;

		if (strcmp(a, "--") == 0) {
			if (i + 1 >= argc)
				break;
			usage_error(synopsis, "unexpected argument '%s'", argv[i + 1]);
			return -EINVAL;
		}
		if (a[0] != '-') {
			usage_error(synopsis, "unexpected argument '%s'", a);
			return -EINVAL;
		}
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		for (size_t k = 0; k < n_opts; k++) {
			if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, a, nlen) == 0) {
				o = &opts[k];
				break;
			}
		}
		if (!o) {
			usage_error(synopsis, "unknown option '%.*s'", (int)nlen, a);
			return -EINVAL;
		}
		if (!o->value) {
			if (eq) {
				usage_error(synopsis, "%s takes no value", o->name);
				return -EINVAL;
			}
			*o->flag = 1;
		} else if (eq) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			usage_error(synopsis, "%s needs a value", o->name);
			return -EINVAL;
		}
	}
	return 0;
}

/* A decimal integer in [min, max], nothing else: "10s" or "" are errors. */
static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int require(const char *synopsis, const char *value, const char *name)
{
	if (value)
		return 0;
	usage_error(synopsis, "%s is required", name);
	return -EINVAL;
}

/* Prints s as a JSON string literal. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* ---- control socket ------------------------------------------------- */

struct answer {
	char *data; /* owned */
	size_t len;
};

static int make_sun(struct sockaddr_un *sun, const char *dir, const char *name)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Connects a Unix stream socket to dir/name with send and receive timeouts
 * of timeout_s.  Returns the fd (owned by the caller) or -errno.
 */
int unix_connect(const char *dir, const char *name, int timeout_s)
{
	struct sockaddr_un sun;
	struct timeval tv = {.tv_sec = timeout_s};
	int fd, rc;

	rc = make_sun(&sun, dir, name);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (timeout_s > 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
			      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)) {
		rc = -errno;
		goto err_close;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		rc = -errno;
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return rc;
}

static void report_unreachable(const char *dir, int err)
{
	const char *hint = "";

	if (err == -ENOENT || err == -ECONNREFUSED)
		hint = " (is ldmeshd running? see --runtime-dir and LDMESH_RUNTIME_DIR)";
	else if (err == -EACCES || err == -EPERM)
		hint = " (ctl.sock is mode 0600: run as root or as the daemon's user)";
	errorf("cannot reach ldmeshd at %s/%s: %s%s", dir, LDM_CTL_SOCK, strerror(-err), hint);
}

/*
 * Sends "LDMCTL1 <format> <words...>\n" and reads the answer until EOF.
 * Words must be single tokens: the protocol separates them by spaces.
 * Returns EXIT_OK with *ans filled, or an exit code after printing why.
 */
static int ctl_exchange(const struct cli *c, const char *const *words, size_t n, int timeout_s,
			struct answer *ans)
{
	char line[LDM_CTL_MAX_REQUEST + 2];
	size_t len, off = 0, cap = 0;
	char *buf = NULL;
	int fd, rc;

	len = (size_t)snprintf(line, sizeof(line), "%s %s", LDM_CTL_PREFIX,
			       c->json ? "json" : "text");
	for (size_t i = 0; i < n; i++) {
		for (const char *s = words[i]; *s; s++) {
			if ((unsigned char)*s <= ' ' || *s == 0x7f) {
				errorf("argument '%s' contains a space or control character",
				       words[i]);
				return EXIT_ERROR;
			}
		}
		if (len + 1 + strlen(words[i]) + 1 > LDM_CTL_MAX_REQUEST) {
			errorf("request longer than %d bytes", LDM_CTL_MAX_REQUEST);
			return EXIT_ERROR;
		}
		len += (size_t)snprintf(line + len, sizeof(line) - len, " %s", words[i]);
	}
	line[len++] = '\n';

	fd = unix_connect(c->runtime_dir, LDM_CTL_SOCK, timeout_s);
	if (fd < 0) {
		report_unreachable(c->runtime_dir, fd);
		return EXIT_UNREACHABLE;
	}
	while (off < len) {
		ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			errorf("cannot send to %s/%s: %s", c->runtime_dir, LDM_CTL_SOCK,
			       strerror(errno));
			rc = EXIT_UNREACHABLE;
			goto err_close;
		}
		off += (size_t)w;
	}

	off = 0;
	for (;;) {
		ssize_t r;

		if (cap - off < 4096) {
			char *nb;

			cap = cap ? cap * 2 : 16384;
			if (cap > CTL_MAX_ANSWER + 1)
				cap = CTL_MAX_ANSWER + 1;
			if (cap - off == 0) {
				errorf("answer from ldmeshd is larger than %u bytes",
				       CTL_MAX_ANSWER);
				rc = EXIT_ERROR;
				goto err_free;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				errorf("out of memory");
				rc = EXIT_ERROR;
				goto err_free;
			}
			buf = nb;
		}
		r = recv(fd, buf + off, cap - off, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			errorf("ldmeshd at %s/%s did not answer within %d s", c->runtime_dir,
			       LDM_CTL_SOCK, timeout_s);
			rc = EXIT_UNREACHABLE;
			goto err_free;
		}
		if (r < 0) {
			errorf("lost the connection to ldmeshd at %s/%s: %s", c->runtime_dir,
			       LDM_CTL_SOCK, strerror(errno));
			rc = EXIT_UNREACHABLE;
			goto err_free;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	ans->data = buf;
	ans->len = off;
	return EXIT_OK;

err_free:
	free(buf);
err_close:
	close(fd);
	return rc;
}

/*
 * Runs one control request.  On "OK\n" the body goes to stdout untouched
 * and, if body_out is given, is also handed back (owned by the caller);
 * on "ERR msg" msg goes to stderr and the result is EXIT_ERROR.
 */
static int ctl_call(const struct cli *c, const char *const *words, size_t n, int timeout_s,
		    struct answer *body_out)
{
	struct answer ans = {0};
	int rc = ctl_exchange(c, words, n, timeout_s, &ans);

	if (rc != EXIT_OK)
		return rc;
	if (ans.len >= 3 && memcmp(ans.data, "OK\n", 3) == 0) {
		size_t blen = ans.len - 3;

		if (blen && fwrite(ans.data + 3, 1, blen, stdout) != blen)
			rc = EXIT_ERROR;
		if (fflush(stdout) != 0)
			rc = EXIT_ERROR;
		if (rc != EXIT_OK)
			errorf("cannot write the answer: %s", strerror(errno));
		if (body_out) {
			memmove(ans.data, ans.data + 3, blen);
			body_out->data = ans.data;
			body_out->len = blen;
			return rc;
		}
	} else if (ans.len >= 4 && memcmp(ans.data, "ERR ", 4) == 0) {
		const char *msg = ans.data + 4;
		const char *nl = memchr(msg, '\n', ans.len - 4);
		size_t mlen = nl ? (size_t)(nl - msg) : ans.len - 4;

		errorf("%.*s", (int)mlen, msg);
		rc = EXIT_ERROR;
	} else {
		errorf("ldmeshd sent a malformed answer (%zu bytes, no OK/ERR)", ans.len);
		rc = EXIT_ERROR;
	}
	free(ans.data);
	return rc;
}

/* The plain verbs: no arguments of their own. */
static int cmd_plain(const struct cli *c, const char *verb)
{
	char synopsis[64];
	const char *words[] = {verb};

	snprintf(synopsis, sizeof(synopsis), "%s", verb);
	if (parse_opts(synopsis, c->argc - 1, c->argv + 1, NULL, 0))
		return EXIT_ERROR;
	return ctl_call(c, words, 1, CTL_TIMEOUT_S, NULL);
}

/*
 * The problems a `check` answer counts, from its first bytes (ctl.h): text
 * "problems N", JSON {"ok":true|false.  Returns N (0 or 1 for JSON) or -1
 * for an answer that says neither.
 */
static int check_verdict(const char *body, size_t len)
{
	static const char text[] = "problems", t[] = "{\"ok\":true", f[] = "{\"ok\":false";
	size_t i = sizeof(text) - 1;
	long n = 0;

	if (len >= sizeof(t) - 1 && memcmp(body, t, sizeof(t) - 1) == 0)
		return 0;
	if (len >= sizeof(f) - 1 && memcmp(body, f, sizeof(f) - 1) == 0)
		return 1;
	if (len < i || memcmp(body, text, i) != 0)
		return -1;
	while (i < len && body[i] == ' ')
		i++;
	if (i >= len || body[i] < '0' || body[i] > '9')
		return -1;
	for (; i < len && body[i] >= '0' && body[i] <= '9' && n < 1000000; i++)
		n = n * 10 + (body[i] - '0');
	return (int)n;
}

/* check: the daemon's answer as is; exit 1 when it names a problem. */
static int cmd_check(const struct cli *c)
{
	const char *words[] = {"check"};
	struct answer body = {0};
	int rc, n;

	if (parse_opts("check", c->argc - 1, c->argv + 1, NULL, 0))
		return EXIT_ERROR;
	rc = ctl_call(c, words, 1, CTL_TIMEOUT_S, &body);
	if (rc != EXIT_OK)
		return rc;
	n = check_verdict(body.data, body.len);
	free(body.data);
	if (n < 0) {
		errorf("ldmeshd's answer to check does not say whether it found problems");
		return EXIT_ERROR;
	}
	return n ? EXIT_PROBLEM : EXIT_OK;
}

/* One `stats raw` snapshot for top, quietly (nothing on stdout). */
static int top_fetch(void *ctx, char **body)
{
	const struct cli *c = ctx;
	const char *words[] = {"stats", "raw"};
	struct cli raw = *c;
	struct answer ans = {0};
	int rc;

	raw.json = 0;
	rc = ctl_exchange(&raw, words, 2, CTL_TIMEOUT_S, &ans);
	if (rc != EXIT_OK)
		return rc;
	if (ans.len < 3 || memcmp(ans.data, "OK\n", 3) != 0) {
		errorf("ldmeshd refused `stats raw` (%.*s)", (int)(ans.len > 80 ? 80 : ans.len),
		       ans.data ? ans.data : "");
		free(ans.data);
		return EXIT_ERROR;
	}
	*body = malloc(ans.len - 3 + 1);
	if (!*body) {
		free(ans.data);
		errorf("out of memory");
		return EXIT_ERROR;
	}
	memcpy(*body, ans.data + 3, ans.len - 3);
	(*body)[ans.len - 3] = '\0';
	free(ans.data);
	return EXIT_OK;
}

static int cmd_top(const struct cli *c)
{
	if (parse_opts("top", c->argc - 1, c->argv + 1, NULL, 0))
		return EXIT_ERROR;
	if (c->json)
		return usage_error("top", "top is a terminal view; use `stats --json` for data");
	return top_run(top_fetch, (void *)c, c->runtime_dir);
}

static int cmd_drain(const struct cli *c)
{
	static const char synopsis[] = "drain [--timeout S]";
	const char *timeout = NULL;
	const struct opt opts[] = {{"--timeout", &timeout, NULL}};
	const char *words[2] = {"drain", NULL};
	long secs = 0;

	if (parse_opts(synopsis, c->argc - 1, c->argv + 1, opts, ARRAY_SIZE(opts)))
		return EXIT_ERROR;
	if (timeout) {
		if (parse_int(timeout, 0, 86400, &secs))
			return usage_error(synopsis,
					   "--timeout wants whole seconds from 0 to 86400, "
					   "not '%s'",
					   timeout);
		words[1] = timeout;
	}
	/* The daemon may answer only once drained: wait past its deadline. */
	return ctl_call(c, words, timeout ? 2 : 1, CTL_TIMEOUT_S + (int)secs, NULL);
}

/* HTTP token characters (RFC 9110), the only ones a method may hold. */
static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
		    !(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z'))
			return 0;
	}
	return 1;
}

/*
 * Finds "decision" in a text or JSON body and reads the word after it, so
 * "decision allow", "decision: deny" and "\"decision\": \"allow\"" all work.
 */
static const char *find_decision(const char *body, size_t len)
{
	static const char key[] = "decision";
	const char *end = body + len;

	for (const char *p = body; p + sizeof(key) - 1 <= end; p++) {
		const char *q;

		if (memcmp(p, key, sizeof(key) - 1) != 0)
			continue;
		q = p + sizeof(key) - 1;
		while (q < end && strchr(" \t\":=", *q))
			q++;
		if (end - q >= 5 && memcmp(q, "allow", 5) == 0)
			return "allow";
		if (end - q >= 4 && memcmp(q, "deny", 4) == 0)
			return "deny";
	}
	return NULL;
}

static int cmd_policy(const struct cli *c)
{
	static const char synopsis[] =
		"policy check [--from SPIFFE_ID] --port P [--method M] [--path PATH]";
	const char *from = NULL, *port = NULL, *method = NULL, *path = NULL;
	const struct opt opts[] = {
		{"--from", &from, NULL},
		{"--port", &port, NULL},
		{"--method", &method, NULL},
		{"--path", &path, NULL},
	};
	const char *words[5];
	struct answer body = {0};
	const char *decision;
	char err[512];
	long p;
	int rc;

	if (c->argc < 2)
		return usage_error(synopsis, "policy needs a subcommand");
	if (strcmp(c->argv[1], "check") != 0)
		return usage_error(synopsis, "unknown policy subcommand '%s'", c->argv[1]);
	if (parse_opts(synopsis, c->argc - 2, c->argv + 2, opts, ARRAY_SIZE(opts)) ||
	    require(synopsis, port, "--port"))
		return EXIT_ERROR;
	if (parse_int(port, 1, 65535, &p))
		return usage_error(synopsis, "--port wants 1-65535, not '%s'", port);
	/* Absent --from means a caller without identity (plaintext). */
	if (from && spiffe_id_parse(from, NULL, err, sizeof(err)))
		return usage_error(synopsis, "--from: %s", err);
	if (method && !is_token(method))
		return usage_error(synopsis, "--method '%s' is not an HTTP method", method);
	if (path && (path[0] != '/' || strpbrk(path, " \t\r\n")))
		return usage_error(synopsis, "--path must start with '/' and hold no spaces");
	if (path && !method)
		method = "GET"; /* a path alone means a plain request */

	words[0] = "policy-check";
	words[1] = from ? from : "-";
	words[2] = port;
	words[3] = method ? method : "-";
	words[4] = path ? path : "-";
	rc = ctl_call(c, words, ARRAY_SIZE(words), CTL_TIMEOUT_S, &body);
	if (rc != EXIT_OK)
		return rc;
	decision = find_decision(body.data, body.len);
	free(body.data);
	if (!decision) {
		errorf("ldmeshd's answer names no decision (allow or deny)");
		return EXIT_ERROR;
	}
	return strcmp(decision, "allow") == 0 ? EXIT_OK : EXIT_DENY;
}

/* ---- ca ------------------------------------------------------------- */

struct file_entry {
	const char *key; /* JSON member name */
	const char *name; /* file name inside the directory */
};

static const struct file_entry ca_init_files[] = {
	{"cert", "ca.pem"},
	{"key", "ca-key.pem"},
};

static const struct file_entry ca_issue_files[] = {
	{"cert", "svid.pem"},
	{"key", "svid-key.pem"},
	{"bundle", "bundle.pem"},
};

/*
 * Reports what a ca verb wrote: one line of text ("<label> <value>: wrote
 * ..."), or one JSON object {"<what>": value, "cert": path, ...,
 * "not_after": "..."}.
 */
static void print_files(int json, const char *label, const char *what, const char *value,
			const char *dir, const struct file_entry *files, size_t n,
			const char *not_after)
{
	char path[PATH_MAX * 2];

	if (!json) {
		printf("%s %s: wrote", label, value);
		for (size_t i = 0; i < n; i++)
			printf("%s %s/%s", i ? (i + 1 == n ? " and" : ",") : "", dir,
			       files[i].name);
		printf("; valid until %s\n", not_after);
		return;
	}
	printf("{\"%s\":", what);
	json_str(stdout, value);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
		printf(",\"%s\":", files[i].key);
		json_str(stdout, path);
	}
	printf(",\"not_after\":\"%s\"}\n", not_after);
}

static int cmd_ca_init(const struct cli *c)
{
	static const char synopsis[] = "ca init --dir DIR --trust-domain TD [--days N] [--force]";
	const char *dir = NULL, *td = NULL, *days = NULL;
	int force = 0;
	const struct opt opts[] = {
		{"--dir", &dir, NULL},
		{"--trust-domain", &td, NULL},
		{"--days", &days, NULL},
		{"--force", NULL, &force},
	};
	struct ca_init_opts o;
	char err[1024], not_after[64] = "";
	long d = 365;
	int rc;

	if (parse_opts(synopsis, c->argc - 2, c->argv + 2, opts, ARRAY_SIZE(opts)) ||
	    require(synopsis, dir, "--dir") || require(synopsis, td, "--trust-domain"))
		return EXIT_ERROR;
	if (days && parse_int(days, 1, CA_DAYS_MAX, &d))
		return usage_error(synopsis, "--days wants 1-%d, not '%s'", CA_DAYS_MAX, days);
	o = (struct ca_init_opts){.dir = dir, .trust_domain = td, .days = (int)d, .force = force};
	rc = ca_init(&o, not_after, sizeof(not_after), err, sizeof(err));
	if (rc) {
		errorf("ca init: %s", err);
		return EXIT_ERROR;
	}
	print_files(c->json, "CA for", "trust_domain", td, dir, ca_init_files,
		    ARRAY_SIZE(ca_init_files), not_after);
	return EXIT_OK;
}

static int cmd_ca_issue(const struct cli *c)
{
	static const char synopsis[] = "ca issue --dir DIR --id SPIFFE_ID --out OUT [--hours N]";
	const char *dir = NULL, *id = NULL, *out = NULL, *hours = NULL;
	const struct opt opts[] = {
		{"--dir", &dir, NULL},
		{"--id", &id, NULL},
		{"--out", &out, NULL},
		{"--hours", &hours, NULL},
	};
	struct ca_issue_opts o;
	char err[1024], not_after[64] = "";
	long h = 24;
	int rc;

	if (parse_opts(synopsis, c->argc - 2, c->argv + 2, opts, ARRAY_SIZE(opts)) ||
	    require(synopsis, dir, "--dir") || require(synopsis, id, "--id") ||
	    require(synopsis, out, "--out"))
		return EXIT_ERROR;
	if (hours && parse_int(hours, 1, CA_HOURS_MAX, &h))
		return usage_error(synopsis, "--hours wants 1-%d, not '%s'", CA_HOURS_MAX, hours);
	o = (struct ca_issue_opts){.dir = dir, .id = id, .out = out, .hours = (int)h};
	rc = ca_issue(&o, not_after, sizeof(not_after), err, sizeof(err));
	if (rc) {
		errorf("ca issue: %s", err);
		return EXIT_ERROR;
	}
	print_files(c->json, "SVID", "id", id, out, ca_issue_files, ARRAY_SIZE(ca_issue_files),
		    not_after);
	return EXIT_OK;
}

static int cmd_ca(const struct cli *c)
{
	if (c->argc >= 2 && strcmp(c->argv[1], "init") == 0)
		return cmd_ca_init(c);
	if (c->argc >= 2 && strcmp(c->argv[1], "issue") == 0)
		return cmd_ca_issue(c);
	if (c->argc < 2)
		return usage_error("ca init|issue ...", "ca needs a subcommand");
	return usage_error("ca init|issue ...", "unknown ca subcommand '%s'", c->argv[1]);
}

/* ---- main ----------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct cli c = {0};
	const char *verb;
	int rc;

	if (cli_parse_globals(&c, argc, argv)) {
		rc = EXIT_ERROR;
		goto out;
	}
	if (c.help) {
		fputs(usage_text, stdout);
		rc = EXIT_OK;
		goto out;
	}
	if (c.version) {
		printf("ldmeshctl %s\n", LDMESH_VERSION);
		rc = EXIT_OK;
		goto out;
	}
	if (c.argc == 0) {
		fputs(usage_text, stderr);
		rc = EXIT_ERROR;
		goto out;
	}

	verb = c.argv[0];
	if (strcmp(verb, "status") == 0 || strcmp(verb, "conns") == 0 ||
	    strcmp(verb, "links") == 0 || strcmp(verb, "services") == 0 ||
	    strcmp(verb, "stats") == 0 || strcmp(verb, "reload") == 0)
		rc = cmd_plain(&c, verb);
	else if (strcmp(verb, "check") == 0)
		rc = cmd_check(&c);
	else if (strcmp(verb, "top") == 0)
		rc = cmd_top(&c);
	else if (strcmp(verb, "drain") == 0)
		rc = cmd_drain(&c);
	else if (strcmp(verb, "policy") == 0)
		rc = cmd_policy(&c);
	else if (strcmp(verb, "ca") == 0)
		rc = cmd_ca(&c);
	else if (strcmp(verb, "run") == 0)
		rc = cmd_run(&c);
	else if (strcmp(verb, "inject") == 0)
		rc = cmd_inject(&c);
	else if (strcmp(verb, "webhook") == 0)
		rc = cmd_webhook(&c);
	else if (strcmp(verb, "help") == 0)
		rc = (fputs(usage_text, stdout), EXIT_OK);
	else
		rc = usage_error(NULL, "unknown command '%s'", verb);
out:
	free(c.argv);
	return rc;
}
