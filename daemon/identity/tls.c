/*
 * TLS 1.3 with SPIFFE identities over OpenSSL memory BIOs.  See tls.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config/config.h"
#include "util/spiffe.h"
#include "identity/tls.h"

#define RESUME_SLOTS 1024

struct resume_slot {
	char key[64];
	SSL_SESSION *sess; /* owned */
};

struct tls_ctx {
	atomic_int refs; /* every event loop's connections hold references */
	/* The resumption slots are shared by the loops: a handshake takes the
	 * lock for a slot look-up or a new ticket, never the data path. */
	pthread_mutex_t resume_lock;
	SSL_CTX *server, *client; /* owned */
	char trust_domain[256];
	struct tls_svid_info info;
	struct resume_slot resume[RESUME_SLOTS];
};

/* Bytes waiting to be taken: p[off..len) (owned, cap allocated). */
struct byteq {
	char *p;
	size_t off, len, cap;
};

static size_t byteq_unread(const struct byteq *q)
{
	return q->len - q->off;
}

/* Appends n bytes.  0 or -ENOMEM (then nothing changed). */
static int byteq_append(struct byteq *q, const void *buf, size_t n)
{
	if (q->off == q->len) {
		q->off = q->len = 0;
	}
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 4096;
		char *p;
		if (q->off) { /* taken from the front: move the rest down */
			memmove(q->p, q->p + q->off, q->len - q->off);
			q->len -= q->off;
			q->off = 0;
		}
		while (cap < q->len + n) {
			cap *= 2;
		}
		if (cap != q->cap) {
			p = realloc(q->p, cap);
			if (!p) {
				return -ENOMEM;
			}
			q->p = p;
			q->cap = cap;
		}
	}
	memcpy(q->p + q->len, buf, n);
	q->len += n;
	return 0;
}

/* Takes up to n bytes into buf; returns how many. */
static size_t byteq_take(struct byteq *q, void *buf, size_t n)
{
	if (n > q->len - q->off) {
		n = q->len - q->off;
	}
	memcpy(buf, q->p + q->off, n);
	q->off += n;
	return n;
}

static void byteq_free(struct byteq *q)
{
	free(q->p);
	memset(q, 0, sizeof(*q));
}

struct tls_conn {
	SSL *ssl; /* owned; owns its two BIOs (in_method, out_method) */
	struct tls_ctx *ctx; /* reference */
	int server;
	int done;
	int finished; /* client: our Finished is sent; awaiting the verdict */
	int ticket_seen; /* client: the server sent a session ticket */
	enum tls_reason reason;
	char detail[320];
	char *pin; /* owned, NULL: no pinned identity */
	char *peer_id; /* owned, NULL until the peer's SVID was read */
	char resume_key[64];
	int h2; /* a link between daemons: ALPN h2 only */
	/* The end of input (0, or -errno) met after plaintext that
	 * tls_conn_read() returned first: returned at the next call. */
	int read_end_due, read_end;
	unsigned records; /* reads and writes since the last trim, up to TLS_BUSY */
	/* What the engine reads (its read BIO is ours, in_method): the
	 * caller's buffer lent by tls_conn_feed_borrowed(), lent_off..lent_len
	 * unread; or bytes copied into inb.  Never
	 * both: a feed while lent bytes are unread copies them first. */
	const char *lent;
	size_t lent_off, lent_len;
	struct byteq inb;
	/* What the engine wrote (wbio is ours, out_method): straight into the
	 * caller's buffer while tls_conn_out_direct() lends one and nothing
	 * waits here, else into ovf. */
	char *direct;
	size_t direct_cap, direct_len;
	struct byteq ovf;
};

static int conn_index = -1; /* SSL ex_data slot for struct tls_conn */
/* The engine's BIOs (in_read, out_write): made once, with conn_index, by
 * the first tls_ctx_new() (at start-up, before any loop runs); then read
 * only. */
static BIO_METHOD *in_method, *out_method;

