/*
 * YAML and JSON manifests to jansson trees and back (kube_yaml.h).
 *
 * The parser walks libyaml's event stream with one recursive function per
 * node.  Depth and the number of nodes (aliases included, since each alias
 * is a deep copy: the trees are mutated afterwards) are bounded, so a
 * "billion laughs" document fails with a message instead of eating memory.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "ldmesh/common.h"
#include "kube_yaml.h"

#define KY_MAX_DEPTH 200
#define KY_MAX_NODES 4000000
#define KY_MAX_ANCHORS 10000

struct ky_anchor {
	char *name; /* owned */
	json_t *node; /* owned reference */
};

struct ky_parser {
	yaml_parser_t yp;
	char *err; /* borrowed: the caller's buffer */
	size_t errlen;
	long nodes; /* created so far, copies of aliases included */
	struct ky_anchor *anchors; /* owned array */
	size_t n_anchors;
};

static int ky_fail(struct ky_parser *p, size_t line, const char *fmt, ...) LDM_PRINTF(3, 4);

static int ky_fail(struct ky_parser *p, size_t line, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(p->err, p->errlen, "line %zu: ", line + 1);
	if (n < 0 || (size_t)n >= p->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The next event, or the parser's own error with its line. */
static int ky_next(struct ky_parser *p, yaml_event_t *ev)
{
	if (yaml_parser_parse(&p->yp, ev))
		return 0;
	return ky_fail(p, p->yp.problem_mark.line, "%s%s%s",
		       p->yp.problem ? p->yp.problem : "malformed YAML", p->yp.context ? " " : "",
		       p->yp.context ? p->yp.context : "");
}

static int all_digits(const char *s, const char *set)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!strchr(set, *s))
			return 0;
	return 1;
}

/* YAML 1.2 core schema float: [-+]? ( . digits | digits [ . digits* ] ) ([eE] [-+]? digits)? */
static int is_core_float(const char *s)
{
	int mant = 0;

	if (*s == '-' || *s == '+')
		s++;
	while (isdigit((unsigned char)*s)) {
		s++;
		mant = 1;
	}
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s)) {
			s++;
			mant = 1;
		}
	}
	if (!mant)
		return 0;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

static const char *const yaml11_true[] = {"true", "True", "TRUE", "y",	"Y", "yes",
					  "Yes",  "YES",  "on",	  "On", "ON"};
static const char *const yaml11_false[] = {"false", "False", "FALSE", "n",   "N",  "no",
					   "No",    "NO",    "off",   "Off", "OFF"};

/*
 * What a plain scalar means under the core schema (and YAML 1.1's
 * booleans, as Kubernetes reads them): a new json_t, or NULL
 * for "a string" (and for a number too large, which Kubernetes would not
 * take either; it stays text).
 */
static json_t *resolve_plain(const char *s)
{
	const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
	char *end;

	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL"))
		return json_null();
	/* kubectl's reader (go-yaml v2) also takes YAML 1.1's words. */
	for (size_t i = 0; i < ARRAY_SIZE(yaml11_true); i++)
		if (!strcmp(s, yaml11_true[i]))
			return json_true();
	for (size_t i = 0; i < ARRAY_SIZE(yaml11_false); i++)
		if (!strcmp(s, yaml11_false[i]))
			return json_false();
	if (all_digits(d, "0123456789")) {
		long long v;

		errno = 0;
		v = strtoll(s, &end, 10);
		return errno ? NULL : json_integer(v);
	}
	if (!strncmp(s, "0x", 2) && all_digits(s + 2, "0123456789abcdefABCDEF")) {
		unsigned long long v;

		errno = 0;
		v = strtoull(s + 2, &end, 16);
		return errno || v > INT64_MAX ? NULL : json_integer((json_int_t)v);
	}
	if (!strncmp(s, "0o", 2) && all_digits(s + 2, "01234567")) {
		unsigned long long v;

		errno = 0;
		v = strtoull(s + 2, &end, 8);
		return errno || v > INT64_MAX ? NULL : json_integer((json_int_t)v);
	}
	if (is_core_float(s)) {
		double v;

		errno = 0;
		v = strtod(s, &end);
		return errno ? NULL : json_real(v);
	}
	return NULL;
}

