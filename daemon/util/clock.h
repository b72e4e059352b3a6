/* The daemon's one clock: monotonic milliseconds, for timeouts and ages. */
#ifndef LDMESH_CLOCK_H
#define LDMESH_CLOCK_H

#include <stdint.h>

int64_t now_ms(void);

#endif
