/*
 * Kubernetes injection: a pod template in, the same pod with ldmesh in it
 * out (docs/kubernetes.md).  Works on jansson trees; kube_yaml.c turns
 * manifests into trees and back, webhook.c feeds it AdmissionReviews.
 *
 * What an injected pod gets, with no privilege at all:
 *  - initContainers[0] `ldmesh-proxy`, a native sidecar (restartPolicy
 *    Always) that copies the shim and the launcher into the shared emptyDir,
 *    writes the rendered config there and execs ldmeshd; startup and
 *    readiness probes on :4191/ready, liveness on :4191/live;
 *  - every regular container: LD_PRELOAD (the shim first),
 *    LDMESH_RUNTIME_DIR, the emptyDir read-only, and its command wrapped as
 *    `ldmesh-run -- CMD` when the spec (or an annotation) gives it;
 *  - identity from csi-driver-spiffe's files, mounted into the sidecar only;
 *    or, with config.ldmesh.io/identity: spire, from the files SPIRE's
 *    spiffe-helper (a native sidecar before ldmesh-proxy, the agent's
 *    socket from the SPIFFE CSI driver) writes into a shared emptyDir.
 */
#ifndef LDMESH_CTL_INJECT_H
#define LDMESH_CTL_INJECT_H

#include <stddef.h>

#include <jansson.h>

#include "ldmesh/common.h"

#define INJECT_DEFAULT_IMAGE "ghcr.io/ldmesh/ldmesh:" LDMESH_VERSION
#define INJECT_SIDECAR "ldmesh-proxy"
/* The emptyDir shared by the sidecar (read-write) and the apps (read-only):
 * sockets, config, shim and launcher. */
#define INJECT_VOLUME "ldmesh-runtime"
#define INJECT_RUNTIME_DIR "/var/run/ldmesh"
#define INJECT_SHIM INJECT_RUNTIME_DIR "/libldmesh.so"
#define INJECT_LAUNCHER INJECT_RUNTIME_DIR "/ldmesh-run"
#define INJECT_CONFIG INJECT_RUNTIME_DIR "/ldmesh.conf"
#define INJECT_ID_VOLUME "ldmesh-identity"
#define INJECT_ID_DIR "/var/run/secrets/spiffe.io"
#define INJECT_CSI_DRIVER "spiffe.csi.cert-manager.io"
/* config.ldmesh.io/identity: spire.  spiffe-helper writes these into the
 * ldmesh-identity emptyDir; the Workload API socket comes from the SPIFFE
 * CSI driver (csi.spiffe.io), as SPIRE documents for workloads; its config
 * from a pod annotation through a downwardAPI volume (no ConfigMap). */
#define INJECT_SPIRE_HELPER "ldmesh-spiffe-helper"
#define INJECT_SPIRE_HELPER_IMAGE "ghcr.io/spiffe/spiffe-helper:0.8.0"
#define INJECT_SPIRE_CSI_DRIVER "csi.spiffe.io"
#define INJECT_SPIRE_SOCKET_VOLUME "ldmesh-spire-agent"
#define INJECT_SPIRE_SOCKET_DIR "/spiffe-workload-api"
#define INJECT_SPIRE_SOCKET INJECT_SPIRE_SOCKET_DIR "/spire-agent.sock"
#define INJECT_SPIRE_CONF_VOLUME "ldmesh-spiffe-helper"
#define INJECT_SPIRE_CONF_DIR "/etc/ldmesh-spiffe-helper"
#define INJECT_SPIRE_CONF_ANNOTATION "ldmesh.io/spiffe-helper-conf"
#define INJECT_SPIRE_SVID "svid.pem"
#define INJECT_SPIRE_KEY "svid_key.pem"
#define INJECT_SPIRE_BUNDLE "svid_bundle.pem"
/* spiffe-helper's helper.conf (HCL): daemon mode, no process to signal
 * (ldmeshd reloads the files when they change). */