static int ky_count(struct ky_parser *p, size_t line, long n)
{
	p->nodes += n;
	if (p->nodes > KY_MAX_NODES)
		return ky_fail(p, line, "more than %d nodes (aliases included)", KY_MAX_NODES);
	return 0;
}

static long tree_size(const json_t *v)
{
	long n = 1;
	const char *k;
	json_t *c;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c) n += tree_size(c);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c) n += tree_size(c);
	}
	return n;
}

static int ky_anchor(struct ky_parser *p, const yaml_char_t *name, json_t *node, size_t line)
{
	struct ky_anchor *a;

	if (!name)
		return 0;
	if (p->n_anchors >= KY_MAX_ANCHORS)
		return ky_fail(p, line, "more than %d anchors", KY_MAX_ANCHORS);
	a = realloc(p->anchors, (p->n_anchors + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	p->anchors = a;
	a[p->n_anchors].name = strdup((const char *)name);
	if (!a[p->n_anchors].name)
		return -ENOMEM;
	a[p->n_anchors].node = json_incref(node);
	p->n_anchors++;
	return 0;
}

static int ky_node(struct ky_parser *p, yaml_event_t *ev, int depth, json_t **out);

/* The nodes of a sequence, after its start event, up to its end event. */
static int ky_sequence(struct ky_parser *p, json_t *arr, int depth)
{
	for (;;) {
		yaml_event_t ev;
		json_t *item;
		int rc;

		if ((rc = ky_next(p, &ev)))
			return rc;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		rc = ky_node(p, &ev, depth + 1, &item);
		yaml_event_delete(&ev);
		if (rc)
			return rc;
		if (json_array_append_new(arr, item))
			return -ENOMEM;
	}
}

/*
 * `<<: *base` (or a list of them) merges keys the mapping does not set
 * itself, whatever their order; kubectl's reader does the same.
 */
static int ky_merge(struct ky_parser *p, json_t *obj, json_t *src, size_t line)
{
	json_t *m;
	size_t i;

	if (json_is_object(src))
		return json_object_update_missing(obj, src) ? -ENOMEM : 0;
	if (!json_is_array(src))
		return ky_fail(p, line, "a merge key (<<) takes a mapping or a list of mappings");
	json_array_foreach(src, i, m)
	{
		if (!json_is_object(m))
			return ky_fail(p, line, "a merge key (<<) takes a list of mappings");
		if (json_object_update_missing(obj, m))
			return -ENOMEM;
	}
	return 0;
}

static int ky_mapping(struct ky_parser *p, json_t *obj, int depth)
{
	json_t *merges = json_array();
	int rc = -ENOMEM;
	size_t merge_line = 0;

	if (!merges)
		return -ENOMEM;
	for (;;) {
		yaml_event_t kev, vev;
		json_t *val;
		char *key;
		size_t line, klen;
		int merge;

		if ((rc = ky_next(p, &kev)))
			goto out;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			break;
		}
		line = kev.start_mark.line;
		if (kev.type != YAML_SCALAR_EVENT) {
			const char *what =
				kev.type == YAML_ALIAS_EVENT ? "an alias" : "a collection";

			yaml_event_delete(&kev);
			rc = ky_fail(p, line, "a mapping key must be a plain value, not %s", what);
			goto out;
		}
		merge = kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			!strcmp((const char *)kev.data.scalar.value, "<<");
		klen = kev.data.scalar.length;
		key = strndup((const char *)kev.data.scalar.value, klen);
		yaml_event_delete(&kev);
		if (!key) {
			rc = -ENOMEM;
			goto out;
		}
		if (strlen(key) != klen) {
			free(key);
			rc = ky_fail(p, line, "a mapping key holds a NUL character");
			goto out;
		}
		if (!merge && json_object_get(obj, key)) {
			rc = ky_fail(p, line, "duplicate key \"%.100s\"", key);
			free(key);
			goto out;
		}
		if ((rc = ky_next(p, &vev))) {
			free(key);
			goto out;
		}
		rc = ky_node(p, &vev, depth + 1, &val);
		yaml_event_delete(&vev);
		if (rc) {
			free(key);
			goto out;
		}
		if (merge) {
			merge_line = line;
			rc = json_array_append_new(merges, val) ? -ENOMEM : 0;
		} else {
			rc = json_object_set_new(obj, key, val) ? -ENOMEM : 0;
		}
		free(key);
		if (rc)
			goto out;
	}
	rc = 0;
	for (size_t i = 0; i < json_array_size(merges) && !rc; i++)
		rc = ky_merge(p, obj, json_array_get(merges, i), merge_line);
out:
	json_decref(merges);
	return rc;
}

static int ky_scalar(struct ky_parser *p, const yaml_event_t *ev, json_t **out)
{
	const char *v = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t line = ev->start_mark.line;

	if (strlen(v) != ev->data.scalar.length)
		return ky_fail(p, line, "a value holds a NUL character");
	*out = NULL;
	if (tag && !strcmp(tag, YAML_STR_TAG)) {
		*out = json_string(v);
	} else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		   (!tag || strcmp(tag, "!") != 0)) {
		*out = resolve_plain(v);
		if (!*out)
			*out = json_string(v);
	} else {
		*out = json_string(v);
	}
	if (!*out)
		return ky_fail(p, line, "a string is not valid UTF-8");
	if (tag && (!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_FLOAT_TAG) ||
		    !strcmp(tag, YAML_BOOL_TAG) || !strcmp(tag, YAML_NULL_TAG))) {
		int ok = !strcmp(tag, YAML_INT_TAG)	? json_is_integer(*out)
			 : !strcmp(tag, YAML_FLOAT_TAG) ? json_is_number(*out)
			 : !strcmp(tag, YAML_BOOL_TAG)	? json_is_boolean(*out)
							: json_is_null(*out);

		if (!ok) {
			json_decref(*out);
			*out = NULL;
			return ky_fail(p, line, "\"%.60s\" does not match its tag %s", v, tag);
		}
	}
	return 0;
}

