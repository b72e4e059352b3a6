/*
 * Pod templates with ldmesh in them (inject.h): find the template of each
 * kind, read its annotations, add the native sidecar, mesh the containers,
 * add the volumes.  Everything is built as jansson trees; nothing here
 * knows YAML.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inject.h"

#define MAX_PROBES 64

/* The sidecar: copy shim and launcher (by rename, so a restarted sidecar
 * never rewrites a library that running apps have mapped), write the
 * config, become ldmeshd. */
#define SIDECAR_PREPARE                                                                            \
	"set -eu\n"                                                                                \
	"for f in " INJECT_IMAGE_SHIM " " INJECT_IMAGE_LAUNCHER "; do\n"                           \
	"  cp \"$f\" " INJECT_RUNTIME_DIR "/.copy.tmp\n"                                           \
	"  mv -f " INJECT_RUNTIME_DIR "/.copy.tmp " INJECT_RUNTIME_DIR "/\"${f##*/}\"\n"           \
	"done\n"                                                                                   \
	"printf '%s' \"$LDMESH_CONFIG\" > " INJECT_CONFIG ".tmp\n"                                 \
	"mv -f " INJECT_CONFIG ".tmp " INJECT_CONFIG "\n"
static const char sidecar_script[] = SIDECAR_PREPARE "exec ldmeshd -c " INJECT_CONFIG "\n";

/* With SPIRE: the same, once spiffe-helper (started just before) has
 * written the identity files; the startup probe bounds the wait. */
static const char sidecar_script_spire[] =
	SIDECAR_PREPARE "until [ -s " INJECT_ID_DIR "/" INJECT_SPIRE_SVID
			" ] && [ -s " INJECT_ID_DIR "/" INJECT_SPIRE_KEY " ] &&\n"
			"      [ -s " INJECT_ID_DIR "/" INJECT_SPIRE_BUNDLE " ]; do\n"
			"  sleep 1\n"
			"done\n"
			"exec ldmeshd -c " INJECT_CONFIG "\n";

struct inject_ctx {
	const struct inject_opts *opts;
	struct inject_conf conf;
	const json_t *annotations; /* borrowed: merged view, template wins */
	json_t *notes; /* borrowed */
	const char *what; /* "Deployment/web", for messages */
	char *err;
	size_t errlen;
	struct inject_probe probes[MAX_PROBES];
	size_t n_probes;
};

static int fail(struct inject_ctx *x, const char *msg)
{
	snprintf(x->err, x->errlen, "%s: %s", x->what, msg);
	return -EINVAL;
}

static int note(struct inject_ctx *x, const char *msg)
{
	char buf[600];

	snprintf(buf, sizeof(buf), "%s: %s", x->what, msg);
	return json_array_append_new(x->notes, json_string(buf)) ? -ENOMEM : 0;
}

static const char *str_member(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* obj[key] as an object or array, created when absent; NULL when it is
 * something else (or on ENOMEM). */
static json_t *member(json_t *obj, const char *key, int array)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		v = array ? json_array() : json_object();
		if (!v || json_object_set_new(obj, key, v))
			return NULL;
	}
	return (array ? json_is_array(v) : json_is_object(v)) ? v : NULL;
}

/* The pod template of a workload object, or NULL for other kinds. */
static json_t *pod_template(json_t *obj)
{
	const char *kind = str_member(obj, "kind");
	static const char *const with_template[] = {
		"Deployment", "StatefulSet",	       "DaemonSet",
		"ReplicaSet", "ReplicationController", "Job"};
	json_t *spec;

	if (!kind)
		return NULL;
	if (!strcmp(kind, "Pod"))
		return obj;
	spec = json_object_get(obj, "spec");
	for (size_t i = 0; i < ARRAY_SIZE(with_template); i++)
		if (!strcmp(kind, with_template[i]))
			return json_object_get(spec, "template");
	if (!strcmp(kind, "CronJob"))
		return json_object_get(
			json_object_get(json_object_get(spec, "jobTemplate"), "spec"), "template");
	return NULL;
}

static json_t *env_var(const char *name, const char *value)
{
	return json_pack("{s:s, s:s}", "name", name, "value", value);
}

