/*
 * Writes the binary seed files of the handoff, preamble and tls_sniff
 * corpora from the real structs of include/ldmesh/proto.h (and a real
 * OpenSSL ClientHello), so that the seeds follow the wire format.  Run by
 * hand after a change to proto.h:
 *
 *   cc -Iinclude tests/fuzz/mkseeds.c -lssl -lcrypto -o /tmp/mkseeds
 *   /tmp/mkseeds tests/fuzz/corpus
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "ldmesh/proto.h"

static const char *root;

static void put(const char *dir, const char *name, const void *a, size_t alen, const void *b,
		size_t blen)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", root, dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen) ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static struct ldm_handoff header(enum ldm_op op)
{
	struct ldm_handoff h;

	memset(&h, 0, sizeof(h));
	h.magic = LDM_HANDOFF_MAGIC;
	h.version = LDM_PROTO_VERSION;
	h.op = op;
	h.len = sizeof(h);
	h.cookie = 0x1122334455667788ull;
	h.pid = 4242;
	h.addr.family = AF_INET;
	h.addr.port = htons(8080);
	inet_pton(AF_INET, "10.1.2.3", h.addr.addr);
	return h;
}

/* Byte 0 of a handoff seed picks the recv piece sizes. */
static void put_handoff(const char *name, unsigned char piece, const struct ldm_handoff *h,
			size_t len)
{
	unsigned char buf[1 + sizeof(*h)];

	buf[0] = piece;
	memcpy(buf + 1, h, len);
	put("handoff", name, buf, 1 + len, NULL, 0);
}

static void handoff_seeds(void)
{
	struct ldm_handoff h = header(LDM_OP_CONNECT);

	h.flags = LDM_HF_NONBLOCK;
	h.filler_len = LDM_FILLER_LEN;
	h.sndbuf = 212992;
	h.app_fd = 7;
	put_handoff("connect-v4", 31, &h, sizeof(h));
	h.addr.family = AF_INET6;
	inet_pton(AF_INET6, "fd00::1:2", h.addr.addr);
	h.addr.scope_id = 2;
	put_handoff("connect-v6", 0, &h, sizeof(h));
	h.filler_len = 65537;
	put_handoff("connect-filler-too-large", 7, &h, sizeof(h));
	h = header(LDM_OP_CONNECT);
	h.addr.port = 0;
	put_handoff("connect-port-0", 3, &h, sizeof(h));
	h = header(LDM_OP_LISTEN);
	h.backlog = 128;
	snprintf(h.listen_name, sizeof(h.listen_name), "ldmesh-l-%016llx", 0xabcdefull);
	put_handoff("listen", 12, &h, sizeof(h));
	memset(h.listen_name, 'x', sizeof(h.listen_name));
	put_handoff("listen-name-unterminated", 1, &h, sizeof(h));
	h = header(LDM_OP_QUERY);
	put_handoff("query", 5, &h, sizeof(h));
	h = header(LDM_OP_RESET);
	put_handoff("reset", 9, &h, sizeof(h));
	put_handoff("truncated", 2, &h, 20);
	h.op = 77;
	put_handoff("unknown-op", 0, &h, sizeof(h));
	h = header(LDM_OP_CONNECT);
	h.magic = 0xdeadbeef;
	put_handoff("bad-magic", 0, &h, sizeof(h));
	h = header(LDM_OP_CONNECT);
	h.version = 99;
	put_handoff("bad-version", 1, &h, sizeof(h));
	h = header(LDM_OP_CONNECT);
	h.len = 1u << 20;
	put_handoff("huge-length", 4, &h, sizeof(h));
}

static void preamble_seeds(void)
{
	static char id[LDM_PEER_ID_MAX + 1];
	struct ldm_preamble p;
	const char *sid = "spiffe://cluster.local/ns/shop/sa/payments";
	char both[2 * LDM_PEER_ID_MAX];

	memset(&p, 0, sizeof(p));
	p.magic = LDM_PREAMBLE_MAGIC;
	p.version = LDM_PROTO_VERSION;
	p.conn_id = 99;
	p.peer.family = AF_INET;
	p.peer.port = htons(40001);
	inet_pton(AF_INET, "10.0.0.7", p.peer.addr);
	p.local.family = AF_INET;
	p.local.port = htons(8080);
	inet_pton(AF_INET, "10.0.0.9", p.local.addr);
	p.id_len = (uint16_t)strlen(sid);
	snprintf(both, sizeof(both), "%sGET / HTTP/1.1\r\nHost: orders\r\n\r\n", sid);
	put("preamble", "v4-with-id-and-request", &p, sizeof(p), both, strlen(both));
	p.id_len = 0;
	p.peer.family = AF_INET6;
	inet_pton(AF_INET6, "fd00::7", p.peer.addr);
	p.local.family = AF_INET6;
	inet_pton(AF_INET6, "fd00::9", p.local.addr);
	put("preamble", "v6-plaintext-peer", &p, sizeof(p), NULL, 0);
	memset(id, 'a', sizeof(id));
	p.id_len = LDM_PEER_ID_MAX;
	put("preamble", "id-max", &p, sizeof(p), id, LDM_PEER_ID_MAX);
	p.id_len = LDM_PEER_ID_MAX + 1;
	put("preamble", "id-too-long", &p, sizeof(p), id, sizeof(id));
	p.id_len = 10;
	put("preamble", "id-short-read", &p, sizeof(p), "spiffe", 6);
	p.magic = LDM_HANDOFF_MAGIC;
	put("preamble", "wrong-magic", &p, sizeof(p), NULL, 0);
	p.magic = LDM_PREAMBLE_MAGIC;
	p.version = 2;
	put("preamble", "wrong-version", &p, sizeof(p), NULL, 0);
}

static void client_hello_seed(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	SSL *ssl = SSL_new(ctx);
	char buf[4096];
	int n;

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_set_bio(ssl, rb, wb);
	SSL_set_tlsext_host_name(ssl, "orders.shop.svc");
	SSL_connect(ssl);
	n = BIO_read(wb, buf, sizeof(buf));
	if (n <= 0) {
		fprintf(stderr, "no ClientHello\n");
		exit(1);
	}
	put("tls_sniff", "client-hello-tls13", buf, (size_t)n, NULL, 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 1;
	}
	root = argv[1];
	handoff_seeds();
	preamble_seeds();
	client_hello_seed();
	return 0;
}
