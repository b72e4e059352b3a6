/*
 * Unit tests for daemon/identity/tls.c.  The group setup builds a small PKI with the
 * OpenSSL 3 APIs in a mkdtemp directory: a CA for cluster.local, an
 * unrelated CA, and leaves covering every way an X.509-SVID can be wrong.
 * Then: tls_check_svid on each leaf, tls_ctx_new on good and bad
 * identities, and in-memory handshakes between two tls_conns (ciphertext
 * pumped by hand with tls_conn_out_take / tls_conn_feed), including the
 * reason each side reports when one refuses the other.
 *
 * Certificates that tls_ctx_new rightly refuses to load (no URI SAN, two
 * URI SANs) are presented by a raw OpenSSL client over memory BIOs, so the
 * server's verdict on them can still be tested.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "ldmesh/common.h"
#include "identity/tls.h"

#define TD "cluster.local"
#define ID_SERVER "spiffe://cluster.local/ns/default/sa/server"
#define ID_CLIENT "spiffe://cluster.local/ns/default/sa/client"
#define ID_OTHER_TD "spiffe://other.example/ns/default/sa/client"
#define DAY (24L * 3600)

/* ------------------------------------------------------------------ */
/* The test PKI                                                        */

enum leaf_id {
	L_SERVER, /* valid SVID, ID_SERVER */
	L_CLIENT, /* valid SVID, ID_CLIENT */
	L_NO_URI, /* DNS SAN only */
	L_TWO_URI, /* two URI SANs */
	L_OTHER_TD, /* ID_OTHER_TD, issued by our CA */
	L_EXPIRED, /* notAfter yesterday */
	L_NOT_YET, /* notBefore tomorrow */
	L_BAD_ID, /* URI SAN with a '..' segment */
	L_HTTPS_URI, /* URI SAN that is not spiffe:// */
	L_NUL_URI, /* URI SAN with an embedded NUL */
	L_LONG_URI, /* URI SAN longer than the ID limit */
	L_DNS_AND_URI, /* a DNS SAN beside one good URI SAN */
	L_NO_SAN, /* no subjectAltName extension at all */
	L_FOREIGN, /* ID_CLIENT, but issued by the unrelated CA */
	L_EXPIRED_SRV, /* ID_SERVER, expired */
	L_CA_LEAF, /* ID_CLIENT with basicConstraints cA:TRUE, signed by the CA */
	L_KU_CERTSIGN, /* ID_CLIENT, key usage digitalSignature,keyCertSign */
	L_KU_CRLSIGN, /* ID_CLIENT, key usage digitalSignature,cRLSign */
	L_KU_NO_DIGSIG, /* ID_CLIENT, key usage keyAgreement only */
	L_NO_KU, /* ID_CLIENT, no key usage extension */
	L_COUNT
};

struct leaf_spec {
	const char *name;
	int foreign; /* issued by CA 2 */
	long nb, na; /* validity, seconds from now */
	const char *san; /* X509V3 config string, or NULL */
	int raw_san; /* build the SAN by hand (NUL / long URI) */
	const char *bc, *ku; /* basicConstraints / keyUsage: NULL the leaf
			      * defaults, "" none */
};

static const struct leaf_spec leaf_specs[L_COUNT] = {
	[L_SERVER] = {"server", 0, -DAY, 30 * DAY, "URI:" ID_SERVER, 0},
	[L_CLIENT] = {"client", 0, -DAY, 30 * DAY, "URI:" ID_CLIENT, 0},
	[L_NO_URI] = {"no-uri", 0, -DAY, 30 * DAY, "DNS:client.cluster.local", 0},
	[L_TWO_URI] = {"two-uri", 0, -DAY, 30 * DAY,
		       "URI:" ID_CLIENT ",URI:spiffe://cluster.local/ns/default/sa/other", 0},
	[L_OTHER_TD] = {"other-td", 0, -DAY, 30 * DAY, "URI:" ID_OTHER_TD, 0},
	[L_EXPIRED] = {"expired", 0, -10 * DAY, -DAY, "URI:" ID_CLIENT, 0},
	[L_NOT_YET] = {"not-yet", 0, DAY, 30 * DAY, "URI:" ID_CLIENT, 0},
	[L_BAD_ID] = {"bad-id", 0, -DAY, 30 * DAY, "URI:spiffe://cluster.local/ns/../sa/x", 0},
	[L_HTTPS_URI] = {"https-uri", 0, -DAY, 30 * DAY, "URI:https://cluster.local/x", 0},
	[L_NUL_URI] = {"nul-uri", 0, -DAY, 30 * DAY, NULL, 1},
	[L_LONG_URI] = {"long-uri", 0, -DAY, 30 * DAY, NULL, 2},
	[L_DNS_AND_URI] = {"dns-and-uri", 0, -DAY, 30 * DAY,
			   "DNS:web.cluster.local,URI:" ID_CLIENT ",email:a@b.c", 0},
	[L_NO_SAN] = {"no-san", 0, -DAY, 30 * DAY, NULL, 0},
	[L_FOREIGN] = {"foreign", 1, -DAY, 30 * DAY, "URI:" ID_CLIENT, 0},
	[L_EXPIRED_SRV] = {"expired-server", 0, -10 * DAY, -DAY, "URI:" ID_SERVER, 0},
	[L_CA_LEAF] = {"ca-leaf", 0, -DAY, 30 * DAY, "URI:" ID_CLIENT, 0, "critical,CA:TRUE",
		       "critical,digitalSignature,keyCertSign,cRLSign"},
	[L_KU_CERTSIGN] = {"ku-certsign", 0, -DAY, 30 * DAY, "URI:" ID_CLIENT, 0, NULL,
			   "critical,digitalSignature,keyCertSign"},
	[L_KU_CRLSIGN] = {"ku-crlsign", 0, -DAY, 30 * DAY, "URI:" ID_CLIENT, 0, NULL,
			  "critical,digitalSignature,cRLSign"},
	[L_KU_NO_DIGSIG] = {"ku-no-digsig", 0, -DAY, 30 * DAY, "URI:" ID_CLIENT, 0, NULL,
			    "critical,keyAgreement"},
	[L_NO_KU] = {"no-ku", 0, -DAY, 30 * DAY, "URI:" ID_CLIENT, 0, NULL, ""},
};

struct leaf {
	EVP_PKEY *key;
	X509 *x509;
	char crt[256], keyf[256];
};

struct pki {
	char dir[64];
	EVP_PKEY *ca_key[2];
	X509 *ca[2];
	char bundle[2][256]; /* CA 1, CA 2 */
	char both_bundle[256];
	struct leaf leaf[L_COUNT];
	char files[64][256]; /* to unlink at teardown */
	int n_files;
	long serial;
};

static struct pki P;

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A URI SAN built by hand, so it can hold what a config string cannot. */
static void add_raw_uri_san(X509 *x, const char *data, int len)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	assert_true(gens && gn && s);
	assert_int_equal(ASN1_STRING_set(s, data, len), 1);
	GENERAL_NAME_set0_value(gn, GEN_URI, s);
	assert_true(sk_GENERAL_NAME_push(gens, gn) > 0);
	assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT),
			 1);
	GENERAL_NAMES_free(gens);
}