/* ---- the engine's input ------------------------------------------------- */

/*
 * A memory BIO costs two passes over every byte fed to it (zeroing the
 * room, the copy in) before the engine copies the record out again, and a
 * read-only memory BIO over a lent buffer costs five allocations per read.
 * This BIO reads the lent buffer in place, or the bytes a feed copied.
 */
static size_t in_pending(const struct tls_conn *c)
{
	return c->lent_len - c->lent_off + byteq_unread(&c->inb);
}

static int in_read(BIO *b, char *data, int n)
{
	struct tls_conn *c = BIO_get_data(b);
	size_t want = n > 0 ? (size_t)n : 0, got;

	BIO_clear_retry_flags(b);
	if (c->lent_off < c->lent_len) {
		got = c->lent_len - c->lent_off < want ? c->lent_len - c->lent_off : want;
		memcpy(data, c->lent + c->lent_off, got);
		c->lent_off += got;
	} else if (byteq_unread(&c->inb)) {
		got = byteq_take(&c->inb, data, want);
	} else {
		BIO_set_retry_read(b); /* empty means "wait", not end of file */
		return -1;
	}
	return (int)got;
}

static long in_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *c = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_PENDING:
		return (long)in_pending(c);
	case BIO_CTRL_WPENDING:
		return 0;
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

/* Copies what is unread of a lent buffer into inb, and forgets the buffer.
 * 0 or -ENOMEM (then nothing changed). */
static int in_own(struct tls_conn *c)
{
	if (c->lent_off < c->lent_len &&
	    byteq_append(&c->inb, c->lent + c->lent_off, c->lent_len - c->lent_off) < 0) {
		return -ENOMEM;
	}
	c->lent = NULL;
	c->lent_off = c->lent_len = 0;
	return 0;
}

/* ---- the engine's output ------------------------------------------------ */

/*
 * A memory BIO costs three passes over every byte of ciphertext: zeroing
 * the room (BUF_MEM_grow_clean), the copy in, and the copy out to the
 * transport's buffer.  This BIO copies the records once, into the
 * transport's buffer when it lent one (a chunk being written), else into
 * a plain buffer of ours (handshake flights, alerts, tickets).
 */
static size_t out_pending(const struct tls_conn *c)
{
	return byteq_unread(&c->ovf) + c->direct_len;
}

static int out_write(BIO *b, const char *data, int n)
{
	struct tls_conn *c = BIO_get_data(b);
	size_t len = n > 0 ? (size_t)n : 0;

	BIO_clear_retry_flags(b);
	if (!len) {
		return 0;
	}
	/* In order: the lent buffer only while nothing waits in ours. */
	if (c->direct && !byteq_unread(&c->ovf) && c->direct_len + len <= c->direct_cap) {
		memcpy(c->direct + c->direct_len, data, len);
		c->direct_len += len;
		return n;
	}
	return byteq_append(&c->ovf, data, len) < 0 ? -1 : n;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *c = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_PENDING:
	case BIO_CTRL_WPENDING:
		return (long)out_pending(c);
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static int bio_methods_init(void)
{
	BIO_METHOD *in, *out;

	if (out_method) {
		return 0;
	}
	in = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ldmesh in");
	out = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ldmesh out");
	if (!in || !out || !BIO_meth_set_read(in, in_read) || !BIO_meth_set_ctrl(in, in_ctrl) ||
	    !BIO_meth_set_write(out, out_write) || !BIO_meth_set_ctrl(out, out_ctrl)) {
		BIO_meth_free(in);
		BIO_meth_free(out);
		ERR_clear_error();
		return -ENOMEM;
	}
	in_method = in;
	out_method = out;
	return 0;
}

static BIO *conn_bio(struct tls_conn *c, const BIO_METHOD *method)
{
	BIO *b = BIO_new(method);

	if (b) {
		BIO_set_data(b, c);
		BIO_set_init(b, 1);
	}
	return b;
}

void tls_conn_out_direct(struct tls_conn *c, void *buf, size_t cap)
{
	c->direct = buf;
	c->direct_cap = cap;
	c->direct_len = 0;
}

size_t tls_conn_out_direct_end(struct tls_conn *c)
{
	size_t n = c->direct_len;

	c->direct = NULL;
	c->direct_cap = c->direct_len = 0;
	return n;
}

const char *tls_reason_name(enum tls_reason r)
{
	static const char *const names[] = {
		"ok",
		"unknown_ca",
		"expired",
		"not_yet_valid",
		"no_uri_san",
		"multiple_uri_san",
		"bad_spiffe_id",
		"ca_as_leaf",
		"bad_key_usage",
		"trust_domain_mismatch",
		"identity_mismatch",
		"no_peer_certificate",
		"peer_refused",
		"protocol",
	};
	return (unsigned)r < TLS_REASON_COUNT ? names[r] : "protocol";
}

int tls_looks_like_client_hello(const uint8_t *buf, size_t len)
{
	/* Handshake record (22), TLS major version 3. */
	return len >= 1 && buf[0] == 0x16 && (len < 2 || buf[1] == 0x03);
}

static void set_detail_ssl(struct tls_conn *c, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[120] = "";

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
	}
	ERR_clear_error();
	snprintf(c->detail, sizeof(c->detail), "%s%s%s", what, buf[0] ? ": " : "", buf);
}