/* One node starting with ev (owned by the caller); *out a new reference. */
static int ky_node(struct ky_parser *p, yaml_event_t *ev, int depth, json_t **out)
{
	size_t line = ev->start_mark.line;
	const yaml_char_t *anchor = NULL;
	int rc;

	*out = NULL;
	if (depth > KY_MAX_DEPTH)
		return ky_fail(p, line, "nested deeper than %d levels", KY_MAX_DEPTH);
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if ((rc = ky_count(p, line, 1)) || (rc = ky_scalar(p, ev, out)))
			return rc;
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		int seq = ev->type == YAML_SEQUENCE_START_EVENT;

		if ((rc = ky_count(p, line, 1)))
			return rc;
		if (!(*out = seq ? json_array() : json_object()))
			return -ENOMEM;
		if ((rc = seq ? ky_sequence(p, *out, depth) : ky_mapping(p, *out, depth)))
			goto err_free;
		anchor = seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
		break;
	}
	case YAML_ALIAS_EVENT: {
		const char *name = (const char *)ev->data.alias.anchor;

		for (size_t i = p->n_anchors; i-- > 0;) {
			if (strcmp(p->anchors[i].name, name) != 0)
				continue;
			if ((rc = ky_count(p, line, tree_size(p->anchors[i].node))))
				return rc;
			/* A copy: the trees are edited in place later. */
			*out = json_deep_copy(p->anchors[i].node);
			return *out ? 0 : -ENOMEM;
		}
		return ky_fail(p, line, "unknown alias *%.100s", name);
	}
	default:
		return ky_fail(p, line, "unexpected YAML event");
	}
	if ((rc = ky_anchor(p, anchor, *out, line)))
		goto err_free;
	return 0;
