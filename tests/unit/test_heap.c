/*
 * Unit tests for daemon/util/heap.c: freed memory in the middle of the heap
 * stays resident (glibc returns only an arena's top), heap_slack() sees it,
 * and heap_trim() gives it back, as after a spike of connections closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/heap.h"

#define MIB (1024u * 1024u)
#define HOLES 2048
#define HOLE_SIZE (16 * 1024) /* whole pages inside each, below mmap's threshold */

static void test_trim_after_holes(void **state)
{
	static void *big[HOLES], *keep[HOLES];
	size_t before, slack, got, after;
	int i;

	(void)state;
	before = heap_slack();
	/* A connection's buffers and the small long-lived objects allocated
	 * after them, in turns: freeing the buffers leaves holes that the
	 * objects above them pin. */
	for (i = 0; i < HOLES; i++) {
		big[i] = malloc(HOLE_SIZE);
		keep[i] = malloc(64);
		assert_non_null(big[i]);
		assert_non_null(keep[i]);
		memset(big[i], 0xa5, HOLE_SIZE);
		memset(keep[i], 0x5a, 64);
	}
	for (i = 0; i < HOLES; i++) {
		free(big[i]);
	}
	slack = heap_slack();
	/* 32 MiB freed, and it is still resident. */
	assert_true(slack >= before + 24 * MIB);
	got = heap_trim();
	after = heap_slack();
	assert_true(got >= 24 * MIB);
	assert_true(after + 24 * MIB <= slack);
	for (i = 0; i < HOLES; i++) {
		free(keep[i]);
	}
}

static void test_trim_with_nothing_free(void **state)
{
	size_t slack;

	(void)state;
	heap_trim();
	slack = heap_slack();
	/* Stacks, static data and what the C library keeps: no heap to speak of. */
	assert_true(slack < 8 * MIB);
	assert_true(heap_trim() <= slack);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trim_after_holes),
		cmocka_unit_test(test_trim_with_nothing_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
