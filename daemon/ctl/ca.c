/*
 * ldmeshctl's CA: SPIFFE ID checks, a P-256 root and X.509-SVIDs, all
 * through OpenSSL 3.  See ca.h for the contract.
 */
#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ldmesh/common.h"
#include "util/spiffe.h"

#define CA_CERT_FILE "ca.pem"
#define CA_KEY_FILE "ca-key.pem"
#define SVID_CERT_FILE "svid.pem"
#define SVID_KEY_FILE "svid-key.pem"
#define SVID_BUNDLE_FILE "bundle.pem"

/*
 * Both certificates start 5 minutes in the past so a peer whose clock is a
 * little behind ours does not reject a freshly issued SVID.
 */
#define CA_BACKDATE_S (5 * 60)

static void LDM_PRINTF(3, 4) set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/*
 * Appends OpenSSL's most specific reason to a message and empties its error
 * queue, so one failure becomes one sentence for the user.
 */
static void set_ssl_err(char *err, size_t len, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256] = "unknown OpenSSL error";

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	set_err(err, len, "%s: %s", what, reason);
}

/* ---- files ---------------------------------------------------------- */

static int join_path(char *buf, size_t size, const char *dir, const char *name, char *err,
		     size_t len)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size) {
		set_err(err, len, "path %s/%s is too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * Creates dir and any missing parents.  Only the last component gets 0700,
 * because it holds keys; parents are ordinary directories (0755).
 */
static int dir_ensure(const char *dir, char *err, size_t len)
{
	char buf[PATH_MAX];
	struct stat st;
	size_t n = strlen(dir);

	if (n == 0) {
		set_err(err, len, "directory name is empty");
		return -EINVAL;
	}
	if (n >= sizeof(buf)) {
		set_err(err, len, "directory name %s is too long", dir);
		return -ENAMETOOLONG;
	}
	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		set_err(err, len, "%s exists and is not a directory", dir);
		return -ENOTDIR;
	}
	memcpy(buf, dir, n + 1);
	for (char *s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
			int e = errno;

			set_err(err, len, "cannot create directory %s: %s", buf, strerror(e));
			return -e;
		}
		*s = '/';
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
		int e = errno;

		set_err(err, len, "cannot create directory %s: %s", dir, strerror(e));
		return -e;
	}
	return 0;
}

static int path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/*
 * Replaces dir/name with data in one rename(2), so a reader (a daemon
 * watching the directory) sees the old file or the new one, never a torn
 * one.  The temporary file is created 0600 and only then given mode, so a
 * key is never readable by others, not even for a moment.
 */
static int write_atomic(const char *dir, const char *name, mode_t mode, const char *data, size_t n,
			char *err, size_t len)
{
	char dst[PATH_MAX], tmp[PATH_MAX];
	int fd = -1, dfd, rc;
	size_t off = 0;

	rc = join_path(dst, sizeof(dst), dir, name, err, len);
	if (rc)
		return rc;
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= (int)sizeof(tmp)) {
		set_err(err, len, "path %s is too long", dst);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		set_err(err, len, "cannot create a file in %s: %s", dir, strerror(-rc));
		return rc;
	}
	if (fchmod(fd, mode) != 0) {
		rc = -errno;
		set_err(err, len, "cannot set the mode of %s: %s", tmp, strerror(-rc));
		goto err_unlink;
	}
	while (off < n) {
		ssize_t w = write(fd, data + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			set_err(err, len, "cannot write %s: %s", tmp, strerror(-rc));
			goto err_unlink;
		}
		off += (size_t)w;
	}
	/* Data first, then the name: after a crash the file is whole or old. */
	if (fsync(fd) != 0) {
		rc = -errno;
		set_err(err, len, "cannot write %s: %s", tmp, strerror(-rc));
		goto err_unlink;
	}
	rc = close(fd);
	fd = -1;
	if (rc != 0) {
		rc = -errno;
		set_err(err, len, "cannot write %s: %s", tmp, strerror(-rc));
		goto err_unlink;
	}
	if (rename(tmp, dst) != 0) {
		rc = -errno;
		set_err(err, len, "cannot replace %s: %s", dst, strerror(-rc));
		goto err_unlink;
	}
	/* Best effort: the rename itself is what readers rely on. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

/* ---- PEM ------------------------------------------------------------ */