err_free:
	json_decref(*out);
	*out = NULL;
	return rc;
}

static int parse_yaml(const char *buf, size_t len, json_t *docs, char *err, size_t errlen)
{
	struct ky_parser p = {.err = err, .errlen = errlen};
	int rc = 0, done = 0;

	if (!yaml_parser_initialize(&p.yp)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&p.yp, (const unsigned char *)buf, len);
	while (!done && !rc) {
		yaml_event_t ev;

		if ((rc = ky_next(&p, &ev)))
			break;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT: {
			yaml_event_t root, end;
			json_t *doc = NULL;

			/* Anchors are per document (YAML 1.2, 9.1). */
			while (p.n_anchors) {
				p.n_anchors--;
				free(p.anchors[p.n_anchors].name);
				json_decref(p.anchors[p.n_anchors].node);
			}
			if ((rc = ky_next(&p, &root)))
				break;
			rc = ky_node(&p, &root, 0, &doc);
			yaml_event_delete(&root);
			if (!rc && !(rc = ky_next(&p, &end)))
				yaml_event_delete(&end);
			/* An empty document (`---` alone) is nothing to inject. */
			if (!rc && !json_is_null(doc) && json_array_append(docs, doc))
				rc = -ENOMEM;
			json_decref(doc);
			break;
		}
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	while (p.n_anchors) {
		p.n_anchors--;
		free(p.anchors[p.n_anchors].name);
		json_decref(p.anchors[p.n_anchors].node);
	}
	free(p.anchors);
	yaml_parser_delete(&p.yp);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}

int kube_parse(const char *buf, size_t len, json_t **docs, char *err, size_t errlen)
{
	size_t i = 0;
	int rc;

	*docs = json_array();
	if (!*docs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
		i = 3; /* a UTF-8 byte order mark */
	while (i < len && strchr(" \t\r\n", buf[i]))
		i++;
	if (i < len && (buf[i] == '{' || buf[i] == '[')) {
		json_error_t je;
		json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);

		if (!doc) {
			snprintf(err, errlen, "line %d: %s", je.line, je.text);
			rc = -EINVAL;
			goto err_free;
		}
		if (json_array_append_new(*docs, doc)) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto err_free;
		}
		return 0;
	}
	if ((rc = parse_yaml(buf, len, *docs, err, errlen)))
		goto err_free;
	return 0;
err_free:
	json_decref(*docs);
	*docs = NULL;
	return rc;
}

/* ---- emitting ------------------------------------------------------- */

/*
 * 1 when a plain string could be read back as anything but that string,
 * by a YAML 1.2 reader (core schema) or a YAML 1.1 one (yes/no/on/off,
 * sexagesimal and octal numbers): such a string is quoted.
 */
static int needs_quotes(const char *s)
{
	static const char *const words[] = {"y",  "Y",	 "yes", "Yes", "YES", "n",
					    "N",  "no",	 "No",	"NO",  "on",  "On",
					    "ON", "off", "Off", "OFF", "=",   "<<"};
	json_t *v;

	if (!*s)
		return 1;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (!strcmp(s, words[i]))
			return 1;
	v = resolve_plain(s);
	if (v) {
		json_decref(v);
		return 1;
	}
	/* Anything number-like: 1_000, 0b101, 1:20, .5, +.inf, .NaN, 1e3 ... */
	if (strchr("0123456789+-.", s[0]) &&
	    all_digits(s, "0123456789abcdefABCDEFoOxX_:.+-infINFNa"))
		return 1;
	return 0;
}

struct ky_emitter {
	yaml_emitter_t ye;
	char *err;
	size_t errlen;
};

static int ky_emit(struct ky_emitter *e, yaml_event_t *ev)
{
	if (yaml_emitter_emit(&e->ye, ev))
		return 0;
	snprintf(e->err, e->errlen, "cannot write YAML: %s",
		 e->ye.problem ? e->ye.problem : "emitter error");
	return -EINVAL;
}

