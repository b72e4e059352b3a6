/*
 * libFuzzer target for tls_looks_like_client_hello (daemon/identity/tls.c): the
 * first bytes of an inbound TCP connection decide between the TLS
 * handshake and plaintext (permissive ports, refusal on strict ones).
 *
 * Input: the first bytes a client sends (one recv's worth).
 *
 * Checks, beyond "no crash, no sanitizer report":
 *  - the answer is 0 or 1 and agrees with the rule (a handshake record,
 *    type 22, TLS major version 3) on every prefix of the input, with each
 *    prefix in a heap copy of exactly its size: nothing past len is read;
 *  - it depends on the first two bytes only;
 *  - no plaintext protocol is taken for TLS: an input starting with a
 *    printable ASCII byte or whitespace (HTTP, SSH, SMTP, Redis...) is 0;
 *  - a real ClientHello made by OpenSSL (TLS 1.3, like the daemon's
 *    clients) is recognised from any prefix, however short the first read.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Idaemon \
 *     tests/fuzz/fuzz_tls_sniff.c daemon/identity/tls.c daemon/util/spiffe.c -lssl -lcrypto \
 *     -o fuzz_tls_sniff
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "identity/tls.h"

#include "fuzz_check.h"

static uint8_t hello[4096];
static size_t hello_len;

static int sniff(const uint8_t *in, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	CHECK(copy != NULL);
	memcpy(copy, in, len);
	r = tls_looks_like_client_hello(copy, len);
	free(copy);
	return r;
}

static int model(const uint8_t *in, size_t len)
{
	if (len == 0) {
		return 0;
	}
	return in[0] == 0x16 && (len == 1 || in[1] == 0x03);
}

/* The ClientHello an OpenSSL TLS 1.3 client sends first. */
static void make_hello(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	SSL *ssl;
	int n;

	CHECK(ctx && rb && wb);
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	ssl = SSL_new(ctx);
	CHECK(ssl != NULL);
	SSL_set_bio(ssl, rb, wb);
	SSL_set_tlsext_host_name(ssl, "orders.shop.svc");
	CHECK(SSL_connect(ssl) <= 0); /* wants to read the ServerHello */
	n = BIO_read(wb, hello, sizeof(hello));
	CHECK(n > 5);
	hello_len = (size_t)n;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t k;

	(void)argc;
	(void)argv;
	make_hello();
	for (k = 1; k <= hello_len; k++) {
		CHECK(sniff(hello, k) == 1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t two[2];
	size_t k, lim = size < 64 ? size : 64;
	int r = sniff(data, size);

	CHECK(r == 0 || r == 1);
	CHECK(r == model(data, size));
	for (k = 0; k <= lim; k++) {
		CHECK(sniff(data, k) == model(data, k));
	}
	if (size >= 2) {
		memcpy(two, data, 2);
		CHECK(sniff(two, 2) == r);
	}
	if (size >= 1 && ((data[0] >= 0x20 && data[0] < 0x7f) || data[0] == '\t' ||
			  data[0] == '\r' || data[0] == '\n')) {
		CHECK(r == 0);
	}
	/* The input as the rest of a real ClientHello's first read. */
	if (size >= 1 && size <= sizeof(hello)) {
		uint8_t buf[sizeof(hello)];
		size_t n = size < hello_len ? size : hello_len;

		memcpy(buf, hello, n);
		memcpy(buf + n, data, size - n);
		CHECK(sniff(buf, size) == 1);
	}
	return 0;
}
