/*
 * Wire format between the shim (libldmesh.so) and the daemon (ldmeshd).
 *
 * Every shim request is one struct ldm_handoff sent on a fresh Unix stream
 * connection to <runtime_dir>/handoff.sock, with file descriptors attached as
 * SCM_RIGHTS.  The header is fixed-size and versioned: the daemon rejects a
 * wrong magic, an unknown version or a length it does not expect, logs why
 * and closes the connection.  All integers are in host byte order (both ends
 * run on the same machine) except ldm_addr.port, which is in network order
 * like sin_port.
 *
 * LDM_OP_CONNECT  fds: [app TCP socket, app end of this Unix connection].
 *   The daemon dials addr with the app's own socket.  The shim wrote
 *   filler_len bytes after the header with a small SO_SNDBUF, so the app's
 *   fd is not writable until the daemon reads them: POLLOUT on the app fd
 *   means "connected", exactly like a TCP socket.  On success the daemon
 *   discards the filler, restores SO_SNDBUF to sndbuf on the app end and
 *   proxies bytes.  On failure it closes without reading the filler, so the
 *   app's fd reports an error (POLLERR/POLLHUP); the shim then learns the
 *   precise errno with LDM_OP_QUERY.  Nothing is sent in-band.
 *
 * LDM_OP_LISTEN   fds: [app TCP listening socket].
 *   The daemon accepts on it and connects each accepted connection to the
 *   app's Unix listener at the abstract address "\0" listen_name, sending a
 *   struct ldm_preamble first.  The daemon answers with a struct
 *   ldm_status and keeps the connection open: its end-of-file means the
 *   app closed the listener.  A connection from inside the pod (loopback or
 *   the pod's own address) to a listener registered with
 *   LDM_HF_TAKES_SOCKET carries the accepted TCP socket itself as
 *   SCM_RIGHTS with its preamble (id_len 0) and nothing else: the app reads
 *   and writes the kernel socket, no proxy in between.  A listener id registered again (the shim
 *   re-registers after a daemon restart) replaces the old registration.
 *
 * LDM_OP_QUERY    no fds.  cookie names an earlier CONNECT.  The daemon
 *   answers a struct ldm_status: err is 0 while the connection is up (with
 *   its local address), the dial's -errno if it failed, -ENOENT if unknown.
 *
 * LDM_OP_RESET    no fds.  cookie names a live connection (an outbound
 *   CONNECT's cookie, or the conn_id of an inbound preamble).  The app set
 *   SO_LINGER {1, 0} and is closing: the daemon aborts the TCP side with a
 *   reset instead of a FIN, then answers a struct ldm_status.
 */
#ifndef LDMESH_PROTO_H
#define LDMESH_PROTO_H

#include <stdint.h>

#define LDM_HANDOFF_MAGIC 0x484d444cu /* "LDMH" little-endian */
#define LDM_STATUS_MAGIC 0x534d444cu /* "LDMS" */
#define LDM_PREAMBLE_MAGIC 0x504d444cu /* "LDMP" */
#define LDM_PROTO_VERSION 1

enum ldm_op {
	LDM_OP_CONNECT = 1,
	LDM_OP_LISTEN = 2,
	LDM_OP_QUERY = 3,
	LDM_OP_RESET = 4,
};

/* Handoff flags. */
#define LDM_HF_NONBLOCK 0x1u /* the app's socket was O_NONBLOCK */
/* LISTEN: the shim's accept() takes a TCP socket attached to a preamble. */
#define LDM_HF_TAKES_SOCKET 0x2u

/*
 * Bytes of filler the shim writes after a CONNECT header.  Header and filler
 * must fit in one skb of a Unix stream socket whose SO_SNDBUF is
 * LDM_PENDING_SNDBUF (the kernel doubles it and cuts a send into pieces of
 * at most sndbuf/2 - 64 bytes): one piece makes the send all or nothing, so
 * a daemon that refuses the dial and closes at once can never turn the
 * handoff into a half-sent EPIPE.  The piece's truesize still exceeds a
 * quarter of the doubled buffer, which keeps the app's fd unwritable.
 */
#define LDM_FILLER_LEN 3072u
/* SO_SNDBUF the shim sets on the app end while the dial is pending. */
#define LDM_PENDING_SNDBUF 4096

#define LDM_LISTEN_NAME_MAX 64
#define LDM_PEER_ID_MAX 2048

/* An IPv4 or IPv6 TCP address. */
struct ldm_addr {
	uint16_t family; /* AF_INET or AF_INET6 */
	uint16_t port; /* network byte order */
	uint32_t scope_id;
	uint8_t addr[16]; /* 4 bytes for AF_INET */
};

struct ldm_handoff {
	uint32_t magic; /* LDM_HANDOFF_MAGIC */
	uint16_t version; /* LDM_PROTO_VERSION */
	uint16_t op; /* enum ldm_op */
	uint32_t len; /* sizeof(struct ldm_handoff) */
	uint32_t flags; /* LDM_HF_* */
	uint64_t cookie; /* CONNECT/QUERY: connection id; LISTEN: listener id */
	uint32_t filler_len; /* CONNECT: filler bytes after the header */
	uint32_t sndbuf; /* CONNECT: SO_SNDBUF to restore on the app end */
	uint32_t pid; /* the app's pid, for logs and `ldmeshctl conns` */
	uint32_t backlog; /* LISTEN: the app's backlog */
	int32_t app_fd; /* CONNECT: the app's fd number (to reach it on a reset) */
	uint32_t reserved;
	struct ldm_addr addr; /* CONNECT: destination; LISTEN: bound address */
	char listen_name[LDM_LISTEN_NAME_MAX]; /* LISTEN: NUL-terminated */
};

struct ldm_status {
	uint32_t magic; /* LDM_STATUS_MAGIC */
	int32_t err; /* 0 or -errno */
	uint64_t cookie;
	struct ldm_addr local; /* QUERY: the TCP socket's local address */
	struct ldm_addr peer; /* QUERY: the TCP socket's peer address */
};

/*
 * Sent by the daemon on each connection to an app's Unix listener, before
 * any application byte.  id_len bytes of peer SPIFFE ID (not
 * NUL-terminated, 0 when the peer has none) follow the fixed part.
 */
struct ldm_preamble {
	uint32_t magic; /* LDM_PREAMBLE_MAGIC */
	uint16_t version; /* LDM_PROTO_VERSION */
	uint16_t id_len; /* <= LDM_PEER_ID_MAX */
	uint64_t conn_id; /* names the connection in LDM_OP_RESET */
	struct ldm_addr peer; /* the TCP client's address */
	struct ldm_addr local; /* the TCP address the client reached */
};

#endif
