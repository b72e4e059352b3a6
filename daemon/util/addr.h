/* struct ldm_addr (include/ldmesh/proto.h) for logs and for socket calls. */
#ifndef LDMESH_UTIL_ADDR_H
#define LDMESH_UTIL_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "ldmesh/proto.h"

/* "10.1.2.3:80" or "[fd00::1]:80", "-" for no address. */
void addr_format(const struct ldm_addr *a, char *buf, size_t len);
int addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct ldm_addr *out);
/* The sockaddr of a's own family (no v4-mapping). */
socklen_t addr_to_sockaddr(const struct ldm_addr *a, struct sockaddr_storage *out);
/* a with an IPv4-mapped IPv6 address (::ffff:10.1.2.3) as IPv4. */
void addr_unmap(const struct ldm_addr *a, struct ldm_addr *out);
/* 1 when a and b are the same host, an IPv4-mapped IPv6 address being its
 * IPv4 one; ports are not compared. */
int addr_same_ip(const struct ldm_addr *a, const struct ldm_addr *b);

#endif