static json_t *http_probe(const char *path, int period, int failures)
{
	return json_pack("{s:{s:s, s:i}, s:i, s:i, s:i}", "httpGet", "path", path, "port",
			 INJECT_ADMIN_PORT, "periodSeconds", period, "timeoutSeconds", 1,
			 "failureThreshold", failures);
}

static json_t *sidecar(struct inject_ctx *x, const char *config)
{
	const struct inject_conf *c = &x->conf;
	json_t *limits, *res;

	limits = json_object();
	if (!limits)
		return NULL;
	if (c->cpu_limit && json_object_set_new(limits, "cpu", json_string(c->cpu_limit)))
		goto err_limits;
	if (c->memory_limit && json_object_set_new(limits, "memory", json_string(c->memory_limit)))
		goto err_limits;
	res = json_pack("{s:{s:s, s:s}, s:o}", "requests", "cpu", c->cpu_request, "memory",
			c->memory_request, "limits", limits);
	if (!res)
		return NULL;
	return json_pack(
		"{s:s, s:s, s:s, s:s, s:[s, s, s], s:[o, o], s:[{s:s, s:i, s:s}, {s:s, s:i, s:s}],"
		" s:o, s:o, s:o, s:o,"
		" s:{s:b, s:b, s:b, s:i, s:i, s:{s:[s]}, s:{s:s}},"
		" s:[{s:s, s:s}, {s:s, s:s, s:b}]}",
		"name", INJECT_SIDECAR, "image", x->opts->image, "imagePullPolicy", "IfNotPresent",
		"restartPolicy", "Always", "command", "/bin/sh", "-c",
		inject_conf_spire(c) ? sidecar_script_spire : sidecar_script, "env",
		env_var("LDMESH_CONFIG", config), env_var("LDMESH_RUNTIME_DIR", INJECT_RUNTIME_DIR),
		"ports", "name", "ldmesh-admin", "containerPort", INJECT_ADMIN_PORT, "protocol",
		"TCP", "name", "ldmesh-link", "containerPort", INJECT_LINK_PORT, "protocol", "TCP",
		/* Native sidecar: the app containers start once this passes. */
		"startupProbe", http_probe("/ready", 1, 120), "readinessProbe",
		http_probe("/ready", 5, 3), "livenessProbe", http_probe("/live", 10, 3),
		"resources", res, "securityContext", "allowPrivilegeEscalation", 0,
		"readOnlyRootFilesystem", 1, "runAsNonRoot", 1, "runAsUser", INJECT_PROXY_UID,
		"runAsGroup", INJECT_PROXY_UID, "capabilities", "drop", "ALL", "seccompProfile",
		"type", "RuntimeDefault", "volumeMounts", "name", INJECT_VOLUME, "mountPath",
		INJECT_RUNTIME_DIR, "name", INJECT_ID_VOLUME, "mountPath", INJECT_ID_DIR,
		"readOnly", 1);
err_limits:
	json_decref(limits);
	return NULL;
}

/* Sets env NAME (replacing a plain value), or prepends the shim to LD_PRELOAD. */
static int set_env(struct inject_ctx *x, json_t *c, const char *name, const char *value,
		   int prepend)
{
	json_t *env = member(c, "env", 1), *e;
	size_t i;

	if (!env)
		return fail(x, "a container's env is not a list");
	json_array_foreach(env, i, e)
	{
		const char *old;
		char *joined;
		int rc;

		if (!json_is_object(e) || strcmp(str_member(e, "name") ?: "", name) != 0)
			continue;
		if (json_object_get(e, "valueFrom"))
			return fail(x, "a container takes LD_PRELOAD or LDMESH_RUNTIME_DIR from "
				       "valueFrom: give it as a value so the shim can be added");
		old = str_member(e, "value");
		if (!prepend || !old || !*old)
			return json_object_set_new(e, "value", json_string(value)) ? -ENOMEM : 0;
		if (asprintf(&joined, "%s:%s", value, old) < 0)
			return -ENOMEM;
		rc = json_object_set_new(e, "value", json_string(joined)) ? -ENOMEM : 0;
		free(joined);
		return rc;
	}
	return json_array_append_new(env, env_var(name, value)) ? -ENOMEM : 0;
}

/* The image's entrypoint, given by config.ldmesh.io/command-<container>
 * as a JSON array of strings. */