/* issuer == NULL: self-signed CA. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long nb,
		       long na, const char *san, int raw_san, const char *bc, const char *ku)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), ++P.serial), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na));
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
						    (const unsigned char *)"ldmesh unit tests", -1,
						    -1, 0),
			 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	if (!issuer) {
		add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(x, &v3, NID_subject_key_identifier, "hash");
	} else {
		if (!bc || bc[0]) {
			add_ext(x, &v3, NID_basic_constraints, bc ? bc : "critical,CA:FALSE");
		}
		if (!ku || ku[0]) {
			add_ext(x, &v3, NID_key_usage, ku ? ku : "critical,digitalSignature");
		}
		add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth");
		add_ext(x, &v3, NID_subject_key_identifier, "hash");
		add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	}
	if (san) {
		add_ext(x, &v3, NID_subject_alt_name, san);
	}
	if (raw_san == 1) {
		static const char nul_uri[] = "spiffe://cluster.local/ns/a\0.evil.example/x";
		add_raw_uri_san(x, nul_uri, (int)sizeof(nul_uri) - 1);
	} else if (raw_san == 2) {
		/* Valid characters throughout, 3000 bytes long. */
		char *u = malloc(3001);
		assert_non_null(u);
		strcpy(u, "spiffe://cluster.local/");
		memset(u + strlen(u), 'a', 3000 - strlen(u));
		u[3000] = '\0';
		add_raw_uri_san(x, u, 3000);
		free(u);
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static FILE *create_file(const char *name, mode_t mode, char *path, size_t len)
{
	int fd;
	FILE *f;

	assert_true(P.n_files < (int)ARRAY_SIZE(P.files));
	snprintf(path, len, "%s/%s", P.dir, name);
	snprintf(P.files[P.n_files++], sizeof(P.files[0]), "%s", path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	/* The umask must not decide what the key test sees. */
	assert_int_equal(fchmod(fd, mode), 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	return f;
}

static void write_cert(const char *name, X509 *const *xs, int n, char *path, size_t len)
{
	FILE *f = create_file(name, 0644, path, len);
	int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(PEM_write_X509(f, xs[i]), 1);
	}
	assert_int_equal(fclose(f), 0);
}

static void write_key(const char *name, EVP_PKEY *key, mode_t mode, char *path, size_t len)
{
	FILE *f = create_file(name, mode, path, len);

	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static int pki_setup(void **state)
{
	char name[128];
	int i;

	memset(&P, 0, sizeof(P));
	snprintf(P.dir, sizeof(P.dir), "/tmp/ldmesh-test-tls.XXXXXX");
	assert_non_null(mkdtemp(P.dir));

	for (i = 0; i < 2; i++) {
		P.ca_key[i] = EVP_EC_gen("P-256");
		assert_non_null(P.ca_key[i]);
		P.ca[i] = make_cert(P.ca_key[i], i ? "Unrelated CA" : "cluster.local CA", NULL,
				    NULL, -2 * DAY, 365 * DAY, NULL, 0, NULL, NULL);
		snprintf(name, sizeof(name), "bundle%d.pem", i + 1);
		write_cert(name, &P.ca[i], 1, P.bundle[i], sizeof(P.bundle[i]));
	}
	write_cert("both.pem", P.ca, 2, P.both_bundle, sizeof(P.both_bundle));

	for (i = 0; i < L_COUNT; i++) {
		const struct leaf_spec *s = &leaf_specs[i];
		struct leaf *l = &P.leaf[i];

		l->key = EVP_EC_gen("P-256");
		assert_non_null(l->key);
		l->x509 = make_cert(l->key, s->name, P.ca[s->foreign], P.ca_key[s->foreign], s->nb,
				    s->na, s->san, s->raw_san, s->bc, s->ku);
		snprintf(name, sizeof(name), "%s.crt", s->name);
		write_cert(name, &l->x509, 1, l->crt, sizeof(l->crt));
		snprintf(name, sizeof(name), "%s.key", s->name);
		write_key(name, l->key, 0600, l->keyf, sizeof(l->keyf));
	}
	return 0;
}

static int pki_teardown(void **state)
{
	int i;

	for (i = 0; i < P.n_files; i++) {
		unlink(P.files[i]);
	}
	rmdir(P.dir);
	for (i = 0; i < 2; i++) {
		X509_free(P.ca[i]);
		EVP_PKEY_free(P.ca_key[i]);
	}
	for (i = 0; i < L_COUNT; i++) {
		X509_free(P.leaf[i].x509);
		EVP_PKEY_free(P.leaf[i].key);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* tls_check_svid                                                      */

struct svid_case {
	const char *name;
	int leaf; /* -1: NULL certificate, -2: the CA itself */
	const char *td;
	const char *pin;
	enum tls_reason want;
	const char *want_id; /* what id must hold afterwards */
};

static const struct svid_case svid_cases[] = {
	{"valid", L_CLIENT, TD, NULL, TLS_OK, ID_CLIENT},
	{"valid, empty pin", L_CLIENT, TD, "", TLS_OK, ID_CLIENT},
	{"pin matches", L_SERVER, TD, ID_SERVER, TLS_OK, ID_SERVER},
	{"pin mismatch", L_SERVER, TD, ID_CLIENT, TLS_ID_MISMATCH, ID_SERVER},
	{"pin is a prefix", L_SERVER, TD, "spiffe://cluster.local/ns/default/sa/serv",
	 TLS_ID_MISMATCH, ID_SERVER},
	{"pin differs in case", L_SERVER, TD, "spiffe://cluster.local/ns/default/sa/SERVER",
	 TLS_ID_MISMATCH, ID_SERVER},
	{"no uri san", L_NO_URI, TD, NULL, TLS_NO_URI_SAN, ""},
	{"no san extension", L_NO_SAN, TD, NULL, TLS_NO_URI_SAN, ""},
	{"ca certificate", -2, TD, NULL, TLS_NO_URI_SAN, ""},
	{"two uri sans", L_TWO_URI, TD, NULL, TLS_MULTIPLE_URI_SAN, ""},
	{"other trust domain", L_OTHER_TD, TD, NULL, TLS_TRUST_DOMAIN, ID_OTHER_TD},
	{"other trust domain, pinned", L_OTHER_TD, TD, ID_OTHER_TD, TLS_TRUST_DOMAIN, ID_OTHER_TD},
	{"checked against its own domain", L_OTHER_TD, "other.example", NULL, TLS_OK, ID_OTHER_TD},
	{"td is a suffix", L_CLIENT, "local", NULL, TLS_TRUST_DOMAIN, ID_CLIENT},
	{"td is a prefix", L_CLIENT, "cluster.local.evil", NULL, TLS_TRUST_DOMAIN, ID_CLIENT},
	/* Validity dates are the chain verifier's business, not this check's. */
	{"expired", L_EXPIRED, TD, NULL, TLS_OK, ID_CLIENT},
	{"not yet valid", L_NOT_YET, TD, NULL, TLS_OK, ID_CLIENT},
	{"invalid spiffe id", L_BAD_ID, TD, NULL, TLS_BAD_SPIFFE_ID, ""},
	{"https uri", L_HTTPS_URI, TD, NULL, TLS_BAD_SPIFFE_ID, ""},
	{"embedded NUL", L_NUL_URI, TD, NULL, TLS_BAD_SPIFFE_ID, ""},
	{"embedded NUL, pinned to the prefix", L_NUL_URI, TD, "spiffe://cluster.local/ns/a",
	 TLS_BAD_SPIFFE_ID, ""},
	{"uri longer than the limit", L_LONG_URI, TD, NULL, TLS_BAD_SPIFFE_ID, ""},
	{"dns and email beside the uri", L_DNS_AND_URI, TD, NULL, TLS_OK, ID_CLIENT},
	{"foreign ca (not checked here)", L_FOREIGN, TD, NULL, TLS_OK, ID_CLIENT},
	{"no certificate", -1, TD, NULL, TLS_NO_PEER_CERT, ""},
	/* X.509-SVID: a leaf is no CA and signs nothing but handshakes. */
	{"ca:true leaf with the allowed id", L_CA_LEAF, TD, NULL, TLS_CA_AS_LEAF, ID_CLIENT},
	{"ca:true leaf, pinned to its id", L_CA_LEAF, TD, ID_CLIENT, TLS_CA_AS_LEAF, ID_CLIENT},
	{"keyCertSign", L_KU_CERTSIGN, TD, NULL, TLS_BAD_KEY_USAGE, ID_CLIENT},
	{"cRLSign", L_KU_CRLSIGN, TD, NULL, TLS_BAD_KEY_USAGE, ID_CLIENT},
	{"no digitalSignature", L_KU_NO_DIGSIG, TD, NULL, TLS_BAD_KEY_USAGE, ID_CLIENT},
	{"no key usage extension", L_NO_KU, TD, NULL, TLS_BAD_KEY_USAGE, ID_CLIENT},
};

static void test_check_svid_table(void **state)
{
	size_t i, fails = 0;

	for (i = 0; i < ARRAY_SIZE(svid_cases); i++) {
		const struct svid_case *tc = &svid_cases[i];
		X509 *x = tc->leaf == -1 ? NULL : tc->leaf == -2 ? P.ca[0] : P.leaf[tc->leaf].x509;
		char id[LDM_PEER_ID_MAX + 1];
		enum tls_reason r;

		memset(id, 'Z', sizeof(id));
		r = tls_check_svid(x, tc->td, tc->pin, id, sizeof(id));
		if (r != tc->want) {
			print_error("svid case '%s': %s, want %s\n", tc->name, tls_reason_name(r),
				    tls_reason_name(tc->want));
			fails++;
		}
		if (!memchr(id, '\0', sizeof(id)) || strcmp(id, tc->want_id)) {
			print_error("svid case '%s': id '%.80s', want '%s'\n", tc->name,
				    memchr(id, '\0', sizeof(id)) ? id : "(unterminated)",
				    tc->want_id);
			fails++;
		}
		/* No id buffer: same verdict. */
		if (tls_check_svid(x, tc->td, tc->pin, NULL, 0) != tc->want) {
			print_error("svid case '%s': differs with id == NULL\n", tc->name);
			fails++;
		}
	}
	assert_int_equal(fails, 0);
}

static void test_check_svid_small_id_buffer(void **state)
{
	char id[12];

	memset(id, 'Z', sizeof(id));
	assert_int_equal(tls_check_svid(P.leaf[L_CLIENT].x509, TD, NULL, id, sizeof(id)), TLS_OK);
	assert_int_equal(strlen(id), sizeof(id) - 1);
	assert_memory_equal(id, ID_CLIENT, sizeof(id) - 1);
}

static void test_reason_names(void **state)
{
	int i, j;

	for (i = 0; i < TLS_REASON_COUNT; i++) {
		const char *n = tls_reason_name((enum tls_reason)i);
		assert_non_null(n);
		assert_true(n[0] != '\0');
		for (j = 0; j < i; j++) {
			assert_string_not_equal(n, tls_reason_name((enum tls_reason)j));
		}
	}
	assert_string_equal(tls_reason_name(TLS_OK), "ok");
	assert_string_equal(tls_reason_name(TLS_REASON_COUNT), "protocol");
	assert_string_equal(tls_reason_name((enum tls_reason) - 1), "protocol");
}

/* ------------------------------------------------------------------ */
/* tls_ctx_new                                                         */

static char td_buf[] = TD;

static void fill_cfg(struct config *cfg, char *td, char *cert, char *key, char *bundle)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->trust_domain = td;
	cfg->cert = cert;
	cfg->key = key;
	cfg->bundle = bundle;
}

static struct tls_ctx *ctx_for(int leaf, char *bundle, char *td)
{
	struct config cfg;
	char err[512] = "";
	struct tls_ctx *t;

	fill_cfg(&cfg, td, P.leaf[leaf].crt, P.leaf[leaf].keyf, bundle);
	t = tls_ctx_new(&cfg, err, sizeof(err));
	if (!t) {
		print_error("tls_ctx_new(%s): %s\n", leaf_specs[leaf].name, err);
	}
	assert_non_null(t);
	return t;
}

static void test_ctx_new_valid(void **state)
{
	struct tls_ctx *t = ctx_for(L_SERVER, P.bundle[0], td_buf);
	const struct tls_svid_info *info = tls_ctx_info(t);
	time_t now = time(NULL);

	assert_string_equal(info->id, ID_SERVER);
	assert_true(info->serial[0] != '\0');
	assert_true(info->not_before < now && info->not_before > now - 2 * DAY);
	assert_true(info->not_after > now + 29 * DAY && info->not_after < now + 31 * DAY);
	assert_int_equal(info->n_roots, 1);
	assert_non_null(strstr(info->roots, "cluster.local CA"));
	tls_ctx_ref(t);
	tls_ctx_unref(t);
	tls_ctx_unref(t);
	tls_ctx_unref(NULL);

	/* Two roots in the bundle are both described. */
	t = ctx_for(L_SERVER, P.both_bundle, td_buf);
	assert_int_equal(tls_ctx_info(t)->n_roots, 2);
	assert_non_null(strstr(tls_ctx_info(t)->roots, "cluster.local CA"));
	assert_non_null(strstr(tls_ctx_info(t)->roots, "Unrelated CA"));
	tls_ctx_unref(t);

	/* An expired SVID loads (the caller logs it), with its dates. */
	t = ctx_for(L_EXPIRED, P.bundle[0], td_buf);
	assert_true(tls_ctx_info(t)->not_after < now);
	tls_ctx_unref(t);
}

static void test_ctx_new_key_mode(void **state)
{
	char path[256], err[512] = "";
	struct config cfg;
	mode_t modes[] = {0644, 0640, 0604, 0660};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(modes); i++) {
		char name[32];

		snprintf(name, sizeof(name), "loose-%04o.key", (unsigned)modes[i]);
		write_key(name, P.leaf[L_SERVER].key, modes[i], path, sizeof(path));
		fill_cfg(&cfg, td_buf, P.leaf[L_SERVER].crt, path, P.bundle[0]);
		err[0] = '\0';
		assert_null(tls_ctx_new(&cfg, err, sizeof(err)));
		print_message("mode %04o: %s\n", (unsigned)modes[i], err);
		assert_non_null(strstr(err, "group or others"));
		assert_non_null(strstr(err, "chmod 600"));
		assert_non_null(strstr(err, path));
	}

	/* 0400 is as private as 0600. */
	write_key("ro.key", P.leaf[L_SERVER].key, 0400, path, sizeof(path));
	fill_cfg(&cfg, td_buf, P.leaf[L_SERVER].crt, path, P.bundle[0]);
	tls_ctx_unref(tls_ctx_new(&cfg, err, sizeof(err)));
}

enum { F_NONE, F_MISSING_KEY, F_MISSING_CERT, F_EMPTY_BUNDLE, F_GARBAGE_CERT };

struct ctx_err_case {
	const char *name;
	int cert_leaf, key_leaf;
	int bundle; /* 0/1: P.bundle[i]; 2: missing file */
	int file; /* F_*: a file replaced by a bad one */
	const char *want[3];
};

static const struct ctx_err_case ctx_err_cases[] = {
	{"key does not match cert", L_SERVER, L_CLIENT, 0, F_NONE, {"identity.key", "match", NULL}},
	/* A user must learn the file is missing, not just "system lib". */
	{"missing bundle",
	 L_SERVER,
	 L_SERVER,
	 2,
	 F_NONE,
	 {"identity.bundle", "nope.pem", "No such file"}},
	{"missing key",
	 L_SERVER,
	 L_SERVER,
	 0,
	 F_MISSING_KEY,
	 {"private key", "nope.key", "No such file"}},
	{"missing cert",
	 L_SERVER,
	 L_SERVER,
	 0,
	 F_MISSING_CERT,
	 {"identity.cert", "nope.crt", "No such file"}},
	{"empty bundle",
	 L_SERVER,
	 L_SERVER,
	 0,
	 F_EMPTY_BUNDLE,
	 {"identity.bundle", "empty.pem", NULL}},
	{"cert file is not PEM",
	 L_SERVER,
	 L_SERVER,
	 0,
	 F_GARBAGE_CERT,
	 {"identity.cert", "garbage.crt", NULL}},
	{"cert without uri san",
	 L_NO_URI,
	 L_NO_URI,
	 0,
	 0,
	 {"not an X.509-SVID", "no-uri.crt", "cluster.local"}},
	{"cert with two uri sans", L_TWO_URI, L_TWO_URI, 0, 0, {"not an X.509-SVID", NULL}},
	{"cert with a bad id", L_BAD_ID, L_BAD_ID, 0, 0, {"not an X.509-SVID", NULL}},
	{"cert of another trust domain",
	 L_OTHER_TD,
	 L_OTHER_TD,
	 0,
	 0,
	 {"not an X.509-SVID", "trust domain cluster.local", NULL}},
	{"ca cert as identity", -2, -2, 0, 0, {"not an X.509-SVID", NULL}},
};

static void test_ctx_new_errors(void **state)
{
	size_t i, j, fails = 0;
	char missing_bundle[300], missing_key[300], missing_crt[300], ca_crt[256], ca_key[256];
	char empty[256], garbage[256];
	struct config cfg;
	X509 *cax = P.ca[0];
	FILE *f;

	snprintf(missing_bundle, sizeof(missing_bundle), "%s/nope.pem", P.dir);
	snprintf(missing_key, sizeof(missing_key), "%s/nope.key", P.dir);
	snprintf(missing_crt, sizeof(missing_crt), "%s/nope.crt", P.dir);
	write_cert("ca-as-leaf.crt", &cax, 1, ca_crt, sizeof(ca_crt));
	write_key("ca-as-leaf.key", P.ca_key[0], 0600, ca_key, sizeof(ca_key));
	f = create_file("empty.pem", 0644, empty, sizeof(empty));
	fclose(f);
	f = create_file("garbage.crt", 0644, garbage, sizeof(garbage));
	fputs("this is not a certificate\n", f);
	fclose(f);

	for (i = 0; i < ARRAY_SIZE(ctx_err_cases); i++) {
		const struct ctx_err_case *tc = &ctx_err_cases[i];
		char err[512];
		struct tls_ctx *t;

		fill_cfg(&cfg, td_buf, tc->cert_leaf == -2 ? ca_crt : P.leaf[tc->cert_leaf].crt,
			 tc->key_leaf == -2 ? ca_key : P.leaf[tc->key_leaf].keyf,
			 tc->bundle == 2 ? missing_bundle : P.bundle[tc->bundle]);
		if (tc->file == F_MISSING_KEY) {
			cfg.key = missing_key;
		} else if (tc->file == F_MISSING_CERT) {
			cfg.cert = missing_crt;
		} else if (tc->file == F_EMPTY_BUNDLE) {
			cfg.bundle = empty;
		} else if (tc->file == F_GARBAGE_CERT) {
			cfg.cert = garbage;
		}
		memset(err, 0, sizeof(err));
		t = tls_ctx_new(&cfg, err, sizeof(err));
		print_message("%s: %s\n", tc->name, err);
		if (t) {
			print_error("ctx case '%s': loaded\n", tc->name);
			tls_ctx_unref(t);
			fails++;
			continue;
		}
		if (!err[0] || strstr(err, "(null)")) {
			print_error("ctx case '%s': message '%s'\n", tc->name, err);
			fails++;
		}
		for (j = 0; j < ARRAY_SIZE(tc->want) && tc->want[j]; j++) {
			if (!strstr(err, tc->want[j])) {
				print_error("ctx case '%s': message '%s' lacks '%s'\n", tc->name,
					    err, tc->want[j]);
				fails++;
			}
		}
		assert_int_equal(ERR_peek_error(), 0); /* the queue is left clean */
	}

	/* No identity at all. */
	{
		char err[128] = "";
		fill_cfg(&cfg, td_buf, NULL, NULL, NULL);
		assert_null(tls_ctx_new(&cfg, err, sizeof(err)));
		assert_non_null(strstr(err, "no identity"));
	}
	assert_int_equal(fails, 0);
}

/* ------------------------------------------------------------------ */
/* In-memory handshakes                                                */

/* One side of a connection: a tls_conn, or a raw OpenSSL client for
 * certificates tls_ctx_new refuses to load. */
struct end {
	struct tls_conn *tc;
	int server, admitted; /* tls_conn ends: the server admits once */
	SSL_CTX *raw_ctx;
	SSL *ssl;
	BIO *wb; /* borrowed from ssl */
};

static size_t end_take(struct end *e, uint8_t *buf, size_t len)
{
	int r;

	if (e->tc) {
		return tls_conn_out_take(e->tc, buf, len);
	}
	r = BIO_read(e->wb, buf, (int)len);
	return r > 0 ? (size_t)r : 0;
}

static void end_feed(struct end *e, const uint8_t *buf, size_t len)
{
	if (e->tc) {
		assert_int_equal(tls_conn_feed(e->tc, buf, len), 0);
	} else {
		assert_int_equal(BIO_write(SSL_get_rbio(e->ssl), buf, (int)len), (int)len);
	}
}

static int end_handshake(struct end *e)
{
	int r, err;

	if (e->tc) {
		int rc = tls_conn_handshake(e->tc);
		/* A server admits its client (policy allowed): that sends the
		 * ticket the client waits for as its verdict. */
		if (rc == 1 && e->server && !e->admitted) {
			tls_conn_admit(e->tc);
			e->admitted = 1;
		}
		return rc;
	}
	r = SSL_do_handshake(e->ssl);
	if (r == 1) {
		return 1;
	}
	err = SSL_get_error(e->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		return 0;
	}
	ERR_clear_error();
	return -EPROTO;
}

/* Moves all pending ciphertext from one side to the other. */
static size_t pump(struct end *from, struct end *to)
{
	uint8_t buf[4096];
	size_t n, total = 0;

	while ((n = end_take(from, buf, sizeof(buf))) > 0) {
		end_feed(to, buf, n);
		total += n;
	}
	return total;
}

/* Drives both handshakes until neither side moves; bounded. */
static void drive(struct end *cl, struct end *sv, int *rc_cl, int *rc_sv)
{
	int i;

	*rc_cl = *rc_sv = 0;
	for (i = 0; i < 32; i++) {
		size_t moved = 0;

		if (*rc_cl == 0) {
			*rc_cl = end_handshake(cl);
		}
		moved += pump(cl, sv);
		if (*rc_sv == 0) {
			*rc_sv = end_handshake(sv);
		}
		moved += pump(sv, cl);
		if (!moved) {
			break;
		}
	}
	assert_true(i < 32);
}

static void end_tls(struct end *e, struct tls_ctx *ctx, int server, const char *pin,
		    const char *resume_key)
{
	memset(e, 0, sizeof(*e));
	e->tc = tls_conn_new(ctx, server, pin, resume_key);
	e->server = server;
	e->admitted = 0;
	assert_non_null(e->tc);
}

/* A raw OpenSSL TLS 1.3 client presenting leaf (or no certificate: -1),
 * verifying nothing: only the server's verdict matters here. */
static void end_raw_client(struct end *e, int leaf, int max_tls12)
{
	BIO *rb, *wb;

	memset(e, 0, sizeof(*e));
	e->raw_ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(e->raw_ctx);
	if (max_tls12) {
		SSL_CTX_set_max_proto_version(e->raw_ctx, TLS1_2_VERSION);
	} else {
		SSL_CTX_set_min_proto_version(e->raw_ctx, TLS1_3_VERSION);
	}
	SSL_CTX_set_verify(e->raw_ctx, SSL_VERIFY_NONE, NULL);
	if (leaf >= 0) {
		assert_int_equal(SSL_CTX_use_certificate(e->raw_ctx, P.leaf[leaf].x509), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(e->raw_ctx, P.leaf[leaf].key), 1);
	}
	e->ssl = SSL_new(e->raw_ctx);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	assert_true(e->ssl && rb && wb);
	BIO_set_mem_eof_return(rb, -1);
	SSL_set_bio(e->ssl, rb, wb);
	e->wb = wb;
	SSL_set_connect_state(e->ssl);
}

static void end_free(struct end *e)
{
	tls_conn_free(e->tc);
	SSL_free(e->ssl);
	SSL_CTX_free(e->raw_ctx);
	memset(e, 0, sizeof(*e));
}

/* Plaintext from either kind of end: > 0, 0 on close_notify, -EAGAIN, or
 * -EPROTO. */
static int end_read(struct end *e, void *buf, size_t len)
{
	int r, err;

	if (e->tc) {
		return tls_conn_read(e->tc, buf, len);
	}
	r = SSL_read(e->ssl, buf, (int)len);
	if (r > 0) {
		return r;
	}
	err = SSL_get_error(e->ssl, r);
	ERR_clear_error();
	return err == SSL_ERROR_ZERO_RETURN ? 0 : err == SSL_ERROR_WANT_READ ? -EAGAIN : -EPROTO;
}

/* Reads on a finished side until data, close or error; pumps first. */
static int read_after(struct end *from, struct end *to, void *buf, size_t len)
{
	pump(from, to);
	return tls_conn_read(to->tc, buf, len);
}

static void test_handshake_ok(void **state)
{
	struct tls_ctx *sctx = ctx_for(L_SERVER, P.bundle[0], td_buf);
	struct tls_ctx *cctx = ctx_for(L_CLIENT, P.bundle[0], td_buf);
	struct end cl, sv;
	int rc, rs, r, i;
	char buf[256];
	static uint8_t big[200000], got[200000];
	size_t have;

	end_tls(&cl, cctx, 0, NULL, NULL);
	end_tls(&sv, sctx, 1, NULL, NULL);
	/* The contexts stay alive through the connections' references. */
	tls_ctx_unref(sctx);
	tls_ctx_unref(cctx);
	assert_string_equal(tls_conn_peer_id(cl.tc), "");
	assert_int_equal(tls_conn_read(sv.tc, buf, sizeof(buf)), -EAGAIN);

	drive(&cl, &sv, &rc, &rs);
	assert_int_equal(rc, 1);
	assert_int_equal(rs, 1);
	assert_int_equal(tls_conn_reason(cl.tc), TLS_OK);
	assert_int_equal(tls_conn_reason(sv.tc), TLS_OK);
	assert_string_equal(tls_conn_peer_id(cl.tc), ID_SERVER);
	assert_string_equal(tls_conn_peer_id(sv.tc), ID_CLIENT);
	assert_string_equal(tls_conn_version(cl.tc), "TLSv1.3");
	assert_string_equal(tls_conn_version(sv.tc), "TLSv1.3");
	assert_int_equal(tls_conn_resumed(cl.tc), 0);
	assert_int_equal(tls_conn_resumed(sv.tc), 0);
	/* Done stays done. */
	assert_int_equal(tls_conn_handshake(cl.tc), 1);

	/* Client to server. */
	assert_int_equal(tls_conn_write(cl.tc, "hello, server", 13), 13);
	assert_true(tls_conn_out_pending(cl.tc) > 13); /* encrypted, with overhead */
	r = read_after(&cl, &sv, buf, sizeof(buf));
	assert_int_equal(r, 13);
	assert_memory_equal(buf, "hello, server", 13);
	assert_int_equal(tls_conn_read(sv.tc, buf, sizeof(buf)), -EAGAIN);

	/* Server to client, larger than one record (16 KiB). */
	for (i = 0; i < (int)sizeof(big); i++) {
		big[i] = (uint8_t)(i * 7 + 3);
	}
	assert_int_equal(tls_conn_write(sv.tc, big, sizeof(big)), (int)sizeof(big));
	pump(&sv, &cl);
	/* All the records that are in, in one call (not a record per call),
	 * up to the caller's buffer. */
	assert_int_equal(tls_conn_read(cl.tc, got, 40000), 40000);
	for (have = 40000; have < sizeof(got);) {
		r = tls_conn_read(cl.tc, got + have, sizeof(got) - have);
		assert_int_equal(r, (int)(sizeof(got) - have));
		have += (size_t)r;
	}
	assert_memory_equal(got, big, sizeof(big));
	assert_int_equal(tls_conn_read(cl.tc, buf, sizeof(buf)), -EAGAIN);

	/* close_notify from the client: a clean 0 on the server. */
	tls_conn_close_notify(cl.tc);
	assert_true(tls_conn_out_pending(cl.tc) > 0);
	assert_int_equal(read_after(&cl, &sv, buf, sizeof(buf)), 0);
	/* The server can still answer on its half, then close too. */
	assert_int_equal(tls_conn_write(sv.tc, "bye", 3), 3);
	tls_conn_close_notify(sv.tc);
	assert_int_equal(read_after(&sv, &cl, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "bye", 3);
	assert_int_equal(tls_conn_read(cl.tc, buf, sizeof(buf)), 0);

	end_free(&cl);
	end_free(&sv);
}

/* Ciphertext lent to the engine: read in place, and what is still unread
 * when the buffer is taken back is the engine's own copy. */
static void test_feed_borrowed(void **state)
{
	struct tls_ctx *sctx = ctx_for(L_SERVER, P.bundle[0], td_buf);
	struct tls_ctx *cctx = ctx_for(L_CLIENT, P.bundle[0], td_buf);
	static uint8_t big[40000], got[40000], ct[48000];
	struct end cl, sv;
	size_t n, have;
	int rc, rs, r, i;

	(void)state;
	end_tls(&cl, cctx, 0, NULL, NULL);
	end_tls(&sv, sctx, 1, NULL, NULL);
	tls_ctx_unref(sctx);
	tls_ctx_unref(cctx);
	drive(&cl, &sv, &rc, &rs);
	assert_int_equal(rc, 1);
	assert_int_equal(rs, 1);
	for (i = 0; i < (int)sizeof(big); i++) {
		big[i] = (uint8_t)(i * 13 + 1);
	}
	assert_int_equal(tls_conn_write(cl.tc, big, sizeof(big)), (int)sizeof(big));
	n = tls_conn_out_take(cl.tc, ct, sizeof(ct));
	assert_true(n > sizeof(big) && n < sizeof(ct));
	assert_int_equal(tls_conn_out_pending(cl.tc), 0);

	assert_int_equal(tls_conn_feed_borrowed(sv.tc, ct, n), 0);
	assert_int_equal(tls_conn_read(sv.tc, got, 1000), 1000);
	/* Taken back with records unread: they must survive the buffer. */
	assert_int_equal(tls_conn_unborrow(sv.tc), 0);
	memset(ct, 0, sizeof(ct));
	for (have = 1000; have < sizeof(got);) {
		r = tls_conn_read(sv.tc, got + have, sizeof(got) - have);
		assert_true(r > 0);
		have += (size_t)r;
	}
	assert_memory_equal(got, big, sizeof(big));
	assert_int_equal(tls_conn_read(sv.tc, got, sizeof(got)), -EAGAIN);

	/* Read to the end before it is taken back: nothing to copy, and the
	 * next ciphertext (copied or lent) reads as usual. */
	assert_int_equal(tls_conn_write(cl.tc, big, 5000), 5000);
	n = tls_conn_out_take(cl.tc, ct, sizeof(ct));
	assert_int_equal(tls_conn_feed_borrowed(sv.tc, ct, n), 0);
	assert_int_equal(tls_conn_read(sv.tc, got, sizeof(got)), 5000);
	assert_int_equal(tls_conn_unborrow(sv.tc), 0);
	memset(ct, 0, sizeof(ct));
	assert_int_equal(tls_conn_read(sv.tc, got, sizeof(got)), -EAGAIN);
	assert_int_equal(tls_conn_write(cl.tc, "after", 5), 5);
	n = tls_conn_out_take(cl.tc, ct, sizeof(ct));
	assert_int_equal(tls_conn_feed(sv.tc, ct, n), 0);
	assert_int_equal(tls_conn_read(sv.tc, got, sizeof(got)), 5);
	assert_memory_equal(got, "after", 5);

	end_free(&cl);
	end_free(&sv);
}

/* Records written straight into a lent buffer while they fit, the rest
 * kept in order for tls_conn_out_take(). */
static void test_out_direct(void **state)
{
	struct tls_ctx *sctx = ctx_for(L_SERVER, P.bundle[0], td_buf);
	struct tls_ctx *cctx = ctx_for(L_CLIENT, P.bundle[0], td_buf);
	static uint8_t big[40000], got[40000], ct[48000];
	static const size_t caps[] = {sizeof(ct), 20000, 1000};
	struct end cl, sv;
	size_t n, have, k;
	int rc, rs, r, i;

	(void)state;
	end_tls(&cl, cctx, 0, NULL, NULL);
	end_tls(&sv, sctx, 1, NULL, NULL);
	tls_ctx_unref(sctx);
	tls_ctx_unref(cctx);
	drive(&cl, &sv, &rc, &rs);
	assert_int_equal(rc, 1);
	assert_int_equal(rs, 1);
	for (i = 0; i < (int)sizeof(big); i++) {
		big[i] = (uint8_t)(i * 29 + 7);
	}
	for (k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
		assert_int_equal(tls_conn_out_pending(cl.tc), 0);
		tls_conn_out_direct(cl.tc, ct, caps[k]);
		assert_int_equal(tls_conn_write(cl.tc, big, sizeof(big)), (int)sizeof(big));
		n = tls_conn_out_direct_end(cl.tc);
		if (k == 0) {
			/* All three records fit: nothing left in the engine. */
			assert_true(n > sizeof(big));
			assert_int_equal(tls_conn_out_pending(cl.tc), 0);
		} else if (k == 1) {
			/* The first record fits, the others wait, in order. */
			assert_true(n > 16384 && n < 20000);
			assert_true(tls_conn_out_pending(cl.tc) > 0);
		} else {
			assert_int_equal(n, 0);
		}
		n += tls_conn_out_take(cl.tc, ct + n, sizeof(ct) - n);
		assert_int_equal(tls_conn_out_pending(cl.tc), 0);
		assert_int_equal(tls_conn_feed(sv.tc, ct, n), 0);
		for (have = 0; have < sizeof(got);) {
			r = tls_conn_read(sv.tc, got + have, sizeof(got) - have);
			assert_true(r > 0);
			have += (size_t)r;
		}
		assert_memory_equal(got, big, sizeof(big));
	}
	end_free(&cl);
	end_free(&sv);
}

static void test_handshake_pinned_ok(void **state)
{
	struct tls_ctx *sctx = ctx_for(L_SERVER, P.bundle[0], td_buf);
	struct tls_ctx *cctx = ctx_for(L_CLIENT, P.bundle[0], td_buf);
	struct end cl, sv;
	int rc, rs;

	end_tls(&cl, cctx, 0, ID_SERVER, NULL);
	end_tls(&sv, sctx, 1, NULL, NULL);
	drive(&cl, &sv, &rc, &rs);
	assert_int_equal(rc, 1);
	assert_int_equal(rs, 1);
	assert_string_equal(tls_conn_peer_id(cl.tc), ID_SERVER);
	end_free(&cl);
	end_free(&sv);
	tls_ctx_unref(sctx);
	tls_ctx_unref(cctx);
}

/* One connection with resume_key; returns whether it was resumed. */
static int resume_round(struct tls_ctx *cctx, struct tls_ctx *sctx, const char *key,
			const char *pin, int *rc_out, enum tls_reason *why)
{
	struct end cl, sv;
	int rc, rs, resumed;
	char buf[16];

	end_tls(&cl, cctx, 0, pin, key);
	end_tls(&sv, sctx, 1, NULL, NULL);
	drive(&cl, &sv, &rc, &rs);
	*rc_out = rc;
	*why = tls_conn_reason(cl.tc);
	resumed = tls_conn_resumed(cl.tc);
	if (rc == 1) {
		assert_int_equal(rs, 1);
		assert_int_equal(tls_conn_resumed(sv.tc), resumed);
		/* The ids hold on a resumed session too. */
		assert_string_equal(tls_conn_peer_id(cl.tc), ID_SERVER);
		assert_string_equal(tls_conn_peer_id(sv.tc), ID_CLIENT);
		/* Traffic makes the client read the server's session tickets. */
		assert_int_equal(tls_conn_write(sv.tc, "t", 1), 1);
		assert_int_equal(read_after(&sv, &cl, buf, sizeof(buf)), 1);
		/* A clean end, as the daemon does on the app's EOF.  (OpenSSL
		 * marks the session of an SSL freed without having sent
		 * close_notify as not resumable.) */
		tls_conn_close_notify(cl.tc);
		assert_int_equal(read_after(&cl, &sv, buf, sizeof(buf)), 0);
		tls_conn_close_notify(sv.tc);
		assert_int_equal(read_after(&sv, &cl, buf, sizeof(buf)), 0);
	}
	end_free(&cl);
	end_free(&sv);
	return resumed;
}

static void test_handshake_resume(void **state)
{
	struct tls_ctx *sctx = ctx_for(L_SERVER, P.bundle[0], td_buf);
	struct tls_ctx *cctx = ctx_for(L_CLIENT, P.bundle[0], td_buf);
	enum tls_reason why;
	int rc;

	assert_int_equal(resume_round(cctx, sctx, "10.0.0.1:443", NULL, &rc, &why), 0);
	assert_int_equal(rc, 1);
	assert_int_equal(resume_round(cctx, sctx, "10.0.0.1:443", NULL, &rc, &why), 1);
	assert_int_equal(rc, 1);
	/* Another key has no session. */
	assert_int_equal(resume_round(cctx, sctx, "10.0.0.2:443", NULL, &rc, &why), 0);
	assert_int_equal(rc, 1);
	/* No key: never resumed. */
	assert_int_equal(resume_round(cctx, sctx, NULL, NULL, &rc, &why), 0);
	assert_int_equal(rc, 1);
	/* The pin is checked on a resumed session as well. */
	assert_int_equal(resume_round(cctx, sctx, "10.0.0.1:443",
				      "spiffe://cluster.local/ns/default/sa/nope", &rc, &why),
			 1);
	assert_int_equal(rc, -EACCES);
	assert_int_equal(why, TLS_ID_MISMATCH);
	tls_ctx_unref(sctx);
	tls_ctx_unref(cctx);
}

/*
 * Handshake failures.  verifier: which side judges (0 client, 1 server);
 * want: its reason and return code.  refused: what the other side must
 * report; TLS_OK there means "no alert arrives": OpenSSL has nothing to
 * deliver, and the refused side only sees the connection end.
 */
struct fail_case {
	const char *name;
	int client_leaf, server_leaf;
	int client_raw; /* present client_leaf with a raw OpenSSL client;
				 * 2: one that speaks at most TLS 1.2 */
	int client_bundle; /* bundle index the client loads */
	const char *client_td; /* trust domain the client runs in */
	const char *pin; /* client's pin on the server */
	int verifier;
	enum tls_reason want;
	int want_rc;
	enum tls_reason refused; /* reason on the other side, when it is a tls_conn */
};

static const struct fail_case fail_cases[] = {
	{"client from the other CA", L_FOREIGN, L_SERVER, 0, 0, TD, NULL, 1, TLS_UNKNOWN_CA,
	 -EPROTO, TLS_PEER_ALERT},
	{"expired client", L_EXPIRED, L_SERVER, 0, 0, TD, NULL, 1, TLS_EXPIRED, -EPROTO,
	 TLS_PEER_ALERT},
	{"client not yet valid", L_NOT_YET, L_SERVER, 0, 0, TD, NULL, 1, TLS_NOT_YET_VALID, -EPROTO,
	 TLS_PEER_ALERT},
	{"client with two uri sans", L_TWO_URI, L_SERVER, 1, 0, TD, NULL, 1, TLS_MULTIPLE_URI_SAN,
	 -EPROTO, TLS_OK},
	{"client without uri san", L_NO_URI, L_SERVER, 1, 0, TD, NULL, 1, TLS_NO_URI_SAN, -EPROTO,
	 TLS_OK},
	{"client with a bad spiffe id", L_BAD_ID, L_SERVER, 1, 0, TD, NULL, 1, TLS_BAD_SPIFFE_ID,
	 -EPROTO, TLS_OK},
	{"client without certificate", -1, L_SERVER, 1, 0, TD, NULL, 1, TLS_NO_PEER_CERT, -EPROTO,
	 TLS_OK},
	{"client speaking only TLS 1.2", L_CLIENT, L_SERVER, 2, 0, TD, NULL, 1, TLS_PROTOCOL,
	 -EPROTO, TLS_OK},
	{"client from another trust domain", L_OTHER_TD, L_SERVER, 1, 0, TD, NULL, 1,
	 TLS_TRUST_DOMAIN, -EACCES, TLS_OK},
	/* The same peer as a tls_conn of its own domain: it judges our server
	 * first (during the handshake) and tells it with an alert. */
	{"mesh peer from another trust domain", L_OTHER_TD, L_SERVER, 0, 0, "other.example", NULL,
	 0, TLS_TRUST_DOMAIN, -EACCES, TLS_PEER_ALERT},
	{"client pinned to another server id", L_CLIENT, L_SERVER, 0, 0, TD,
	 "spiffe://cluster.local/ns/default/sa/nope", 0, TLS_ID_MISMATCH, -EACCES, TLS_PEER_ALERT},
	{"server from the other CA", L_CLIENT, L_FOREIGN, 0, 0, TD, NULL, 0, TLS_UNKNOWN_CA,
	 -EPROTO, TLS_PEER_ALERT},
	{"client trusts only the other CA", L_CLIENT, L_SERVER, 0, 1, TD, NULL, 0, TLS_UNKNOWN_CA,
	 -EPROTO, TLS_PEER_ALERT},
	{"expired server", L_CLIENT, L_EXPIRED_SRV, 0, 0, TD, NULL, 0, TLS_EXPIRED, -EPROTO,
	 TLS_PEER_ALERT},
};

/* check_refused: 0 the verifier's verdict; 1 the refused server's view;
 * 2 the refused client's view. */
static void run_fail_case(const struct fail_case *tc, size_t *fails, int check_refused)
{
	char td_client[64];
	struct tls_ctx *sctx = ctx_for(tc->server_leaf, P.bundle[0], td_buf), *cctx = NULL;
	struct end cl, sv, *judge, *judged;
	int rc, rs, r, got_rc;
	enum tls_reason why;
	char buf[64];

	snprintf(td_client, sizeof(td_client), "%s", tc->client_td);
	if (tc->client_raw) {
		end_raw_client(&cl, tc->client_leaf, tc->client_raw == 2);
	} else {
		cctx = ctx_for(tc->client_leaf, P.bundle[tc->client_bundle], td_client);
		end_tls(&cl, cctx, 0, tc->pin, NULL);
	}
	end_tls(&sv, sctx, 1, NULL, NULL);
	drive(&cl, &sv, &rc, &rs);
	judge = tc->verifier ? &sv : &cl;
	judged = tc->verifier ? &cl : &sv;
	got_rc = tc->verifier ? rs : rc;
	why = tls_conn_reason(judge->tc);

	if (!check_refused) {
		if (got_rc != tc->want_rc || why != tc->want) {
			print_error("'%s': %s side rc %d reason %s, want %d %s (%s)\n", tc->name,
				    tc->verifier ? "server" : "client", got_rc,
				    tls_reason_name(why), tc->want_rc, tls_reason_name(tc->want),
				    tls_conn_detail(judge->tc));
			(*fails)++;
		} else if (!tls_conn_detail(judge->tc)[0]) {
			print_error("'%s': no detail\n", tc->name);
			(*fails)++;
		} else {
			print_message("%-36s %s: %s\n", tc->name, tls_reason_name(why),
				      tls_conn_detail(judge->tc));
		}
		if (tc->want == TLS_ID_MISMATCH &&
		    (!strstr(tls_conn_detail(judge->tc), ID_SERVER) ||
		     !strstr(tls_conn_detail(judge->tc), tc->pin))) {
			print_error("'%s': detail '%s' lacks the ids\n", tc->name,
				    tls_conn_detail(judge->tc));
			(*fails)++;
		}
	} else if (check_refused == (tc->verifier ? 2 : 1) && strcmp(tc->client_td, TD) == 0) {
		/* The refused side (mutual refusals skipped): a failed
		 * handshake, or (TLS 1.3 client) a finished one whose first
		 * read meets the alert or the end. */
		int judged_rc = tc->verifier ? rc : rs;
		enum tls_reason jwhy = TLS_OK;
		const char *detail;

		r = judged_rc;
		if (judged_rc == 1) {
			pump(judge, judged);
			r = end_read(judged, buf, sizeof(buf));
		}
		if (judged->tc) {
			jwhy = tls_conn_reason(judged->tc);
			detail = tls_conn_detail(judged->tc);
		} else {
			detail = "raw OpenSSL client";
		}
		print_message("%-36s refused side: hs %d, then %d, reason %s (%s)\n", tc->name,
			      judged_rc, r, judged->tc ? tls_reason_name(jwhy) : "-", detail);
		if (r > 0 || r == -EAGAIN) {
			print_error("'%s': refused side does not see the refusal (%d)\n", tc->name,
				    r);
			(*fails)++;
		}
		if (judged->tc && tc->refused == TLS_PEER_ALERT &&
		    (r >= 0 || jwhy != TLS_PEER_ALERT)) {
			print_error("'%s': refused side got %d, reason %s; want an error with "
				    "reason %s\n",
				    tc->name, r, tls_reason_name(jwhy),
				    tls_reason_name(TLS_PEER_ALERT));
			(*fails)++;
		}
	}
	end_free(&cl);
	end_free(&sv);
	tls_ctx_unref(sctx);
	tls_ctx_unref(cctx);
}

static void test_handshake_failures(void **state)
{
	size_t i, fails = 0;

	for (i = 0; i < ARRAY_SIZE(fail_cases); i++) {
		run_fail_case(&fail_cases[i], &fails, 0);
	}
	assert_int_equal(fails, 0);
}

/* The client refused the server: the server is still in its handshake
 * when the alert arrives. */
static void test_handshake_refused_server(void **state)
{
	size_t i, fails = 0;

	for (i = 0; i < ARRAY_SIZE(fail_cases); i++) {
		run_fail_case(&fail_cases[i], &fails, 1);
	}
	assert_int_equal(fails, 0);
}

/* The server refused the client: in TLS 1.3 the client's handshake is over
 * by then (it sent Finished), so the alert arrives on its first read. */
static void test_handshake_refused_client(void **state)
{
	size_t i, fails = 0;

	for (i = 0; i < ARRAY_SIZE(fail_cases); i++) {
		run_fail_case(&fail_cases[i], &fails, 2);
	}
	assert_int_equal(fails, 0);
}

static void test_handshake_garbage(void **state)
{
	struct tls_ctx *sctx = ctx_for(L_SERVER, P.bundle[0], td_buf);
	struct tls_conn *sv = tls_conn_new(sctx, 1, NULL, NULL);
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	assert_non_null(sv);
	assert_int_equal(tls_conn_feed(sv, http, sizeof(http) - 1), 0);
	assert_int_equal(tls_conn_handshake(sv), -EPROTO);
	assert_int_equal(tls_conn_reason(sv), TLS_PROTOCOL);
	assert_true(tls_conn_detail(sv)[0] != '\0');
	tls_conn_free(sv);
	tls_ctx_unref(sctx);
	tls_conn_free(NULL);
}

/* ------------------------------------------------------------------ */
/* ClientHello sniffing                                                */

static void test_looks_like_client_hello(void **state)
{
	static const struct {
		const char *name;
		const uint8_t *b;
		size_t len;
		int want;
	} cases[] = {
		{"empty", (const uint8_t *)"", 0, 0},
		{"handshake byte alone", (const uint8_t *)"\x16", 1, 1},
		{"tls 1.0 record", (const uint8_t *)"\x16\x03\x01\x02\x00\x01", 6, 1},
		{"tls 1.2 record", (const uint8_t *)"\x16\x03\x03\x00\x10", 5, 1},
		{"wrong major", (const uint8_t *)"\x16\x02\x00", 3, 0},
		{"application data", (const uint8_t *)"\x17\x03\x03\x00\x10", 5, 0},
		{"alert", (const uint8_t *)"\x15\x03\x03\x00\x02", 5, 0},
		{"sslv2 hello", (const uint8_t *)"\x80\x2e\x01\x00\x02", 5, 0},
		{"http", (const uint8_t *)"GET / HTTP/1.1\r\n", 16, 0},
		{"ssh", (const uint8_t *)"SSH-2.0-OpenSSH_9.2\r\n", 21, 0},
		{"NUL", (const uint8_t *)"\0\0\0", 3, 0},
	};
	struct tls_ctx *cctx = ctx_for(L_CLIENT, P.bundle[0], td_buf);
	struct tls_conn *cl = tls_conn_new(cctx, 0, NULL, NULL);
	uint8_t hello[4096];
	size_t i, n;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		if (tls_looks_like_client_hello(cases[i].b, cases[i].len) != cases[i].want) {
			fail_msg("case '%s': want %d", cases[i].name, cases[i].want);
		}
	}
	/* What our own client sends first. */
	assert_non_null(cl);
	assert_int_equal(tls_conn_handshake(cl), 0);
	n = tls_conn_out_take(cl, hello, sizeof(hello));
	assert_true(n > 5);
	assert_int_equal(tls_looks_like_client_hello(hello, n), 1);
	assert_int_equal(tls_looks_like_client_hello(hello, 2), 1);
	tls_conn_free(cl);
	tls_ctx_unref(cctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_svid_table),
		cmocka_unit_test(test_check_svid_small_id_buffer),
		cmocka_unit_test(test_reason_names),
		cmocka_unit_test(test_ctx_new_valid),
		cmocka_unit_test(test_ctx_new_key_mode),
		cmocka_unit_test(test_ctx_new_errors),
		cmocka_unit_test(test_handshake_ok),
		cmocka_unit_test(test_handshake_pinned_ok),
		cmocka_unit_test(test_handshake_resume),
		cmocka_unit_test(test_handshake_failures),
		cmocka_unit_test(test_feed_borrowed),
		cmocka_unit_test(test_out_direct),
		cmocka_unit_test(test_handshake_refused_server),
		cmocka_unit_test(test_handshake_refused_client),
		cmocka_unit_test(test_handshake_garbage),
		cmocka_unit_test(test_looks_like_client_hello),
	};

	return cmocka_run_group_tests_name("tls", tests, pki_setup, pki_teardown);
}
