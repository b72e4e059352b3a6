/*
 * CHECK(x) for the fuzz targets: an invariant that failed aborts with its
 * text, which libFuzzer reports as a crash and keeps the input for.
 */
#ifndef LDMESH_FUZZ_CHECK_H
#define LDMESH_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
