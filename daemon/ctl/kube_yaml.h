/*
 * Kubernetes manifests in and out: YAML (libyaml) and JSON (jansson) to
 * jansson trees, and jansson trees back to YAML.  The CLI's `inject` and
 * the webhook work on the trees only, never on text.
 *
 * Scalars are read as kubectl reads them: the YAML 1.2 core schema (a
 * plain `true`, `8080`, `1.5` or `null` is a boolean, number or null)
 * plus YAML 1.1's booleans (`yes`, `on`, `off`, ...); anything quoted is
 * a string.  On output every string that a YAML 1.1 or
 * 1.2 reader could take for something else (`yes`, `on`, `08`, `""`, ...)
 * is quoted, so a round trip keeps every type.
 *
 * Functions return 0 or -errno and, on failure, put one sentence naming
 * the line in err (never NULL, len > 0).
 */
#ifndef LDMESH_CTL_KUBE_YAML_H
#define LDMESH_CTL_KUBE_YAML_H

#include <stddef.h>

#include <jansson.h>

/* Largest manifest read: far above anything `kubectl apply` sends. */
#define KUBE_MAX_INPUT (64u << 20)

/*
 * Parses buf (len bytes, not necessarily NUL-terminated) as YAML, one or
 * more `---` documents, or as one JSON value when its first non-blank
 * character is `{` or `[`.  Empty documents are dropped.  On success *docs
 * is a new JSON array (owned by the caller) of the documents in order.
 */
int kube_parse(const char *buf, size_t len, json_t **docs, char *err, size_t errlen);

/*
 * Writes each element of docs as one YAML document (`---` between them)
 * to the malloc'd *out (NUL-terminated, owned by the caller; *out_len its
 * length).  Strings with a newline are written in literal block style so
 * a rendered config stays readable.
 */
int kube_emit(const json_t *docs, char **out, size_t *out_len, char *err, size_t errlen);

#endif
