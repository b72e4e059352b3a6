/*
 * RFC 6902 JSON Patch between two JSON documents, as a mutating admission
 * webhook answers (webhook.c).  Objects are compared key by key and arrays
 * of equal length element by element, so a patch touches only what
 * changed; an array whose length changed is replaced whole.
 */
#ifndef LDMESH_CTL_KUBE_PATCH_H
#define LDMESH_CTL_KUBE_PATCH_H

#include <jansson.h>

/*
 * The operations that turn from into to: a new JSON array (owned by the
 * caller, empty when they are equal), or NULL on allocation failure.
 * from and to are borrowed and not changed.
 */
json_t *kube_patch_diff(const json_t *from, const json_t *to);

#endif