enum tls_reason tls_check_svid(const void *x509, const char *trust_domain, const char *pin,
			       char *id, size_t idlen)
{
	GENERAL_NAMES *names;
	struct spiffe_id sid;
	const char *uri = NULL;
	int i, n, uris = 0, uri_len = 0;
	char buf[LDM_PEER_ID_MAX + 1];
	uint32_t ku;

	if (id && idlen) {
		id[0] = '\0';
	}
	if (!x509) {
		return TLS_NO_PEER_CERT;
	}
	names = X509_get_ext_d2i((X509 *)x509, NID_subject_alt_name, NULL, NULL);
	n = names ? sk_GENERAL_NAME_num(names) : 0;
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type == GEN_URI) {
			uris++;
			uri = (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
			uri_len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		}
	}
	if (uris != 1) {
		GENERAL_NAMES_free(names);
		return uris == 0 ? TLS_NO_URI_SAN : TLS_MULTIPLE_URI_SAN;
	}
	if (uri_len <= 0 || (size_t)uri_len >= sizeof(buf) || memchr(uri, '\0', (size_t)uri_len)) {
		GENERAL_NAMES_free(names);
		return TLS_BAD_SPIFFE_ID;
	}
	memcpy(buf, uri, (size_t)uri_len);
	buf[uri_len] = '\0';
	GENERAL_NAMES_free(names);
	if (spiffe_id_parse(buf, &sid, NULL, 0) < 0) {
		return TLS_BAD_SPIFFE_ID;
	}
	if (id && idlen) {
		snprintf(id, idlen, "%s", buf); /* kept to say who it was */
	}
	/* X.509-SVID section 4: a leaf MUST NOT be a CA, MUST carry key usage
	 * with digitalSignature, MUST NOT have keyCertSign or cRLSign.  The
	 * chain check alone accepts a CA certificate at depth 0. */
	ku = X509_get_key_usage((X509 *)x509);
	if (X509_get_extension_flags((X509 *)x509) & EXFLAG_CA) {
		return TLS_CA_AS_LEAF;
	}
	if (ku == UINT32_MAX || !(ku & KU_DIGITAL_SIGNATURE) ||
	    (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))) {
		return TLS_BAD_KEY_USAGE;
	}
	if (strcmp(sid.trust_domain, trust_domain)) {
		return TLS_TRUST_DOMAIN;
	}
	if (pin && pin[0] && strcmp(pin, buf)) {
		return TLS_ID_MISMATCH;
	}
	return TLS_OK;
}

