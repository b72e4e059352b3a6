/* Daemon logging: one line per event on stderr, with time and level. */
#ifndef LDMESH_LOG_H
#define LDMESH_LOG_H

#include "ldmesh/common.h"

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_threshold;

void log_msg(enum log_level level, const char *fmt, ...) LDM_PRINTF(2, 3);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_threshold >= LOG_DEBUG) {                                                  \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
		}                                                                                  \
	} while (0)

#endif