static int annotated_command(struct inject_ctx *x, const char *cname, json_t **cmd)
{
	char key[160], msg[300];
	const char *v;
	json_error_t je;
	json_t *e;
	size_t i;

	*cmd = NULL;
	snprintf(key, sizeof(key), INJECT_CONF_PREFIX "command-%s", cname);
	v = str_member(x->annotations, key);
	if (!v)
		return 0;
	*cmd = json_loads(v, 0, &je);
	if (!json_is_array(*cmd) || json_array_size(*cmd) == 0)
		goto bad;
	json_array_foreach(*cmd, i, e) if (!json_is_string(e)) goto bad;
	return 0;
bad:
	json_decref(*cmd);
	*cmd = NULL;
	snprintf(msg, sizeof(msg),
		 "annotation %s: expected a JSON list of strings like "
		 "[\"/app/server\", \"--port=8080\"]",
		 key);
	return fail(x, msg);
}

static int collect_probe(struct inject_ctx *x, const json_t *c, const json_t *probe)
{
	const json_t *act = NULL, *port;
	const char *path = NULL;
	static const char *const kinds[] = {"httpGet", "tcpSocket", "grpc"};
	int p = 0;

	for (size_t i = 0; i < ARRAY_SIZE(kinds) && !act; i++)
		act = json_object_get(probe, kinds[i]);
	if (!json_is_object(act))
		return 0; /* exec probes run inside the container */
	port = json_object_get(act, "port");
	if (json_is_integer(port)) {
		p = (int)json_integer_value(port);
	} else if (json_is_string(port)) {
		json_t *cp;
		size_t i;

		/* A named port: the container's ports name it. */
		json_array_foreach(json_object_get(c, "ports"), i, cp)
		{
			if (!strcmp(str_member(cp, "name") ?: "", json_string_value(port)))
				p = (int)json_integer_value(json_object_get(cp, "containerPort"));
		}
	}
	if (p < 1 || p > 65535 || x->n_probes >= MAX_PROBES)
		return 0;
	if (json_object_get(act, "host"))
		return 0; /* probes another host, not this pod */
	x->probes[x->n_probes].port = p;
	x->probes[x->n_probes].path[0] = '\0';
	path = str_member(act, "path");
	if (path && path[0] == '/') {
		size_t n = strcspn(path, "?#");

		/* Only paths the policy syntax takes literally; else the rule
		 * allows the port. */
		if (n < sizeof(x->probes[0].path) &&
		    strspn(path,
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._~-") ==
			    n)
			snprintf(x->probes[x->n_probes].path, sizeof(x->probes[0].path), "%.*s",
				 (int)n, path);
	}
	x->n_probes++;
	return 0;
}

static int mount_volume(struct inject_ctx *x, json_t *c, const char *name, const char *path, int ro)
{
	json_t *mounts = member(c, "volumeMounts", 1), *m;
	size_t i;

	if (!mounts)
		return fail(x, "a container's volumeMounts is not a list");
	json_array_foreach(mounts, i, m)
	{
		if (!strcmp(str_member(m, "mountPath") ?: "", path)) {
			char msg[200];

			snprintf(msg, sizeof(msg), "a container already mounts something at %s",
				 path);
			return fail(x, msg);
		}
	}
	return json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "name", name, "mountPath",
						       path, "readOnly", ro))
		       ? -ENOMEM
		       : 0;
}

