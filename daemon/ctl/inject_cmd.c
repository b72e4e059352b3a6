/*
 * `ldmeshctl inject [FILE|-] [--image IMAGE]`: manifests in (YAML or
 * JSON), injected YAML out (inject.h).  stdout gets the manifests and
 * nothing else; notes and errors go to stderr.  Malformed input exits 1
 * with one line naming the line, and nothing on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "inject.h"
#include "kube_yaml.h"

static const char synopsis[] = "inject [FILE|-] [--image IMAGE]";

/* The whole of f, at most KUBE_MAX_INPUT bytes; NULL with errno set. */
static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap), *nb;

	if (!buf)
		return NULL;
	for (;;) {
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (n < cap) {
			if (ferror(f)) {
				free(buf);
				errno = EIO;
				return NULL;
			}
			break;
		}
		if (cap >= KUBE_MAX_INPUT) {
			free(buf);
			errno = EFBIG;
			return NULL;
		}
		cap *= 2;
		nb = realloc(buf, cap);
		if (!nb) {
			free(buf);
			return NULL;
		}
		buf = nb;
	}
	*len = n;
	return buf;
}

int cmd_inject(const struct cli *c)
{
	struct inject_opts opts = {.image = INJECT_DEFAULT_IMAGE};
	const char *file = NULL, *name;
	json_t *docs = NULL, *notes = NULL, *doc;
	char err[512], *in = NULL, *out = NULL;
	size_t in_len = 0, out_len = 0, i;
	int rc = EXIT_ERROR;
	FILE *f;

	for (int k = 1; k < c->argc; k++) {
		const char *a = c->argv[k];

		if (!strcmp(a, "--image") && k + 1 < c->argc)
			opts.image = c->argv[++k];
		else if (!strncmp(a, "--image=", 8))
			opts.image = a + 8;
		else if (!strcmp(a, "--image"))
			return usage_error(synopsis, "--image needs an image reference");
		else if ((a[0] != '-' || !strcmp(a, "-")) && !file)
			file = a;
		else
			return usage_error(synopsis, "unexpected argument '%s'", a);
	}
	if (!*opts.image || strpbrk(opts.image, " \t\r\n"))
		return usage_error(synopsis, "--image '%s' is not an image reference", opts.image);
	name = !file || !strcmp(file, "-") ? "<stdin>" : file;
	f = !file || !strcmp(file, "-") ? stdin : fopen(file, "r");
	if (!f) {
		errorf("inject: %s: %s", file, strerror(errno));
		return EXIT_ERROR;
	}
	in = read_all(f, &in_len);
	if (f != stdin)
		fclose(f);
	if (!in) {
		errorf("inject: %s: %s", name,
		       errno == EFBIG ? "larger than 64 MiB" : strerror(errno));
		return EXIT_ERROR;
	}
	if (kube_parse(in, in_len, &docs, err, sizeof(err))) {
		errorf("inject: %s: %s", name, err);
		goto out;
	}
	notes = json_array();
	if (!notes) {
		errorf("inject: out of memory");
		goto out;
	}
	json_array_foreach(docs, i, doc)
	{
		int r = json_is_object(doc) ? inject_object(doc, &opts, notes, err, sizeof(err))
					    : -EINVAL;

		if (!json_is_object(doc))
			snprintf(err, sizeof(err), "not a Kubernetes object (a mapping)");
		if (r < 0) {
			errorf("inject: %s: document %zu: %s", name, i + 1,
			       r == -ENOMEM ? "out of memory" : err);
			goto out;
		}
	}
	if (kube_emit(docs, &out, &out_len, err, sizeof(err))) {
		errorf("inject: %s", err);
		goto out;
	}
	json_array_foreach(notes, i, doc) errorf("inject: note: %s", json_string_value(doc));
	if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) {
		errorf("inject: writing stdout: %s", strerror(errno));
		goto out;
	}
	rc = EXIT_OK;
out:
	free(out);
	free(in);
	json_decref(notes);
	json_decref(docs);
	return rc;
}
