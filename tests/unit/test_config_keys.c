/*
 * docs/configuration.md and the validator name the same keys: every key
 * config_key_paths() derives from the validator's key tables has a row in
 * the doc's "Keys at a glance" table, and every row there is a key the
 * validator accepts.  The Makefile passes the source tree as LDM_SOURCE_DIR.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "ldmesh/common.h"

#ifndef LDM_SOURCE_DIR
#error "LDM_SOURCE_DIR must name the source tree (the Makefile passes it)"
#endif

#define DOC "docs/configuration.md"
#define DOC_SECTION "## Keys at a glance"
#define MAX_KEYS 256

struct keys {
	char *v[MAX_KEYS]; /* owned */
	size_t n;
};

static void keys_fini(struct keys *k)
{
	while (k->n > 0)
		free(k->v[--k->n]);
}

static int keys_has(const struct keys *k, const char *key)
{
	for (size_t i = 0; i < k->n; i++)
		if (strcmp(k->v[i], key) == 0)
			return 1;
	return 0;
}

/* Adds key; a second copy is reported and counted in *dups. */
static void keys_add(struct keys *k, const char *key, const char *where, size_t *dups)
{
	if (keys_has(k, key)) {
		print_error("%s: %s is listed twice\n", where, key);
		(*dups)++;
		return;
	}
	assert_true(k->n < MAX_KEYS);
	k->v[k->n] = strdup(key);
	assert_non_null(k->v[k->n]);
	k->n++;
}

struct collect {
	struct keys *keys;
	size_t dups;
};

static int collect_path(const char *path, void *arg)
{
	struct collect *c = arg;

	keys_add(c->keys, path, "the validator", &c->dups);
	return 0;
}

static void validator_keys(struct keys *k)
{
	struct collect c = {k, 0};

	assert_int_equal(config_key_paths(collect_path, &c), 0);
	assert_int_equal(c.dups, 0);
}

/*
 * The first column of each row of the "Keys at a glance" table: "| `key` |".
 * The table ends at the next heading.
 */
static void doc_keys(struct keys *k)
{
	const char *file = LDM_SOURCE_DIR "/" DOC;
	char line[1024], key[256];
	size_t dups = 0, len;
	int in_section = 0;
	const char *end;
	FILE *f;

	f = fopen(file, "r");
	if (!f)
		fail_msg("cannot open %s: %s", file, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "## ", 3) == 0) {
			if (in_section)
				break;
			in_section = strncmp(line, DOC_SECTION, strlen(DOC_SECTION)) == 0;
			continue;
		}
		if (!in_section || strncmp(line, "| `", 3) != 0)
			continue;
		end = strchr(line + 3, '`');
		if (!end)
			fail_msg("%s: unterminated key in row: %s", DOC, line);
		len = (size_t)(end - (line + 3));
		assert_true(len > 0 && len < sizeof(key));
		memcpy(key, line + 3, len);
		key[len] = '\0';
		keys_add(k, key, DOC, &dups);
	}
	fclose(f);
	if (!in_section)
		fail_msg("%s has no \"%s\" section", DOC, DOC_SECTION);
	assert_int_equal(dups, 0);
}

static void test_doc_lists_every_key(void **state)
{
	struct keys valid = {0}, doc = {0};
	size_t i, missing = 0;

	validator_keys(&valid);
	doc_keys(&doc);
	/* An empty side would make the comparison say nothing. */
	assert_true(valid.n > 10);
	assert_true(doc.n > 10);
	for (i = 0; i < valid.n; i++)
		if (!keys_has(&doc, valid.v[i])) {
			print_error("accepted by the validator, missing from %s: %s\n", DOC,
				    valid.v[i]);
			missing++;
		}
	for (i = 0; i < doc.n; i++)
		if (!keys_has(&valid, doc.v[i])) {
			print_error("in %s, unknown to the validator: %s\n", DOC, doc.v[i]);
			missing++;
		}
	keys_fini(&valid);
	keys_fini(&doc);
	assert_int_equal(missing, 0);
}

static int find_path(const char *path, void *arg)
{
	return strcmp(path, arg) == 0;
}

static int stop_at_third(const char *path, void *arg)
{
	return ++*(int *)arg == 3 ? 42 : 0;
}

/* The shape of the paths: groups are prefixes, lists of groups carry []. */
static void test_key_path_shapes(void **state)
{
	static const char *const present[] = {
		"trust_domain",
		"identity.cert",
		"inbound.ports",
		"inbound.ports[].port",
		"outbound.egress_allow[].cidr",
		"services[].endpoints",
		"services[].protocol",
		"services[].retry.on",
		"services[].routes",
		"services[].routes[].methods",
		"services[].routes[].retry.non_idempotent",
		"policies",
		"policies[].name",
		"telemetry.max_series",
		"access_log",
		"telemetry.access_log",
	};
	static const char *const absent[] = {"identity",
					     "inbound",
					     "telemetry",
					     "ports",
					     "services.name",
					     "services[].retry",
					     "services[].routes[].retry"};
	int calls = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(present); i++)
		if (config_key_paths(find_path, (void *)present[i]) != 1)
			fail_msg("config_key_paths does not give %s", present[i]);
	for (i = 0; i < ARRAY_SIZE(absent); i++)
		if (config_key_paths(find_path, (void *)absent[i]) != 0)
			fail_msg("config_key_paths gives %s", absent[i]);
	/* fn's first non-zero return stops the walk and is returned. */
	assert_int_equal(config_key_paths(stop_at_third, &calls), 42);
	assert_int_equal(calls, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_lists_every_key),
		cmocka_unit_test(test_key_path_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
