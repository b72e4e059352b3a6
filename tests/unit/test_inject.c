/*
 * Unit tests for ldmeshctl's Kubernetes code: kube_yaml.c (YAML/JSON to
 * jansson and back), kube_patch.c (JSON Patch), inject_conf.c (annotations)
 * and inject.c (a pod's shape).  The golden-file and webhook tests are in
 * tests/e2e/test_kube_*.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/inject.h"
#include "ctl/kube_patch.h"
#include "ctl/kube_yaml.h"

static json_t *parse_ok(const char *text)
{
	char err[256] = "";
	json_t *docs = NULL;

	assert_int_equal(kube_parse(text, strlen(text), &docs, err, sizeof(err)), 0);
	return docs;
}

static void parse_fails(const char *text, const char *line)
{
	char err[256] = "";
	json_t *docs = NULL;

	assert_int_equal(kube_parse(text, strlen(text), &docs, err, sizeof(err)), -EINVAL);
	assert_null(docs);
	print_message("%s\n", err);
	assert_true(strncmp(err, line, strlen(line)) == 0);
}

static void test_scalars(void **state)
{
	json_t *docs = parse_ok("a: 8080\nb: \"8080\"\nc: true\nd: yes\ne: 'on'\nf: ~\n"
				"g: 1.5\nh: 0x1F\ni: 08\nj: |\n  x\n  y\n");
	json_t *d = json_array_get(docs, 0);

	assert_int_equal(json_integer_value(json_object_get(d, "a")), 8080);
	assert_string_equal(json_string_value(json_object_get(d, "b")), "8080");
	assert_true(json_is_true(json_object_get(d, "c")));
	assert_true(json_is_true(json_object_get(d, "d"))); /* as kubectl reads it */
	assert_string_equal(json_string_value(json_object_get(d, "e")), "on");
	assert_true(json_is_null(json_object_get(d, "f")));
	assert_true(json_is_real(json_object_get(d, "g")));
	assert_int_equal(json_integer_value(json_object_get(d, "h")), 31);
	assert_int_equal(json_integer_value(json_object_get(d, "i")), 8);
	assert_string_equal(json_string_value(json_object_get(d, "j")), "x\ny\n");
	json_decref(docs);
}

/* What is written reads back to the same tree. */
static void test_round_trip(void **state)
{
	static const char text[] = "a: \"yes\"\nb: \"08\"\nc: \"\"\nd: [1, \"2\", null]\n"
				   "e: \"line\\nnext\\n\"\nf: {}\ng: \" x\"\nh: \"0o17\"\n"
				   "---\n---\nk: &x {v: 1}\nl: *x\nm:\n  <<: *x\n  w: 2\n";
	json_t *docs = parse_ok(text), *again;
	char err[256], *out;
	size_t len;

	assert_int_equal(json_array_size(docs), 2); /* the empty document is dropped */
	assert_int_equal(kube_emit(docs, &out, &len, err, sizeof(err)), 0);
	again = parse_ok(out);
	assert_true(json_equal(docs, again));
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(json_array_get(docs, 1), "m"), "v")),
			 1);
	free(out);
	json_decref(again);
	json_decref(docs);
}

static void test_errors_name_the_line(void **state)
{
	parse_fails("a: 1\nb:\n\tc: 2\n", "line 3: ");
	parse_fails("a: 1\na: 2\n", "line 2: duplicate key \"a\"");
	parse_fails("a: [1,\n", "line 2: ");
	parse_fails("a: *nope\n", "line 1: unknown alias");
	parse_fails("{\"a\": 1,\n \"a\": 2}", "line 2: ");
	parse_fails("a: !!int x\n", "line 1: ");
}

static void test_patch_pointers(void **state)
{
	json_t *a = json_pack("{s:{s:s}, s:[i, i], s:i}", "metadata", "ldmesh.io/inject", "x",
			      "list", 1, 2, "gone", 1);
	json_t *b = json_pack("{s:{s:s, s:s}, s:[i, i, i]}", "metadata", "ldmesh.io/inject", "y",
			      "a~b", "z", "list", 1, 2, 3);
	json_t *ops = kube_patch_diff(a, b);
	char *s = json_dumps(ops, JSON_COMPACT);

	assert_string_equal(
		s, "[{\"op\":\"remove\",\"path\":\"/gone\"},"
		   "{\"op\":\"replace\",\"path\":\"/metadata/ldmesh.io~1inject\",\"value\":\"y\"},"
		   "{\"op\":\"add\",\"path\":\"/metadata/a~0b\",\"value\":\"z\"},"
		   "{\"op\":\"replace\",\"path\":\"/list\",\"value\":[1,2,3]}]");
	free(s);
	json_decref(ops);
	ops = kube_patch_diff(a, a);
	assert_int_equal(json_array_size(ops), 0);
	json_decref(ops);
	json_decref(a);
	json_decref(b);
}

static void test_ports(void **state)
{
	json_t *out = json_array();
	char err[200];

	assert_int_equal(inject_ports_parse("22,8000-8002,22", out, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(out), 4);
	assert_int_equal(inject_ports_parse("0", NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(inject_ports_parse("9-8", NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(inject_ports_parse("80,", NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(inject_ports_parse("1-65535", out, err, sizeof(err)), -EINVAL);
	json_decref(out);
}

static void test_conf(void **state)
{
	struct inject_conf c;
	struct inject_probe probe = {.port = 8081, .path = "/healthz"};
	char err[300], *text;
	json_t *ann =
		json_pack("{s:s, s:s, s:s}", "config.ldmesh.io/policy-default", "deny",
			  "config.ldmesh.io/skip-inbound-ports", "9102", "other.io/x", "ignored");

	assert_int_equal(inject_conf_read(&c, ann, err, sizeof(err)), 0);
	text = inject_conf_render(&c, &probe, 1);
	assert_non_null(strstr(text, "policy_default = \"deny\";"));
	assert_non_null(strstr(text, "exclude_ports = [ 9102 ];"));
	assert_non_null(strstr(text, "{ port = 8081; mtls = \"permissive\"; }"));
	assert_non_null(strstr(text, "paths = [ \"/healthz\" ]"));
	free(text);
	json_object_set_new(ann, "config.ldmesh.io/mtls", json_string("strict"));
	assert_int_equal(inject_conf_read(&c, ann, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown annotation config.ldmesh.io/mtls"));
	json_decref(ann);
}

static void test_inject_pod(void **state)
{
	struct inject_opts o = {.image = "img"};
	json_t *pod = json_pack("{s:s, s:s, s:{s:s}, s:{s:[{s:s, s:s, s:[s]}]}}", "apiVersion",
				"v1", "kind", "Pod", "metadata", "name", "p", "spec", "containers",
				"name", "a", "image", "x", "command", "/a");
	json_t *notes = json_array(), *copy, *spec;
	char err[300];

	assert_int_equal(inject_object(pod, &o, notes, err, sizeof(err)), 1);
	spec = json_object_get(pod, "spec");
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(spec, "initContainers"), 0), "name")),
		INJECT_SIDECAR);
	assert_string_equal(
		json_string_value(json_array_get(
			json_object_get(json_array_get(json_object_get(spec, "containers"), 0),
					"command"),
			0)),
		INJECT_LAUNCHER);
	assert_int_equal(json_array_size(notes), 0);
	copy = json_deep_copy(pod);
	assert_int_equal(inject_object(pod, &o, notes, err, sizeof(err)), 0);
	assert_true(json_equal(pod, copy));
	json_decref(copy);
	json_decref(notes);
	json_decref(pod);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_patch_pointers),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_conf),
		cmocka_unit_test(test_inject_pod),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
