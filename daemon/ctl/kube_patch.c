/*
 * JSON Patch generation (kube_patch.h).  Paths are JSON Pointers (RFC
 * 6901): '~' is written "~0" and '/' "~1", which annotation keys such as
 * "ldmesh.io/inject" need.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_patch.h"

/* path + "/" + the escaped token, malloc'd. */
static char *pointer_join(const char *path, const char *token)
{
	size_t n = strlen(path), extra = 0;
	char *out, *w;

	for (const char *p = token; *p; p++)
		extra += *p == '~' || *p == '/';
	out = malloc(n + 1 + strlen(token) + extra + 1);
	if (!out)
		return NULL;
	memcpy(out, path, n);
	w = out + n;
	*w++ = '/';
	for (const char *p = token; *p; p++) {
		if (*p == '~' || *p == '/') {
			*w++ = '~';
			*w++ = *p == '~' ? '0' : '1';
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
	return out;
}

static int op(json_t *ops, const char *name, const char *path, const json_t *value)
{
	json_t *o = value ? json_pack("{s:s, s:s, s:O}", "op", name, "path", path, "value", value)
			  : json_pack("{s:s, s:s}", "op", name, "path", path);

	return !o || json_array_append_new(ops, o) ? -ENOMEM : 0;
}

static int diff(json_t *ops, const char *path, const json_t *a, const json_t *b)
{
	int rc = 0;

	if (json_equal((json_t *)a, (json_t *)b))
		return 0;
	if (json_is_object(a) && json_is_object(b)) {
		const char *k;
		json_t *v;

		json_object_foreach((json_t *)a, k, v)
		{
			char *p;

			if (json_object_get(b, k))
				continue;
			if (!(p = pointer_join(path, k)))
				return -ENOMEM;
			rc = op(ops, "remove", p, NULL);
			free(p);
			if (rc)
				return rc;
		}
		json_object_foreach((json_t *)b, k, v)
		{
			const json_t *old = json_object_get(a, k);
			char *p = pointer_join(path, k);

			if (!p)
				return -ENOMEM;
			rc = old ? diff(ops, p, old, v) : op(ops, "add", p, v);
			free(p);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (json_is_array(a) && json_is_array(b) && json_array_size(a) == json_array_size(b)) {
		for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
			char idx[24], *p;

			snprintf(idx, sizeof(idx), "%zu", i);
			if (!(p = pointer_join(path, idx)))
				return -ENOMEM;
			rc = diff(ops, p, json_array_get(a, i), json_array_get(b, i));
			free(p);
		}
		return rc;
	}
	return op(ops, "replace", path, b);
}

json_t *kube_patch_diff(const json_t *from, const json_t *to)
{
	json_t *ops = json_array();

	if (ops && diff(ops, "", from, to)) {
		json_decref(ops);
		return NULL;
	}
	return ops;
}