/* One app container: env, the shared volume, the launcher around its command. */
static int mesh_container(struct inject_ctx *x, json_t *c, int is_init)
{
	const char *cname = str_member(c, "name");
	json_t *cmd = json_object_get(c, "command"), *wrapped;
	char msg[400];
	int rc;

	if (!json_is_object(c) || !cname)
		return fail(x, "a container without a name");
	if ((rc = set_env(x, c, "LD_PRELOAD", INJECT_SHIM, 1)) ||
	    (rc = set_env(x, c, "LDMESH_RUNTIME_DIR", INJECT_RUNTIME_DIR, 0)))
		return rc;
	if (x->conf.skip_inbound || x->conf.skip_outbound) {
		char ports[1024];

		snprintf(ports, sizeof(ports), "%s%s%s", x->conf.skip_inbound ?: "",
			 x->conf.skip_inbound && x->conf.skip_outbound ? "," : "",
			 x->conf.skip_outbound ?: "");
		if ((rc = set_env(x, c, "LDMESH_EXCLUDE_PORTS", ports, 0)))
			return rc;
	}
	if (x->conf.skip_outbound_ips &&
	    (rc = set_env(x, c, "LDMESH_EXCLUDE_CIDRS", x->conf.skip_outbound_ips, 0)))
		return rc;
	if ((rc = mount_volume(x, c, INJECT_VOLUME, INJECT_RUNTIME_DIR, 1)))
		return rc;
	if (!is_init) {
		static const char *const probes[] = {"livenessProbe", "readinessProbe",
						     "startupProbe"};

		for (size_t i = 0; i < ARRAY_SIZE(probes); i++) {
			const json_t *p = json_object_get(c, probes[i]);

			if (p && (rc = collect_probe(x, c, p)))
				return rc;
		}
	}
	if (!cmd || json_is_null(cmd)) {
		if ((rc = annotated_command(x, cname, &cmd)))
			return rc;
		if (!cmd) {
			snprintf(msg, sizeof(msg),
				 "container %s has no command in the spec, so only its glibc "
				 "programs are meshed (LD_PRELOAD); give the image's entrypoint "
				 "with "
				 "the annotation " INJECT_CONF_PREFIX
				 "command-%s: '[\"/path/to/app\"]' "
				 "to run it under ldmesh-run",
				 cname, cname);
			return note(x, msg);
		}
	} else {
		if (!json_is_array(cmd))
			return fail(x, "a container's command is not a list");
		json_incref(cmd);
	}
	wrapped = json_pack("[s, s]", INJECT_LAUNCHER, "--");
	if (!wrapped || json_array_extend(wrapped, cmd) ||
	    json_object_set_new(c, "command", wrapped)) {
		json_decref(cmd);
		return -ENOMEM;
	}
	json_decref(cmd);
	return 0;
}

static int listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p;) {
		size_t k = strcspn(p, ",");

		if ((k == 1 && *p == '*') || (k == n && !memcmp(p, name, n)))
			return 1;
		p += k + (p[k] == ',');
	}
	return 0;
}

static int has_container(const json_t *list, const char *name)
{
	json_t *c;
	size_t i;

	json_array_foreach(list, i, c) if (!strcmp(str_member(c, "name") ?: "", name)) return 1;
	return 0;
}

/*
 * SPIRE: spiffe-helper writes the SVID, key and bundle into an emptyDir in
 * memory; the agent's Workload API socket comes from the SPIFFE CSI driver
 * (SPIRE's way for workloads, no hostPath); helper.conf from the pod's
 * annotation through the downward API.
 */
static int spire_volumes(json_t *vols)
{
	if (json_array_append_new(vols, json_pack("{s:s, s:{s:s}}", "name", INJECT_ID_VOLUME,
						  "emptyDir", "medium", "Memory")) ||
	    json_array_append_new(vols, json_pack("{s:s, s:{s:s, s:b}}", "name",
						  INJECT_SPIRE_SOCKET_VOLUME, "csi", "driver",
						  INJECT_SPIRE_CSI_DRIVER, "readOnly", 1)) ||
	    json_array_append_new(
		    vols, json_pack("{s:s, s:{s:[{s:s, s:{s:s}}]}}", "name",
				    INJECT_SPIRE_CONF_VOLUME, "downwardAPI", "items", "path",
				    "helper.conf", "fieldRef", "fieldPath",
				    "metadata.annotations['" INJECT_SPIRE_CONF_ANNOTATION "']")))
		return -ENOMEM;
	return 0;
}