/*
 * Encodes first (if not NULL) then every certificate of more (if not NULL)
 * as PEM and writes them atomically; both are borrowed.
 */
static int write_certs(const char *dir, const char *name, X509 *first, STACK_OF(X509) * more,
		       char *err, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long dlen;
	int rc = -ENOMEM;

	if (!b) {
		set_ssl_err(err, len, "cannot allocate a buffer");
		return -ENOMEM;
	}
	if (first && !PEM_write_bio_X509(b, first))
		goto err_encode;
	for (int i = 0; more && i < sk_X509_num(more); i++) {
		if (!PEM_write_bio_X509(b, sk_X509_value(more, i)))
			goto err_encode;
	}
	dlen = BIO_get_mem_data(b, &data);
	rc = write_atomic(dir, name, 0644, data, (size_t)dlen, err, len);
	BIO_free(b);
	return rc;

err_encode:
	set_ssl_err(err, len, "cannot encode a certificate");
	BIO_free(b);
	return rc;
}

/* PKCS#8 PEM, unencrypted: the daemon reads it unattended. */
static int write_key(const char *dir, const char *name, EVP_PKEY *key, char *err, size_t len)
{
	/* secmem: the buffer holding the key is wiped when freed. */
	BIO *b = BIO_new(BIO_s_secmem());
	char *data;
	long dlen;
	int rc;

	if (!b) {
		set_ssl_err(err, len, "cannot allocate a buffer");
		return -ENOMEM;
	}
	if (!PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
		set_ssl_err(err, len, "cannot encode the private key");
		rc = -ENOMEM;
		goto out;
	}
	dlen = BIO_get_mem_data(b, &data);
	rc = write_atomic(dir, name, 0600, data, (size_t)dlen, err, len);
out:
	BIO_free(b);
	return rc;
}

static void certs_free(STACK_OF(X509) * certs)
{
	sk_X509_pop_free(certs, X509_free);
}

/* Reads every certificate in a PEM file; at least one must be there. */
static STACK_OF(X509) * read_certs(const char *path, char *err, size_t len)
{
	STACK_OF(X509) *certs = NULL;
	BIO *b;
	X509 *x;
	unsigned long e;

	b = BIO_new_file(path, "r");
	if (!b) {
		int saved = errno;

		ERR_clear_error();
		set_err(err, len, "cannot read %s: %s%s", path, strerror(saved),
			saved == ENOENT ? " (run `ldmeshctl ca init` first)" : "");
		return NULL;
	}
	certs = sk_X509_new_null();
	if (!certs) {
		set_ssl_err(err, len, "cannot allocate");
		goto err_free;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			set_ssl_err(err, len, "cannot allocate");
			goto err_free;
		}
	}
	/* The loop ends with "no start line" at end of file; anything else is
	 * a damaged file. */
	e = ERR_peek_last_error();
	if (sk_X509_num(certs) == 0) {
		set_err(err, len, "%s holds no PEM certificate", path);
		ERR_clear_error();
		goto err_free;
	}
	if (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		char what[PATH_MAX + 32];

		snprintf(what, sizeof(what), "cannot parse %s", path);
		set_ssl_err(err, len, what);
		goto err_free;
	}
	ERR_clear_error();
	BIO_free(b);
	return certs;

err_free:
	certs_free(certs);
	BIO_free(b);
	return NULL;
}