/*
 * Chain errors become a reason.  At the leaf, the SPIFFE checks run here too
 * so that a refused peer gets a fatal alert and knows why; they run again
 * after the handshake for resumed sessions, where this is not called.
 */
/* Checks the peer's leaf; keeps its SPIFFE ID (sized to fit) for logs and
 * conns.  The ID is kept even when the check fails, to say who it was. */
static enum tls_reason check_peer(struct tls_conn *c, const void *x509)
{
	char id[LDM_PEER_ID_MAX + 1] = "";
	enum tls_reason why = tls_check_svid(x509, c->ctx->trust_domain, c->pin, id, sizeof(id));

	free(c->peer_id);
	c->peer_id = id[0] ? strdup(id) : NULL;
	return why;
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *c = ssl ? SSL_get_ex_data(ssl, conn_index) : NULL;
	enum tls_reason why;
	int err;

	if (!c) {
		return ok;
	}
	if (ok) {
		if (X509_STORE_CTX_get_error_depth(store) != 0) {
			return 1;
		}
		why = check_peer(c, X509_STORE_CTX_get_current_cert(store));
		if (why == TLS_OK) {
			return 1;
		}
		c->reason = why;
		if (why == TLS_ID_MISMATCH) {
			snprintf(c->detail, sizeof(c->detail), "peer is %.150s, expected %.150s",
				 tls_conn_peer_id(c), c->pin);
		} else {
			snprintf(c->detail, sizeof(c->detail), "peer certificate: %s%s%.200s",
				 tls_reason_name(why), c->peer_id ? ": " : "", tls_conn_peer_id(c));
		}
		X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	err = X509_STORE_CTX_get_error(store);
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		c->reason = TLS_EXPIRED;
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		c->reason = TLS_NOT_YET_VALID;
		break;
	default:
		c->reason = TLS_UNKNOWN_CA;
	}
	snprintf(c->detail, sizeof(c->detail), "certificate verify failed: %s",
		 X509_verify_cert_error_string(err));
	return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08" TLS_ALPN, h2[] = "\x02h2";
	const struct tls_conn *c = SSL_get_ex_data(ssl, conn_index);
	unsigned char *sel;

	(void)arg;
	/* A link port speaks HTTP/2 and nothing else. */
	if (c && c->h2) {
		if (SSL_select_next_proto(&sel, outlen, h2, sizeof(h2) - 1, in, inlen) ==
		    OPENSSL_NPN_NEGOTIATED) {
			*out = sel;
			return SSL_TLSEXT_ERR_OK;
		}
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	/* Meshed peers name our protocol; stock TLS clients (curl with an SVID)
	 * offer h2/http1.1 and get no ALPN, which they handle. */
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static struct resume_slot *resume_slot(struct tls_ctx *t, const char *key)
{
	unsigned long h = 5381;
	const char *p;

	for (p = key; *p; p++) {
		h = h * 33 + (unsigned char)*p;
	}
	return &t->resume[h % RESUME_SLOTS];
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *c = SSL_get_ex_data(ssl, conn_index);
	struct resume_slot *slot;

	if (!c) {
		return 0;
	}
	if (!c->resume_key[0]) {
		c->ticket_seen = 1;
		return 0;
	}
	/* A ticket from the server also confirms it accepted our certificate. */
	c->ticket_seen = 1;
	pthread_mutex_lock(&c->ctx->resume_lock);
	slot = resume_slot(c->ctx, c->resume_key);
	if (slot->sess) {
		SSL_SESSION_free(slot->sess);
	}
	snprintf(slot->key, sizeof(slot->key), "%s", c->resume_key);
	/* A copy: the live session turns unresumable if its connection ends
	 * without close_notify. */
	slot->sess = SSL_SESSION_dup(sess);
	pthread_mutex_unlock(&c->ctx->resume_lock);
	return 0;
}

static int key_file_private(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "private key %s: %s", path, strerror(errno));
		return -errno;
	}
	/* A key that root owns and lends read-only to this non-root daemon's
	 * group (0640 root:<our gid>) is what csi-driver-spiffe's fs-group and
	 * Kubernetes' fsGroup write; PostgreSQL takes ssl keys on the same rule. */
	if ((st.st_mode & 077) == 040 && st.st_uid == 0 && geteuid() != 0 &&
	    (st.st_gid == getegid() || group_member(st.st_gid)))
		return 0;
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "private key %s is readable by group or others (mode %04o); "
			 "refusing it: chmod 600 %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		return -EPERM;
	}
	return 0;
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
		return 0;
	}
	return timegm(&tm);
}

