/* Small macros shared by the shim, the daemon and the CLI. */
#ifndef LDMESH_COMMON_H
#define LDMESH_COMMON_H

#include <stddef.h>

#define LDMESH_VERSION "0.1.0"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define LDM_UNUSED __attribute__((unused))
#define LDM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LDM_LIKELY(x) __builtin_expect(!!(x), 1)
#define LDM_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define LDM_DEFAULT_RUNTIME_DIR "/run/ldmesh"
#define LDM_HANDOFF_SOCK "handoff.sock"
#define LDM_CTL_SOCK "ctl.sock"

#endif