/* The native sidecar that keeps SPIRE's SVID in files, before ldmesh-proxy. */
static json_t *spire_helper(struct inject_ctx *x)
{
	return json_pack(
		"{s:s, s:s, s:s, s:s, s:[s, s],"
		" s:{s:{s:s, s:s}, s:{s:s}},"
		" s:{s:b, s:b, s:b, s:i, s:i, s:{s:[s]}, s:{s:s}},"
		" s:[{s:s, s:s, s:b}, {s:s, s:s, s:b}, {s:s, s:s, s:b}]}",
		"name", INJECT_SPIRE_HELPER, "image", x->conf.spiffe_helper_image,
		"imagePullPolicy", "IfNotPresent", "restartPolicy", "Always", "args", "-config",
		INJECT_SPIRE_CONF_DIR "/helper.conf", "resources", "requests", "cpu", "5m",
		"memory", "16Mi", "limits", "memory", "64Mi", "securityContext",
		"allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 1, "runAsNonRoot", 1,
		"runAsUser", INJECT_PROXY_UID, "runAsGroup", INJECT_PROXY_UID, "capabilities",
		"drop", "ALL", "seccompProfile", "type", "RuntimeDefault", "volumeMounts", "name",
		INJECT_SPIRE_SOCKET_VOLUME, "mountPath", INJECT_SPIRE_SOCKET_DIR, "readOnly", 1,
		"name", INJECT_ID_VOLUME, "mountPath", INJECT_ID_DIR, "readOnly", 0, "name",
		INJECT_SPIRE_CONF_VOLUME, "mountPath", INJECT_SPIRE_CONF_DIR, "readOnly", 1);
}

/* The pod's annotation that the downwardAPI volume turns into helper.conf. */
static int spire_annotate(json_t *tmpl)
{
	json_t *meta = member(tmpl, "metadata", 0), *ann;

	ann = meta ? member(meta, "annotations", 0) : NULL;
	if (!ann)
		return -EINVAL;
	return json_object_set_new(ann, INJECT_SPIRE_CONF_ANNOTATION,
				   json_string(INJECT_SPIRE_HELPER_CONF))
		       ? -ENOMEM
		       : 0;
}

static int add_volumes(struct inject_ctx *x, json_t *spec)
{
	json_t *vols = member(spec, "volumes", 1), *v;
	char gid[16];
	size_t i;

	if (!vols)
		return fail(x, "spec.volumes is not a list");
	json_array_foreach(vols, i, v)
	{
		const char *n = str_member(v, "name") ?: "";

		if (!strcmp(n, INJECT_VOLUME) || !strcmp(n, INJECT_ID_VOLUME) ||
		    (inject_conf_spire(&x->conf) && (!strcmp(n, INJECT_SPIRE_SOCKET_VOLUME) ||
						     !strcmp(n, INJECT_SPIRE_CONF_VOLUME))))
			return fail(x, "the pod already has a volume named " INJECT_VOLUME
				       ", " INJECT_ID_VOLUME ", " INJECT_SPIRE_SOCKET_VOLUME
				       " or " INJECT_SPIRE_CONF_VOLUME);
	}
	snprintf(gid, sizeof(gid), "%d", INJECT_PROXY_UID);
	if (json_array_append_new(vols,
				  json_pack("{s:s, s:{}}", "name", INJECT_VOLUME, "emptyDir")))
		return -ENOMEM;
	if (inject_conf_spire(&x->conf))
		return spire_volumes(vols);
	/* csi-driver-spiffe writes tls.crt (leaf and chain), tls.key and
	 * ca.crt; fs-group lets the non-root sidecar read the key. */
	return json_array_append_new(vols,
				     json_pack("{s:s, s:{s:s, s:b, s:{s:s}}}", "name",
					       INJECT_ID_VOLUME, "csi", "driver", INJECT_CSI_DRIVER,
					       "readOnly", 1, "volumeAttributes",
					       "spiffe.csi.cert-manager.io/fs-group", gid))
		       ? -ENOMEM
		       : 0;
}