static void describe_roots(struct tls_ctx *t, const char *bundle)
{
	BIO *b = BIO_new_file(bundle, "r");
	X509 *x;
	size_t off = 0;

	t->info.n_roots = 0;
	t->info.roots[0] = '\0';
	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		char subj[160];
		X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
		if (off < sizeof(t->info.roots)) {
			struct tm tm;
			time_t na = asn1_to_time(X509_get0_notAfter(x));
			gmtime_r(&na, &tm);
			off += (size_t)snprintf(t->info.roots + off, sizeof(t->info.roots) - off,
						"%s%s (until %04d-%02d-%02d)", off ? "; " : "",
						subj, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
		}
		t->info.n_roots++;
		X509_free(x);
	}
	ERR_clear_error(); /* the loop ends on "no start line" */
	BIO_free(b);
}

/* OpenSSL's last queued error, in words, never NULL. */
static void ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = ERR_reason_error_string(e);

	if (ERR_SYSTEM_ERROR(e)) {
		r = strerror(ERR_GET_REASON(e));
	}
	snprintf(buf, len, "%s", r ? r : "unreadable or not PEM");
}

static int readable(const char *key, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
		return 0;
	}
	fclose(f);
	return 1;
}

static SSL_CTX *make_ctx(int server, const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	char why[160];

	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	/* TLS 1.3 only; no compression, no renegotiation (1.3 has neither). */
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Record buffers only while a record is in flight, until the
	 * connection proves busy (busy()); parked, it gives them back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set1_groups_list(ctx, "X25519:P-256");
	if (!readable("identity.cert", cfg->cert, err, errlen) ||
	    !readable("identity.key", cfg->key, err, errlen) ||
	    !readable("identity.bundle", cfg->bundle, err, errlen)) {
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "identity.cert %s: %s", cfg->cert, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "identity.key %s: %s", cfg->key, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "identity.key %s does not match identity.cert %s", cfg->key,
			 cfg->cert);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, cfg->bundle, NULL) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "identity.bundle %s: %s", cfg->bundle, why);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	if (server) {
		/* Tickets are sent by tls_conn_admit(), once policy admitted the
		 * client: a client takes a ticket as "accepted". */
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ldmesh", 6);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
							    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_ctx *tls_ctx_new(const struct config *cfg, char *err, size_t errlen)
{
	struct tls_ctx *t;
	X509 *leaf;

	if (!cfg->cert || !cfg->key || !cfg->bundle) {
		snprintf(err, errlen, "no identity configured");
		return NULL;
	}
	if (conn_index < 0) {
		conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	}
	if (bio_methods_init() < 0) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (key_file_private(cfg->key, err, errlen) < 0) {
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&t->refs, 1);
	pthread_mutex_init(&t->resume_lock, NULL);
	snprintf(t->trust_domain, sizeof(t->trust_domain), "%s", cfg->trust_domain);
	t->server = make_ctx(1, cfg, err, errlen);
	t->client = t->server ? make_ctx(0, cfg, err, errlen) : NULL;
	if (!t->client) {
		tls_ctx_unref(t);
		return NULL;
	}
	leaf = SSL_CTX_get0_certificate(t->server);
	if (tls_check_svid(leaf, t->trust_domain, NULL, t->info.id, sizeof(t->info.id)) != TLS_OK) {
		snprintf(err, errlen,
			 "identity.cert %s is not an X.509-SVID of trust domain %s "
			 "(exactly one URI SAN spiffe://%s/...)",
			 cfg->cert, t->trust_domain, t->trust_domain);
		tls_ctx_unref(t);
		return NULL;
	}
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
		char *hex = bn ? BN_bn2hex(bn) : NULL;
		snprintf(t->info.serial, sizeof(t->info.serial), "%s", hex ? hex : "?");
		OPENSSL_free(hex);
		BN_free(bn);
	}
	t->info.not_before = asn1_to_time(X509_get0_notBefore(leaf));
	t->info.not_after = asn1_to_time(X509_get0_notAfter(leaf));
	describe_roots(t, cfg->bundle);
	return t;
}