#define INJECT_SPIRE_HELPER_CONF                                                                   \
	"agent_address = \"" INJECT_SPIRE_SOCKET "\"\n"                                            \
	"cmd = \"\"\n"                                                                             \
	"cmd_args = \"\"\n"                                                                        \
	"cert_dir = \"" INJECT_ID_DIR "\"\n"                                                       \
	"renew_signal = \"\"\n"                                                                    \
	"svid_file_name = \"" INJECT_SPIRE_SVID "\"\n"                                             \
	"svid_key_file_name = \"" INJECT_SPIRE_KEY "\"\n"                                          \
	"svid_bundle_file_name = \"" INJECT_SPIRE_BUNDLE "\"\n"                                    \
	"daemon_mode = true\n"
/* Where the image keeps what the sidecar copies (Containerfile). */
#define INJECT_IMAGE_SHIM "/usr/local/lib/ldmesh/libldmesh.so"
#define INJECT_IMAGE_LAUNCHER "/usr/local/bin/ldmesh-run"
#define INJECT_ADMIN_PORT 4191
#define INJECT_LINK_PORT 15008
/* The sidecar's uid and gid: non-root, and the group csi-driver-spiffe
 * gives the key to (its fs-group attribute). */
#define INJECT_PROXY_UID 2102

#define INJECT_ANNOTATION "ldmesh.io/inject"
#define INJECT_CONF_PREFIX "config.ldmesh.io/"

struct inject_opts {
	const char *image; /* borrowed; the sidecar's image */
};

/*
 * Injects one Kubernetes object in place: the pod template of a Pod,
 * Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
 * Job or CronJob, and each item of a List.  Anything else, an object
 * annotated `ldmesh.io/inject: disabled` and one already injected are left
 * as they are.  Notes for the user (a container whose command is not in
 * the spec, ...) are appended to notes as strings (borrowed array).
 *
 * Returns 1 when obj changed, 0 when not, -EINVAL (err filled, obj possibly
 * half changed: the caller drops it) when an annotation or the pod spec
 * cannot be injected, -ENOMEM.
 */
int inject_object(json_t *obj, const struct inject_opts *o, json_t *notes, char *err,
		  size_t errlen);

/* ---- inject_conf.c -------------------------------------------------- */

/* A pod's settings, from its config.ldmesh.io/ annotations. */
struct inject_conf {
	const char *mtls; /* strict | permissive | disable; borrowed from the tree or static */
	const char *policy_default; /* allow | deny */
	const char *log_level; /* error | warn | info | debug */
	const char *trust_domain;
	const char *io_backend; /* auto | io_uring | epoll */
	const char *mesh_networks; /* "10.0.0.0/8,fd00::/8" or NULL for the default */
	const char *skip_inbound; /* port list, or NULL */
	const char *skip_outbound; /* port list, or NULL */
	const char *skip_outbound_ips; /* CIDR list, or NULL */
	const char *opaque_ports; /* port list, or NULL */
	const char *identity; /* csi-driver-spiffe | spire */
	const char *spiffe_helper_image; /* with identity spire */
	const char *mesh_init; /* "*" or comma-separated init container names, or NULL */
	const char *cpu_request, *cpu_limit, *memory_request, *memory_limit;
};

/*
 * Reads and checks the config.ldmesh.io/ annotations of annotations (a
 * JSON object, or NULL).  Unknown config.ldmesh.io/ keys are errors, as in
 * the daemon's config, so a misspelt annotation is reported.
 */
int inject_conf_read(struct inject_conf *conf, const json_t *annotations, char *err, size_t errlen);

/* A port used by the kubelet's probes: plaintext must reach it. */
struct inject_probe {
	int port;
	char path[256]; /* "" for a TCP or gRPC probe */
};

/*
 * The pod's ldmeshd config (libconfig text, malloc'd, owned by the caller),
 * or NULL on allocation failure.  Probe ports become permissive (the
 * kubelet has no SVID), and with policy_default = deny get an allow rule
 * for unauthenticated callers on the probe's path.
 */
char *inject_conf_render(const struct inject_conf *conf, const struct inject_probe *probes,
			 size_t n_probes);

/* 1 when the pod's identity comes from SPIRE (config.ldmesh.io/identity). */
int inject_conf_spire(const struct inject_conf *conf);

/*
 * Parses a port list "22,8000-8100" (as LDMESH_EXCLUDE_PORTS): 0 or
 * -EINVAL with err filled.  With out, each port is also added to the JSON
 * array out (ranges expanded; at most 10000 ports).
 */
int inject_ports_parse(const char *s, json_t *out, char *err, size_t errlen);

#endif