static EVP_PKEY *read_key(const char *path, char *err, size_t len)
{
	EVP_PKEY *key;
	BIO *b = BIO_new_file(path, "r");

	if (!b) {
		int saved = errno;

		ERR_clear_error();
		set_err(err, len, "cannot read %s: %s", path, strerror(saved));
		return NULL;
	}
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	if (!key) {
		char what[PATH_MAX + 32];

		snprintf(what, sizeof(what), "cannot parse the key in %s", path);
		set_ssl_err(err, len, what);
	}
	BIO_free(b);
	return key;
}

/* ---- certificates --------------------------------------------------- */

static EVP_PKEY *key_new_p256(char *err, size_t len)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (!key)
		set_ssl_err(err, len, "cannot generate a P-256 key");
	return key;
}

/*
 * RFC 5280 wants serials unique per CA and positive; 128 random bits make a
 * collision negligible without keeping any state.  BN_bin2bn reads the bytes
 * as an unsigned number, so the DER INTEGER is positive (OpenSSL adds a
 * leading zero byte when the top bit is set).
 */
static int set_random_serial(X509 *x, char *err, size_t len)
{
	unsigned char raw[16];
	BIGNUM *bn = NULL;
	int rc = -EIO;

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		set_ssl_err(err, len, "cannot get random bytes for the serial");
		return -EIO;
	}
	raw[0] |= 0x01; /* never zero, which RFC 5280 forbids */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
		set_ssl_err(err, len, "cannot set the serial number");
		goto out;
	}
	rc = 0;
out:
	BN_free(bn);
	return rc;
}

/* value uses the openssl.cnf syntax; only fixed strings are passed here. */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, char *err, size_t len)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok;

	if (!ext) {
		char what[128];

		snprintf(what, sizeof(what), "cannot build %s", OBJ_nid2sn(nid));
		set_ssl_err(err, len, what);
		return -EINVAL;
	}
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ok) {
		set_ssl_err(err, len, "cannot add an extension");
		return -ENOMEM;
	}
	return 0;
}

/*
 * The URI SAN is built as a GENERAL_NAME, not from a config string, so no
 * character of the URI can be read as config syntax.
 */
static int add_uri_san(X509 *x, const char *uri, int critical, char *err, size_t len)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	int rc = -ENOMEM;

	if (!gens || !gn || !ia5 || !ASN1_STRING_set(ia5, uri, -1))
		goto err_free;
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL; /* owned by gn now */
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto err_free;
	gn = NULL; /* owned by gens now */
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical, X509V3_ADD_DEFAULT) != 1)
		goto err_free;
	rc = 0;
err_free:
	if (rc)
		set_ssl_err(err, len, "cannot add the URI SAN");
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return rc;
}

static void format_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (!buf || len == 0)
		return;
	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "?");
}

/*
 * The CA's trust domain comes from its URI SAN "spiffe://TD", which
 * `ca init` writes; that ties a bundle to one trust domain.
 */
static int ca_trust_domain(X509 *ca, const char *path, char *td, size_t td_size, char *err,
			   size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(ca, NID_subject_alt_name, NULL, NULL);
	int rc = -EINVAL;

	ERR_clear_error();
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *s;
		size_t n, tdn;

		if (gn->type != GEN_URI)
			continue;
		s = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
		n = (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		if (n <= SPIFFE_SCHEME_LEN || memcmp(s, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN))
			continue;
		s += SPIFFE_SCHEME_LEN;
		n -= SPIFFE_SCHEME_LEN;
		/* Tolerate a path, as some CAs write spiffe://TD/ for the root. */
		for (tdn = 0; tdn < n && s[tdn] != '/'; tdn++)
			;
		if (spiffe_td_check_n((const char *)s, tdn, err, len) != 0) {
			char why[256];

			snprintf(why, sizeof(why), "%s", err);
			set_err(err, len, "the URI SAN of %s is not a trust domain: %s", path, why);
			goto out;
		}
		if (tdn >= td_size) {
			set_err(err, len, "trust domain in %s is too long", path);
			goto out;
		}
		memcpy(td, s, tdn);
		td[tdn] = '\0';
		rc = 0;
		goto out;
	}
	set_err(err, len,
		"%s has no spiffe:// URI SAN, so its trust domain is unknown (make the "
		"CA with `ldmeshctl ca init`)",
		path);
out:
	GENERAL_NAMES_free(gens);
	return rc;
}