void tls_ctx_ref(struct tls_ctx *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void tls_ctx_unref(struct tls_ctx *t)
{
	int i;

	if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) > 1) {
		return;
	}
	for (i = 0; i < RESUME_SLOTS; i++) {
		SSL_SESSION_free(t->resume[i].sess);
	}
	pthread_mutex_destroy(&t->resume_lock);
	SSL_CTX_free(t->server);
	SSL_CTX_free(t->client);
	free(t);
}

const struct tls_svid_info *tls_ctx_info(const struct tls_ctx *t)
{
	return &t->info;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int server, const char *pin,
			      const char *resume_key)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	BIO *rbio, *wbio;

	if (!c) {
		return NULL;
	}
	c->ssl = SSL_new(server ? ctx->server : ctx->client);
	rbio = conn_bio(c, in_method);
	wbio = conn_bio(c, out_method);
	if (!c->ssl || !rbio || !wbio) {
		SSL_free(c->ssl);
		BIO_free(rbio);
		BIO_free(wbio);
		free(c);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_bio(c->ssl, rbio, wbio);
	SSL_set_ex_data(c->ssl, conn_index, c);
	c->ctx = ctx;
	tls_ctx_ref(ctx);
	c->server = server;
	if (pin) {
		c->pin = strdup(pin);
		if (!c->pin) {
			tls_conn_free(c);
			return NULL;
		}
	}
	if (server) {
		SSL_set_accept_state(c->ssl);
	} else {
		static const unsigned char alpn[] = "\x08" TLS_ALPN;
		SSL_set_connect_state(c->ssl);
		SSL_set_alpn_protos(c->ssl, alpn, sizeof(alpn) - 1);
		if (resume_key) {
			struct resume_slot *slot;
			SSL_SESSION *s = NULL;

			snprintf(c->resume_key, sizeof(c->resume_key), "%s", resume_key);
			pthread_mutex_lock(&ctx->resume_lock);
			slot = resume_slot(ctx, resume_key);
			if (slot->sess && !strcmp(slot->key, resume_key) &&
			    SSL_SESSION_is_resumable(slot->sess)) {
				/* Each connection resumes from its own copy: one that
				 * ends without close_notify marks its session
				 * unresumable, which must not spoil the slot. */
				s = SSL_SESSION_dup(slot->sess);
			}
			pthread_mutex_unlock(&ctx->resume_lock);
			if (s) {
				SSL_set_session(c->ssl, s);
				SSL_SESSION_free(s);
			}
		}
	}
	return c;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c) {
		return;
	}
	SSL_free(c->ssl);
	tls_ctx_unref(c->ctx);
	byteq_free(&c->inb);
	byteq_free(&c->ovf);
	free(c->pin);
	free(c->peer_id);
	free(c);
}

int tls_conn_use_h2(struct tls_conn *c)
{
	static const unsigned char h2[] = "\x02h2";

	c->h2 = 1;
	if (!c->server && SSL_set_alpn_protos(c->ssl, h2, sizeof(h2) - 1) != 0) {
		return -ENOMEM;
	}
	return 0;
}

