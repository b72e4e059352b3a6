/*
 * libFuzzer target for the X.509-SVID checks of a leaf (tls_check_svid in
 * daemon/identity/tls.c), which every peer certificate in both directions and our
 * own SVID on every reload go through.
 *
 * Input: a DER certificate.  Whenever the check says TLS_OK, the
 * certificate is read again here through other OpenSSL calls (the decoded
 * extensions, not the cached flags the check uses) and must be an
 * X.509-SVID leaf: exactly one URI SAN, spiffe://cluster.local/...;
 * basicConstraints absent or cA false; key usage present with
 * digitalSignature and without keyCertSign and cRLSign.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Idaemon \
 *     tests/fuzz/fuzz_svid.c daemon/identity/tls.c daemon/util/spiffe.c -lssl -lcrypto -o fuzz_svid
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ldmesh/common.h"
#include "identity/tls.h"

#include "fuzz_check.h"

#define TD "cluster.local"

static void check_is_svid_leaf(X509 *x)
{
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int uris = 0;

	CHECK(!bc || !bc->ca);
	CHECK(ku != NULL);
	CHECK(ASN1_BIT_STRING_get_bit(ku, 0)); /* digitalSignature */
	CHECK(!ASN1_BIT_STRING_get_bit(ku, 5)); /* keyCertSign */
	CHECK(!ASN1_BIT_STRING_get_bit(ku, 6)); /* cRLSign */
	CHECK(names != NULL);
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);

		if (gn->type == GEN_URI) {
			const ASN1_IA5STRING *u = gn->d.uniformResourceIdentifier;
			const char *want = "spiffe://" TD "/";

			uris++;
			CHECK(ASN1_STRING_length(u) > (int)strlen(want));
			CHECK(memcmp(ASN1_STRING_get0_data(u), want, strlen(want)) == 0);
		}
	}
	CHECK(uris == 1);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	GENERAL_NAMES_free(names);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	X509 *x = d2i_X509(NULL, &p, (long)size);
	char id[LDM_PEER_ID_MAX + 1];

	if (!x)
		return 0;
	if (tls_check_svid(x, TD, NULL, id, sizeof(id)) == TLS_OK) {
		check_is_svid_leaf(x);
		CHECK(strncmp(id, "spiffe://" TD "/", strlen("spiffe://" TD "/")) == 0);
	}
	X509_free(x);
	return 0;
}
