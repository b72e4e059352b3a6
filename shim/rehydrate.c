/*
 * A process that inherits a handed-off fd across exec (sshd re-executes
 * itself per connection) starts with an empty fd table.  The socket's
 * abstract name (see include/ldmesh/addrname.h) tells us what it is.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "ldmesh/addrname.h"
#include "shim.h"

/* Copies the abstract name of a Unix socket address, or "" if none. */
static void abstract_name(const struct sockaddr_un *sun, socklen_t len, char *out, size_t outlen)
{
	size_t off = offsetof(struct sockaddr_un, sun_path), n;

	out[0] = '\0';
	if (sun->sun_family != AF_UNIX || len <= off + 1 || sun->sun_path[0] != '\0') {
		return;
	}
	n = len - off - 1;
	if (n >= outlen) {
		n = outlen - 1;
	}
	memcpy(out, sun->sun_path + 1, n);
	out[n] = '\0';
}

struct managed *rehydrate(int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	char name[LDM_NAME_MAX + 1];
	struct ldm_addr peer, local;
	struct managed *m = NULL;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int n;

	if (!shim.active || real.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid() && cred.uid != shim.daemon_uid)) {
		return NULL;
	}
	if (real.getsockname(fd, (struct sockaddr *)&sun, &len) == 0) {
		abstract_name(&sun, len, name, sizeof(name));
		if (!strncmp(name, LDM_NAME_OUT, strlen(LDM_NAME_OUT))) {
			char *p = name + strlen(LDM_NAME_OUT), *dash = strchr(p, '-');
			if (!dash || addrname_get(dash + 1, &peer) < 0) {
				return NULL;
			}
			m = managed_new(MANAGED_CONN, peer.family);
			if (!m) {
				return NULL;
			}
			m->cookie = strtoull(p, NULL, 16);
			m->peer_len = shim_ldm_to_sockaddr(&peer, m->family, &m->peer);
			goto found;
		}
	}
	len = sizeof(sun);
	if (real.getpeername(fd, (struct sockaddr *)&sun, &len) == 0) {
		abstract_name(&sun, len, name, sizeof(name));
		if (!strncmp(name, LDM_NAME_IN, strlen(LDM_NAME_IN))) {
			char *p = strchr(name + strlen(LDM_NAME_IN), '-');
			if (!p || (n = addrname_get(p + 1, &peer)) < 0 || p[1 + n] != '-' ||
			    addrname_get(p + 2 + n, &local) < 0) {
				return NULL;
			}
			m = managed_new(MANAGED_CONN, peer.family);
			if (!m) {
				return NULL;
			}
			m->peer_len = shim_ldm_to_sockaddr(&peer, m->family, &m->peer);
			m->local_len = shim_ldm_to_sockaddr(&local, m->family, &m->local);
			goto found;
		}
	}
	return NULL;
found:
	fdtab_set(fd, m);
	return m;
}