int tls_conn_alpn_h2(const struct tls_conn *c)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(c->ssl, &p, &n);
	return n == 2 && !memcmp(p, "h2", 2);
}

int tls_conn_feed(struct tls_conn *c, const void *buf, size_t len)
{
	if (in_own(c) < 0) {
		return -ENOMEM;
	}
	return byteq_append(&c->inb, buf, len);
}

/* Lent only when nothing fed earlier is still unread; otherwise it is
 * tls_conn_feed(). */
int tls_conn_feed_borrowed(struct tls_conn *c, const void *buf, size_t len)
{
	if (in_pending(c) || !len) {
		return tls_conn_feed(c, buf, len);
	}
	c->lent = buf;
	c->lent_off = 0;
	c->lent_len = len;
	return 0;
}

int tls_conn_unborrow(struct tls_conn *c)
{
	return in_own(c);
}

static int fail(struct tls_conn *c, enum tls_reason r, const char *what)
{
	if (c->reason == TLS_OK) {
		c->reason = r;
	}
	if (!c->detail[0]) {
		set_detail_ssl(c, what);
	}
	ERR_clear_error();
	return c->reason == TLS_ID_MISMATCH || c->reason == TLS_TRUST_DOMAIN ? -EACCES : -EPROTO;
}

static int handshake_error(struct tls_conn *c)
{
	unsigned long e = ERR_peek_last_error();

	if (c->reason != TLS_OK) {
		return fail(c, c->reason, "handshake");
	}
	/* A received alert means the peer turned us down. */
	if (ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET) {
		return fail(c, TLS_PEER_ALERT, "peer refused the handshake");
	}
	if (ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		return fail(c, TLS_NO_PEER_CERT, "peer sent no certificate");
	}
	return fail(c, TLS_PROTOCOL, "handshake");
}

/*
 * In TLS 1.3 a client finishes before the server has judged its
 * certificate.  The server's verdict comes next: a session ticket (accepted),
 * application data (accepted) or an alert (refused).  Peek for it without
 * consuming application data, so a refusal is a failed dial, not a reset
 * after a successful connect().
 */
static int await_verdict(struct tls_conn *c)
{
	char b;
	int r, e;

	r = SSL_peek(c->ssl, &b, 1);
	if (r > 0 || c->ticket_seen) {
		return 1;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		return c->ticket_seen ? 1 : 0;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		/* close_notify before any ticket: an ldmesh server sends its
		 * tickets only once its policy admitted us, so this is a refusal
		 * (a stock server sends tickets at once). */
		snprintf(c->detail, sizeof(c->detail),
			 "the server closed before accepting us "
			 "(refused by its policy?)");
		return fail(c, TLS_PEER_ALERT, "");
	}
	return handshake_error(c);
}

int tls_conn_handshake(struct tls_conn *c)
{
	int r, e;
	enum tls_reason why;

	if (c->done) {
		return 1;
	}
	if (!c->finished) {
		r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				return 0;
			}
			return handshake_error(c);
		}
		why = check_peer(c, SSL_get0_peer_certificate(c->ssl));
		if (why != TLS_OK) {
			/* Only a resumed session gets here: verify_cb ran otherwise. */
			snprintf(c->detail, sizeof(c->detail), "peer certificate %s%s%.200s",
				 tls_reason_name(why), c->peer_id ? ": " : "", tls_conn_peer_id(c));
			c->reason = why;
			SSL_shutdown(c->ssl);
			return fail(c, why, "");
		}
		c->finished = 1;
	}
	if (!c->server) {
		r = await_verdict(c);
		if (r <= 0) {
			return r;
		}
	}
	c->done = 1;
	return 1;
}

void tls_conn_admit(struct tls_conn *c)
{
	/* One ticket for resumption; it goes out with the next handshake step. */
	if (SSL_new_session_ticket(c->ssl) == 1) {
		SSL_do_handshake(c->ssl);
	}
	ERR_clear_error();
}