static int emit_scalar(struct ky_emitter *e, const char *s, size_t len, yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style))
		return -ENOMEM;
	return ky_emit(e, &ev);
}

static int emit_string(struct ky_emitter *e, const char *s, size_t len)
{
	yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;

	if (memchr(s, '\n', len))
		style = YAML_LITERAL_SCALAR_STYLE; /* libyaml falls back when it cannot */
	else if (strlen(s) != len || needs_quotes(s))
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	return emit_scalar(e, s, len, style);
}

static int emit_node(struct ky_emitter *e, const json_t *v)
{
	yaml_event_t ev;
	char num[64];
	int rc;

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *c;

		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 YAML_BLOCK_MAPPING_STYLE))
			return -ENOMEM;
		if ((rc = ky_emit(e, &ev)))
			return rc;
		json_object_foreach((json_t *)v, k, c)
		{
			if ((rc = emit_string(e, k, strlen(k))) || (rc = emit_node(e, c)))
				return rc;
		}
		if (!yaml_mapping_end_event_initialize(&ev))
			return -ENOMEM;
		return ky_emit(e, &ev);
	}
	case JSON_ARRAY: {
		json_t *c;
		size_t i;

		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  YAML_BLOCK_SEQUENCE_STYLE))
			return -ENOMEM;
		if ((rc = ky_emit(e, &ev)))
			return rc;
		json_array_foreach(v, i, c)
		{
			if ((rc = emit_node(e, c)))
				return rc;
		}
		if (!yaml_sequence_end_event_initialize(&ev))
			return -ENOMEM;
		return ky_emit(e, &ev);
	}
	case JSON_STRING:
		return emit_string(e, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(e, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL: {
		/* jansson's shortest round-trip form, always with '.' or 'e'. */
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));

		if (!s)
			return -ENOMEM;
		rc = emit_scalar(e, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
		free(s);
		return rc;
	}
	case JSON_TRUE:
		return emit_scalar(e, "true", 4, YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return emit_scalar(e, "false", 5, YAML_PLAIN_SCALAR_STYLE);
	case JSON_NULL:
	default:
		return emit_scalar(e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	}
}

int kube_emit(const json_t *docs, char **out, size_t *out_len, char *err, size_t errlen)
{
	struct ky_emitter e = {.err = err, .errlen = errlen};
	yaml_event_t ev;
	FILE *f;
	int rc = -ENOMEM;
	json_t *doc;
	size_t i;

	*out = NULL;
	*out_len = 0;
	f = open_memstream(out, out_len);
	if (!f)
		goto err_msg;
	if (!yaml_emitter_initialize(&e.ye)) {
		fclose(f);
		goto err_free;
	}
	yaml_emitter_set_output_file(&e.ye, f);
	yaml_emitter_set_unicode(&e.ye, 1);
	yaml_emitter_set_width(&e.ye, -1); /* never fold long values */
	yaml_emitter_set_indent(&e.ye, 2);
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || (rc = ky_emit(&e, &ev)))
		goto err_emitter;
	json_array_foreach(docs, i, doc)
	{
		rc = -ENOMEM;
		if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, i == 0))
			goto err_emitter;
		if ((rc = ky_emit(&e, &ev)) || (rc = emit_node(&e, doc)))
			goto err_emitter;
		rc = -ENOMEM;
		if (!yaml_document_end_event_initialize(&ev, 1) || (rc = ky_emit(&e, &ev)))
			goto err_emitter;
	}
	rc = -ENOMEM;
	if (!yaml_stream_end_event_initialize(&ev) || (rc = ky_emit(&e, &ev)))
		goto err_emitter;
	yaml_emitter_delete(&e.ye);
	if (fclose(f))
		goto err_free;
	return 0;
err_emitter:
	yaml_emitter_delete(&e.ye);
	fclose(f);
err_free:
	free(*out);
	*out = NULL;
	*out_len = 0;
err_msg:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}