static int inject_pod(struct inject_ctx *x, json_t *tmpl)
{
	json_t *spec = json_object_get(tmpl, "spec"), *inits, *apps, *c, *sc, *list;
	char *config;
	size_t i;
	int rc;

	if (!json_is_object(spec))
		return fail(x, "the pod template has no spec");
	apps = json_object_get(spec, "containers");
	if (!json_is_array(apps) || json_array_size(apps) == 0)
		return fail(x, "the pod spec has no containers");
	inits = member(spec, "initContainers", 1);
	if (!inits)
		return fail(x, "spec.initContainers is not a list");
	if (has_container(apps, INJECT_SIDECAR))
		return fail(x, "a container is already named " INJECT_SIDECAR);
	if (inject_conf_spire(&x->conf) &&
	    (has_container(apps, INJECT_SPIRE_HELPER) || has_container(inits, INJECT_SPIRE_HELPER)))
		return fail(x, "a container is already named " INJECT_SPIRE_HELPER);
	json_array_foreach(apps, i, c) if ((rc = mesh_container(x, c, 0))) return rc;
	/* Init containers run before the app, some before the network is up:
	 * meshed only when asked.  They run after ldmesh-proxy, which is first. */
	json_array_foreach(inits, i, c)
	{
		if (listed(x->conf.mesh_init, str_member(c, "name") ?: "") &&
		    (rc = mesh_container(x, c, 1)))
			return rc;
	}
	if ((rc = add_volumes(x, spec)))
		return rc;
	config = inject_conf_render(&x->conf, x->probes, x->n_probes);
	if (!config)
		return -ENOMEM;
	sc = sidecar(x, config);
	free(config);
	if (!sc)
		return -ENOMEM;
	list = json_array();
	if (list && inject_conf_spire(&x->conf)) {
		/* Started first, so its files are there for ldmesh-proxy. */
		rc = spire_annotate(tmpl);
		if (rc == -EINVAL) {
			json_decref(sc);
			json_decref(list);
			return fail(x, "the pod's metadata or annotations is not an object");
		}
		if (rc || json_array_append_new(list, spire_helper(x))) {
			json_decref(sc);
			json_decref(list);
			return -ENOMEM;
		}
	}
	if (!list || json_array_append_new(list, sc) || json_array_extend(list, inits) ||
	    json_object_set_new(spec, "initContainers", list)) {
		json_decref(list);
		return -ENOMEM;
	}
	return 1;
}

static const char *annotation(const json_t *obj, const char *key)
{
	return str_member(json_object_get(json_object_get(obj, "metadata"), "annotations"), key);
}

/* Adds obj's metadata.annotations to into (later calls win). */
static int merge_annotations(json_t *into, const json_t *obj)
{
	json_t *a = json_object_get(json_object_get(obj, "metadata"), "annotations");

	return json_is_object(a) ? json_object_update(into, a) : 0;
}

int inject_object(json_t *obj, const struct inject_opts *o, json_t *notes, char *err, size_t errlen)
{
	struct inject_ctx x = {.opts = o, .notes = notes, .err = err, .errlen = errlen};
	const char *kind = str_member(obj, "kind"), *flag;
	json_t *tmpl, *merged, *spec;
	char what[200];
	int rc;

	if (!json_is_object(obj))
		return 0;
	if (kind && strlen(kind) >= 4 && !strcmp(kind + strlen(kind) - 4, "List") &&
	    json_is_array(json_object_get(obj, "items"))) {
		json_t *item;
		size_t i;
		int changed = 0;

		json_array_foreach(json_object_get(obj, "items"), i, item)
		{
			if ((rc = inject_object(item, o, notes, err, errlen)) < 0)
				return rc;
			changed |= rc;
		}
		return changed;
	}
	tmpl = pod_template(obj);
	if (!json_is_object(tmpl))
		return 0;
	snprintf(what, sizeof(what), "%s/%s", kind,
		 str_member(json_object_get(obj, "metadata"), "name") ?: "(unnamed)");
	x.what = what;
	/* The template's annotation wins over the workload's. */
	flag = annotation(tmpl, INJECT_ANNOTATION);
	if (!flag)
		flag = annotation(obj, INJECT_ANNOTATION);
	if (flag && !strcmp(flag, "disabled"))
		return 0;
	if (flag && strcmp(flag, "enabled") != 0)
		return fail(&x, "annotation " INJECT_ANNOTATION " takes enabled or disabled");
	spec = json_object_get(tmpl, "spec");
	if (has_container(json_object_get(spec, "initContainers"), INJECT_SIDECAR))
		return 0; /* already injected: twice is once */
	merged = json_object();
	if (!merged)
		return -ENOMEM;
	if ((tmpl != obj && merge_annotations(merged, obj)) || merge_annotations(merged, tmpl)) {
		json_decref(merged);
		return -ENOMEM;
	}
	x.annotations = merged;
	rc = inject_conf_read(&x.conf, merged, err, errlen);
	if (rc == -EINVAL) {
		char why[400];

		snprintf(why, sizeof(why), "%s", err);
		rc = fail(&x, why);
	} else if (rc == 0) {
		rc = inject_pod(&x, tmpl);
	}
	/* x.conf borrows strings from merged: done with both now. */
	json_decref(merged);
	return rc;
}