int ca_init(const struct ca_init_opts *o, char *not_after, size_t na_len, char *err, size_t len)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	char uri[SPIFFE_SCHEME_LEN + SPIFFE_TD_MAX + 1];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	X509V3_CTX ctx;
	int rc;

	rc = spiffe_trust_domain_check(o->trust_domain, err, len);
	if (rc)
		return rc;
	if (o->days < 1 || o->days > CA_DAYS_MAX) {
		set_err(err, len, "--days must be between 1 and %d", CA_DAYS_MAX);
		return -EINVAL;
	}
	rc = join_path(cert_path, sizeof(cert_path), o->dir, CA_CERT_FILE, err, len);
	if (!rc)
		rc = join_path(key_path, sizeof(key_path), o->dir, CA_KEY_FILE, err, len);
	if (rc)
		return rc;
	if (!o->force) {
		const char *found = path_exists(cert_path)  ? cert_path
				    : path_exists(key_path) ? key_path
							    : NULL;

		if (found) {
			set_err(err, len,
				"%s already exists; pass --force to replace the CA (every "
				"SVID it issued will stop verifying)",
				found);
			return -EEXIST;
		}
	}
	rc = dir_ensure(o->dir, err, len);
	if (rc)
		return rc;

	rc = -ENOMEM;
	key = key_new_p256(err, len);
	if (!key)
		goto out;
	x = X509_new();
	if (!x || !X509_set_version(x, X509_VERSION_3)) {
		set_ssl_err(err, len, "cannot allocate a certificate");
		goto out;
	}
	rc = set_random_serial(x, err, len);
	if (rc)
		goto out;
	rc = -ENOMEM;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -CA_BACKDATE_S) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), o->days, 0, NULL)) {
		set_ssl_err(err, len, "cannot set the validity");
		goto out;
	}
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)"ldmesh root CA", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
					(const unsigned char *)o->trust_domain, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key)) {
		set_ssl_err(err, len, "cannot set the subject");
		goto out;
	}

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	snprintf(uri, sizeof(uri), SPIFFE_SCHEME "%s", o->trust_domain);
	rc = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE", err, len);
	if (!rc)
		rc = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", err, len);
	if (!rc)
		rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash", err, len);
	if (!rc)
		rc = add_uri_san(x, uri, 0, err, len);
	if (rc)
		goto out;
	if (!X509_sign(x, key, EVP_sha256())) {
		set_ssl_err(err, len, "cannot sign the CA certificate");
		rc = -EIO;
		goto out;
	}

	/* Key first: a ca.pem present means its key is there too. */
	rc = write_key(o->dir, CA_KEY_FILE, key, err, len);
	if (!rc)
		rc = write_certs(o->dir, CA_CERT_FILE, x, NULL, err, len);
	if (!rc)
		format_time(X509_get0_notAfter(x), not_after, na_len);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* Ed25519/Ed448 sign without a separate digest; everything else SHA-256. */