int tls_conn_finished(const struct tls_conn *c)
{
	return c->finished;
}

void tls_conn_accept_verdict(struct tls_conn *c)
{
	if (c->finished) {
		c->done = 1;
	}
}

/* One SSL_read's failure as tls_conn_read() reports it. */
static int read_failed(struct tls_conn *c, int r)
{
	int e = SSL_get_error(c->ssl, r);

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		return -EAGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		return 0;
	}
	if (ERR_GET_REASON(ERR_peek_last_error()) >= SSL_AD_REASON_OFFSET && c->reason == TLS_OK) {
		c->reason = TLS_PEER_ALERT;
	}
	set_detail_ssl(c, "read");
	return -EPROTO;
}

/*
 * SSL_read gives one record (at most 16 KiB) per call: keep going while
 * records are in, so a bulk stream reaches the app in the caller's whole
 * buffer, one write there per buffer instead of one per record.
 */
/*
 * Releasing the record buffers after each record (SSL_MODE_RELEASE_BUFFERS)
 * costs two allocations per record; keeping them costs ~34 KiB for as long
 * as the connection lives, and freed later, in the middle of the heap, they
 * leave holes.  So a connection keeps them once it has moved TLS_BUSY
 * records (a keep-alive connection in use, a stream), until it is parked
 * (tls_conn_trim()); one that sets up and goes quiet never holds them.
 */
#define TLS_BUSY 16

static void busy(struct tls_conn *c)
{
	if (c->records < TLS_BUSY && ++c->records == TLS_BUSY) {
		SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	}
}

int tls_conn_read(struct tls_conn *c, void *buf, size_t len)
{
	size_t got = 0;
	int r;

	busy(c);
	if (c->read_end_due) {
		return c->read_end;
	}
	while (got < len) {
		r = SSL_read(c->ssl, (char *)buf + got, (int)(len - got));
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		r = read_failed(c, r);
		if (!got) {
			return r;
		}
		if (r != -EAGAIN) {
			c->read_end_due = 1;
			c->read_end = r;
		}
		ERR_clear_error();
		break;
	}
	return (int)got;
}

int tls_conn_write(struct tls_conn *c, const void *buf, size_t len)
{
	int r;

	busy(c);
	r = SSL_write(c->ssl, buf, (int)len);
	if (r > 0) {
		return r;
	}
	set_detail_ssl(c, "write");
	return -EPROTO;
}

void tls_conn_close_notify(struct tls_conn *c)
{
	SSL_shutdown(c->ssl);
	ERR_clear_error();
}

int tls_conn_trim(struct tls_conn *c)
{
	if (in_pending(c) || out_pending(c) || SSL_pending(c->ssl) || c->read_end_due) {
		return -EAGAIN;
	}
	/* The engine's record buffers (kept while the connection was busy),
	 * then ours. */
	if (!SSL_free_buffers(c->ssl)) {
		return -EAGAIN;
	}
	SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	c->records = 0;
	c->lent = NULL;
	c->lent_off = c->lent_len = 0;
	byteq_free(&c->inb);
	byteq_free(&c->ovf);
	return 0;
}

size_t tls_conn_out_pending(const struct tls_conn *c)
{
	return out_pending(c);
}

size_t tls_conn_out_take(struct tls_conn *c, void *buf, size_t len)
{
	/* Between tls_conn_out_direct() and _end() the lent buffer is the
	 * caller's already; only ours is taken here. */
	return byteq_take(&c->ovf, buf, len);
}

enum tls_reason tls_conn_reason(const struct tls_conn *c)
{
	return c->reason;
}

const char *tls_conn_detail(const struct tls_conn *c)
{
	return c->detail;
}

const char *tls_conn_peer_id(const struct tls_conn *c)
{
	return c->peer_id ? c->peer_id : "";
}

const char *tls_conn_version(const struct tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

int tls_conn_resumed(const struct tls_conn *c)
{
	return SSL_session_reused(c->ssl);
}