static const EVP_MD *sign_md(EVP_PKEY *key)
{
	int id = EVP_PKEY_get_id(key);

	return (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? NULL : EVP_sha256();
}

int ca_issue(const struct ca_issue_opts *o, char *not_after, size_t na_len, char *err, size_t len)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	char ca_td[SPIFFE_TD_MAX + 1];
	struct spiffe_id sid;
	STACK_OF(X509) *roots = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	X509 *ca, *x = NULL;
	X509V3_CTX ctx;
	int rc;

	rc = spiffe_id_parse(o->id, &sid, err, len);
	if (rc)
		return rc;
	if (o->hours < 1 || o->hours > CA_HOURS_MAX) {
		set_err(err, len, "--hours must be between 1 and %d", CA_HOURS_MAX);
		return -EINVAL;
	}
	rc = join_path(cert_path, sizeof(cert_path), o->dir, CA_CERT_FILE, err, len);
	if (!rc)
		rc = join_path(key_path, sizeof(key_path), o->dir, CA_KEY_FILE, err, len);
	if (rc)
		return rc;

	rc = -EINVAL;
	roots = read_certs(cert_path, err, len);
	if (!roots)
		goto out;
	ca = sk_X509_value(roots, 0);
	ca_key = read_key(key_path, err, len);
	if (!ca_key)
		goto out;
	if (X509_check_private_key(ca, ca_key) != 1) {
		ERR_clear_error();
		set_err(err, len, "%s does not belong to the first certificate in %s", key_path,
			cert_path);
		goto out;
	}
	if (X509_check_ca(ca) == 0) {
		set_err(err, len, "the first certificate in %s is not a CA", cert_path);
		goto out;
	}
	rc = ca_trust_domain(ca, cert_path, ca_td, sizeof(ca_td), err, len);
	if (rc)
		goto out;
	if (strcmp(ca_td, sid.trust_domain) != 0) {
		set_err(err, len,
			"SPIFFE ID is in trust domain \"%s\" but the CA in %s is for "
			"\"%s\"",
			sid.trust_domain, o->dir, ca_td);
		rc = -EINVAL;
		goto out;
	}

	rc = -ENOMEM;
	key = key_new_p256(err, len);
	if (!key)
		goto out;
	x = X509_new();
	if (!x || !X509_set_version(x, X509_VERSION_3)) {
		set_ssl_err(err, len, "cannot allocate a certificate");
		goto out;
	}
	rc = set_random_serial(x, err, len);
	if (rc)
		goto out;
	rc = -ENOMEM;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -CA_BACKDATE_S) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)o->hours * 3600)) {
		set_ssl_err(err, len, "cannot set the validity");
		goto out;
	}
	/* A leaf outliving its issuer would stop verifying before its time. */
	if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0) {
		char ca_end[64];

		format_time(X509_get0_notAfter(ca), ca_end, sizeof(ca_end));
		set_err(err, len,
			"the SVID would outlive the CA, which expires %s; use a smaller "
			"--hours or make a new CA",
			ca_end);
		rc = -EINVAL;
		goto out;
	}
	/*
	 * The subject stays empty: the SPIFFE ID lives in the URI SAN only, so
	 * nothing can match on a second, diverging copy of it.
	 */
	if (!X509_set_issuer_name(x, X509_get_subject_name(ca)) || !X509_set_pubkey(x, key)) {
		set_ssl_err(err, len, "cannot set the issuer");
		goto out;
	}

	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	rc = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE", err, len);
	if (!rc)
		rc = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyAgreement", err,
			     len);
	if (!rc)
		rc = add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth", err, len);
	if (!rc)
		rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash", err, len);
	if (!rc)
		rc = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err, len);
	/* RFC 5280 4.2.1.6: with an empty subject the SAN must be critical. */
	if (!rc)
		rc = add_uri_san(x, o->id, 1, err, len);
	if (rc)
		goto out;
	if (!X509_sign(x, ca_key, sign_md(ca_key))) {
		set_ssl_err(err, len, "cannot sign the SVID");
		rc = -EIO;
		goto out;
	}

	rc = dir_ensure(o->out, err, len);
	if (rc)
		goto out;
	/*
	 * Bundle, key, then certificate: whoever reloads on svid.pem finds the
	 * trust bundle and the matching key already in place.
	 */
	rc = write_certs(o->out, SVID_BUNDLE_FILE, NULL, roots, err, len);
	if (!rc)
		rc = write_key(o->out, SVID_KEY_FILE, key, err, len);
	if (!rc)
		rc = write_certs(o->out, SVID_CERT_FILE, x, NULL, err, len);
	if (!rc)
		format_time(X509_get0_notAfter(x), not_after, na_len);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	certs_free(roots);
	return rc;
}
