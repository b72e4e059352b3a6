/*
 * `ldmeshctl webhook --listen ADDR --cert F --key F [--image IMAGE]`: the
 * mutating admission webhook (docs/kubernetes.md).
 *
 * HTTPS (OpenSSL), one thread per connection up to WH_MAX_CONNS, keep-alive
 * as the API server uses it.  POST /inject takes an admission.k8s.io/v1
 * AdmissionReview and answers one with the same uid: allowed, and for a Pod
 * CREATE that inject changes, a base64 JSONPatch (kube_patch.c) whose result
 * is exactly what `ldmeshctl inject` prints for that Pod.  GET /healthz
 * answers "ok" for the Deployment's probes.  A bad request gets 400 and a
 * message; nothing a client sends stops the server.  The certificate and
 * key are read again when either file changes (cert-manager renews them in
 * place), and a pair that does not load keeps the old one serving.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "cli.h"
#include "inject.h"
#include "kube_patch.h"

#define WH_MAX_CONNS 512
#define WH_MAX_HEAD 16384
/* The API server's own limit on a request is 3 MiB; leave room. */
#define WH_MAX_BODY (8u << 20)
#define WH_IO_TIMEOUT_S 10
/* How often the certificate files are looked at, at most. */
#define WH_RELOAD_CHECK_S 1

static const char synopsis[] = "webhook --listen ADDR --cert FILE --key FILE [--image IMAGE]";

struct wh_file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct webhook {
	const char *cert_path, *key_path; /* borrowed from argv */
	struct inject_opts opts;
	pthread_mutex_t lock; /* guards ctx, ids, checked */
	SSL_CTX *ctx; /* owned; SSL_new takes its own reference */
	struct wh_file_id cert_id, key_id;
	time_t checked;
	sem_t slots; /* free connection slots */
};

struct wh_conn {
	struct webhook *wh; /* borrowed */
	int fd; /* owned */
};

static volatile sig_atomic_t wh_stop;

static void on_stop(int sig)
{
	(void)sig;
	wh_stop = 1;
}

static void file_id(const char *path, struct wh_file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) == 0) {
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		id->size = st.st_size;
		id->mtime = st.st_mtim;
	}
}

static int same_id(const struct wh_file_id *a, const struct wh_file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* A server SSL_CTX for cert (with its chain) and key; NULL with err filled. */
static SSL_CTX *load_ctx(const char *cert, const char *key, char *err, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;

	if (!ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	ERR_clear_error();
	return ctx;
fail:
	e = ERR_get_error();
	snprintf(err, len, "%s / %s: %s", cert, key,
		 e ? ERR_reason_error_string(e) : "cannot make a TLS context");
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* The current context, with a reference for the caller; reloads it first
 * when the files changed. */
static SSL_CTX *current_ctx(struct webhook *wh)
{
	time_t now = time(NULL);
	SSL_CTX *ctx;

	pthread_mutex_lock(&wh->lock);
	if (now - wh->checked >= WH_RELOAD_CHECK_S) {
		struct wh_file_id c, k;

		wh->checked = now;
		file_id(wh->cert_path, &c);
		file_id(wh->key_path, &k);
		if (!same_id(&c, &wh->cert_id) || !same_id(&k, &wh->key_id)) {
			char err[512];
			SSL_CTX *fresh = load_ctx(wh->cert_path, wh->key_path, err, sizeof(err));

			/* A half-written pair fails to load: keep serving the old
			 * one and try again at the next change. */
			wh->cert_id = c;
			wh->key_id = k;
			if (fresh) {
				SSL_CTX_free(wh->ctx);
				wh->ctx = fresh;
				fprintf(stderr, "ldmeshctl webhook: reloaded %s\n", wh->cert_path);
			} else {
				errorf("webhook: keeping the old certificate: %s", err);
			}
		}
	}
	ctx = wh->ctx;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&wh->lock);
	return ctx;
}

/* ---- HTTP ------------------------------------------------------------- */

static int ssl_write_all(SSL *ssl, const char *buf, size_t len)
{
	while (len) {
		int n = SSL_write(ssl, buf, len > 1 << 30 ? 1 << 30 : (int)len);

		if (n <= 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int respond(SSL *ssl, int status, const char *type, const char *body, size_t len, int keep)
{
	const char *reason = status == 200   ? "OK"
			     : status == 400 ? "Bad Request"
			     : status == 404 ? "Not Found"
			     : status == 405 ? "Method Not Allowed"
			     : status == 411 ? "Length Required"
			     : status == 413 ? "Content Too Large"
					     : "Internal Server Error";
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
			 status, reason, type, len, keep ? "" : "Connection: close\r\n");

	if (ssl_write_all(ssl, head, (size_t)n) || ssl_write_all(ssl, body, len))
		return -EIO;
	return 0;
}

static int respond_text(SSL *ssl, int status, const char *msg, int keep)
{
	char body[600];
	int n = snprintf(body, sizeof(body), "%s\n", msg);

	return respond(ssl, status, "text/plain; charset=utf-8", body,
		       (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, keep);
}

/* ---- admission ---------------------------------------------------------- */

static char *base64(const char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
	return out;
}

/*
 * The AdmissionReview answer for body: 0 with *answer (malloc'd JSON), or
 * -EINVAL with msg filled (the request is not a v1 AdmissionReview), or
 * -ENOMEM.
 */
static int admission(struct webhook *wh, const char *body, size_t len, char **answer, char *msg,
		     size_t msglen)
{
	json_t *review, *req, *resp, *pod = NULL, *orig = NULL, *notes = NULL, *ops = NULL;
	const char *uid, *kind, *op;
	json_error_t je;
	char err[512];
	int rc = -EINVAL, r;

	*answer = NULL;
	review = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!review) {
		snprintf(msg, msglen, "line %d: %s", je.line, je.text);
		return -EINVAL;
	}
	req = json_object_get(review, "request");
	uid = json_string_value(json_object_get(req, "uid"));
	if (strcmp(json_string_value(json_object_get(review, "apiVersion")) ?: "",
		   "admission.k8s.io/v1") != 0 ||
	    strcmp(json_string_value(json_object_get(review, "kind")) ?: "", "AdmissionReview") !=
		    0) {
		snprintf(msg, msglen, "expected an admission.k8s.io/v1 AdmissionReview");
		goto out;
	}
	if (!json_is_object(req) || !uid || !*uid) {
		snprintf(msg, msglen, "the AdmissionReview has no request.uid");
		goto out;
	}
	rc = -ENOMEM;
	resp = json_pack("{s:s, s:b}", "uid", uid, "allowed", 1);
	if (!resp)
		goto out;
	kind = json_string_value(json_object_get(json_object_get(req, "kind"), "kind"));
	op = json_string_value(json_object_get(req, "operation"));
	/* Only Pod CREATE is ours; anything else the configuration sends by
	 * mistake is allowed unchanged. */
	if (kind && !strcmp(kind, "Pod") && op && !strcmp(op, "CREATE") &&
	    json_is_object(json_object_get(req, "object"))) {
		orig = json_deep_copy(json_object_get(req, "object"));
		if (!orig)
			goto err_resp;
		if (!json_object_get(orig, "kind") &&
		    (json_object_set_new(orig, "kind", json_string("Pod")) ||
		     json_object_set_new(orig, "apiVersion", json_string("v1"))))
			goto err_resp;
		pod = json_deep_copy(orig);
		notes = json_array();
		if (!pod || !notes)
			goto err_resp;
		r = inject_object(pod, &wh->opts, notes, err, sizeof(err));
		if (r == -ENOMEM)
			goto err_resp;
		if (r < 0) {
			/* A pod whose annotations ask for what cannot be done is
			 * refused with the reason, never started unmeshed. */
			if (json_object_set_new(resp, "allowed", json_false()) ||
			    json_object_set_new(
				    resp, "status",
				    json_pack("{s:i, s:s}", "code", 400, "message", err)))
				goto err_resp;
		} else if (r > 0) {
			char *text, *b64;

			ops = kube_patch_diff(orig, pod);
			text = ops ? json_dumps(ops, JSON_COMPACT) : NULL;
			b64 = text ? base64(text, strlen(text)) : NULL;
			free(text);
			if (!b64 ||
			    json_object_set_new(resp, "patchType", json_string("JSONPatch")) ||
			    json_object_set_new(resp, "patch", json_string(b64))) {
				free(b64);
				goto err_resp;
			}
			free(b64);
		}
		if (json_array_size(notes) && json_object_set(resp, "warnings", notes))
			goto err_resp;
	}
	if (json_object_set_new(review, "response", resp))
		goto out;
	json_object_del(review, "request");
	*answer = json_dumps(review, JSON_COMPACT);
	rc = *answer ? 0 : -ENOMEM;
	goto out;
err_resp:
	json_decref(resp);
out:
	json_decref(ops);
	json_decref(notes);
	json_decref(pod);
	json_decref(orig);
	json_decref(review);
	return rc;
}

/* ---- one connection ------------------------------------------------------ */

/* Header value of name in head (NUL-terminated), or NULL. */
static const char *header(const char *head, const char *name, char *val, size_t len)
{
	size_t n = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *p = l + 2;
		size_t k;

		if (strncasecmp(p, name, n) != 0 || p[n] != ':')
			continue;
		p += n + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		k = strcspn(p, "\r");
		while (k && (p[k - 1] == ' ' || p[k - 1] == '\t'))
			k--;
		snprintf(val, len, "%.*s", (int)k, p);
		return val;
	}
	return NULL;
}

/*
 * Serves requests on ssl until the peer closes, a request says
 * Connection: close, or one cannot be read.  buf holds the bytes read past
 * the previous request.
 */
static void serve(struct webhook *wh, SSL *ssl)
{
	char *buf = malloc(WH_MAX_HEAD + 1);
	size_t have = 0;

	if (!buf)
		return;
	for (;;) {
		char method[16], path[256], version[16], val[64], msg[600];
		char *end, *body = NULL, *answer = NULL;
		size_t head_len, body_len = 0;
		int keep = 1, status = 200, n;

		while (!(buf[have] = '\0', end = strstr(buf, "\r\n\r\n"))) {
			if (have >= WH_MAX_HEAD) {
				respond_text(ssl, 400, "request head too large", 0);
				goto out;
			}
			n = SSL_read(ssl, buf + have, (int)(WH_MAX_HEAD - have));
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		head_len = (size_t)(end - buf) + 4;
		end[2] = '\0'; /* the head, each line ending in \r\n */
		if (sscanf(buf, "%15s %255s %15s", method, path, version) != 3 ||
		    strncmp(version, "HTTP/1.", 7) != 0) {
			respond_text(ssl, 400, "malformed request line", 0);
			goto out;
		}
		if (!strcmp(version, "HTTP/1.0") ||
		    (header(buf, "Connection", val, sizeof(val)) && !strcasecmp(val, "close")))
			keep = 0;
		if (header(buf, "Transfer-Encoding", val, sizeof(val))) {
			respond_text(ssl, 411, "send Content-Length, not Transfer-Encoding", 0);
			goto out;
		}
		if (header(buf, "Content-Length", val, sizeof(val))) {
			char *e;
			unsigned long long v = strtoull(val, &e, 10);

			if (e == val || *e || val[0] == '-') {
				respond_text(ssl, 400, "malformed Content-Length", 0);
				goto out;
			}
			if (v > WH_MAX_BODY) {
				respond_text(ssl, 413, "request body larger than 8 MiB", 0);
				goto out;
			}
			body_len = (size_t)v;
		}
		body = malloc(body_len + 1);
		if (!body)
			goto out;
		/* Bytes already read past the head, then the rest. */
		{
			size_t extra = have - head_len, take = extra < body_len ? extra : body_len;

			memcpy(body, buf + head_len, take);
			memmove(buf, buf + head_len + take, extra - take);
			have = extra - take;
			for (size_t got = take; got < body_len; got += (size_t)n) {
				n = SSL_read(
					ssl, body + got,
					(int)(body_len - got > 1 << 30 ? 1 << 30 : body_len - got));
				if (n <= 0) {
					free(body);
					goto out;
				}
			}
		}
		if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz")) {
			n = strcmp(method, "GET") ? respond_text(ssl, 405, "use GET", keep)
						  : respond_text(ssl, 200, "ok", keep);
		} else if (strcmp(path, "/inject") != 0 && strncmp(path, "/inject?", 8) != 0) {
			n = respond_text(ssl, 404, "not found: POST /inject or GET /healthz", keep);
		} else if (strcmp(method, "POST") != 0) {
			n = respond_text(ssl, 405, "use POST with an AdmissionReview", keep);
		} else {
			int rc = admission(wh, body, body_len, &answer, msg, sizeof(msg));

			if (rc == -EINVAL) {
				status = 400;
				n = respond_text(ssl, 400, msg, keep);
			} else if (rc) {
				status = 500;
				n = respond_text(ssl, 500, "out of memory", 0);
				keep = 0;
			} else {
				n = respond(ssl, 200, "application/json", answer, strlen(answer),
					    keep);
			}
			if (status != 200)
				errorf("webhook: %d for POST %s: %s", status, path,
				       status == 400 ? msg : "out of memory");
		}
		free(answer);
		free(body);
		if (n || !keep)
			goto out;
	}
out:
	free(buf);
}

static void *conn_main(void *arg)
{
	struct wh_conn *c = arg;
	struct webhook *wh = c->wh;
	SSL_CTX *ctx = current_ctx(wh);
	SSL *ssl = SSL_new(ctx);

	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	if (ssl && SSL_set_fd(ssl, c->fd) == 1 && SSL_accept(ssl) == 1) {
		serve(wh, ssl);
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	ERR_clear_error();
	close(c->fd);
	free(c);
	sem_post(&wh->slots);
	return NULL;
}

/* ---- listening ------------------------------------------------------------ */

/* "0.0.0.0:8443", "[::]:8443" or ":8443" (every address, v4 and v6). */
static int listen_on(const char *addr, char *err, size_t len)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE},
			*ai = NULL;
	int fd, one = 1, zero = 0, rc;

	if (!colon || !colon[1] || (size_t)(colon - addr) >= sizeof(host)) {
		snprintf(err, len, "--listen '%s' is not an address like 0.0.0.0:8443 or :8443",
			 addr);
		return -EINVAL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}
	rc = getaddrinfo(host[0] ? host : "::", colon + 1, &hints, &ai);
	if (rc) {
		snprintf(err, len, "--listen '%s': %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err_sys;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6 && !host[0])
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024))
		goto err_close;
	freeaddrinfo(ai);
	return fd;
err_close:
	close(fd);
err_sys:
	rc = -errno;
	snprintf(err, len, "--listen '%s': %s", addr, strerror(errno));
	freeaddrinfo(ai);
	return rc;
}

int cmd_webhook(const struct cli *c)
{
	struct webhook wh = {.opts = {.image = INJECT_DEFAULT_IMAGE}};
	const char *listen_addr = NULL;
	struct sigaction sa = {.sa_handler = on_stop};
	sigset_t block, old;
	char err[600];
	int lfd;

	for (int k = 1; k < c->argc; k++) {
		const char *a = c->argv[k], **dst = NULL;
		static const char *const names[] = {"--listen", "--cert", "--key", "--image"};
		const char **dsts[] = {&listen_addr, &wh.cert_path, &wh.key_path, &wh.opts.image};

		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			size_t n = strlen(names[i]);

			if (!strcmp(a, names[i])) {
				if (k + 1 >= c->argc)
					return usage_error(synopsis, "%s needs a value", names[i]);
				dst = dsts[i];
				*dst = c->argv[++k];
			} else if (!strncmp(a, names[i], n) && a[n] == '=') {
				dst = dsts[i];
				*dst = a + n + 1;
			}
		}
		if (!dst)
			return usage_error(synopsis, "unexpected argument '%s'", a);
	}
	if (!listen_addr || !wh.cert_path || !wh.key_path)
		return usage_error(synopsis, "--listen, --cert and --key are required");
	if (!*wh.opts.image || strpbrk(wh.opts.image, " \t\r\n"))
		return usage_error(synopsis, "--image '%s' is not an image reference",
				   wh.opts.image);
	file_id(wh.cert_path, &wh.cert_id);
	file_id(wh.key_path, &wh.key_id);
	wh.ctx = load_ctx(wh.cert_path, wh.key_path, err, sizeof(err));
	if (!wh.ctx) {
		errorf("webhook: %s", err);
		return EXIT_ERROR;
	}
	wh.checked = time(NULL);
	lfd = listen_on(listen_addr, err, sizeof(err));
	if (lfd < 0) {
		errorf("webhook: %s", err);
		SSL_CTX_free(wh.ctx);
		return EXIT_ERROR;
	}
	pthread_mutex_init(&wh.lock, NULL);
	sem_init(&wh.slots, 0, WH_MAX_CONNS);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: accept returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	fprintf(stderr, "ldmeshctl webhook: serving https://%s/inject (image %s)\n", listen_addr,
		wh.opts.image);
	while (!wh_stop) {
		struct timeval tv = {.tv_sec = WH_IO_TIMEOUT_S};
		struct wh_conn *conn;
		pthread_attr_t attr;
		pthread_t t;
		int fd;

		if (sem_wait(&wh.slots))
			continue; /* EINTR: look at wh_stop */
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			sem_post(&wh.slots);
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(10000); /* EMFILE and the like: let connections finish */
			continue;
		}
		/* A client that stops sending or reading cannot hold a slot. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		conn = malloc(sizeof(*conn));
		if (!conn) {
			close(fd);
			sem_post(&wh.slots);
			continue;
		}
		conn->wh = &wh;
		conn->fd = fd;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 << 10);
		/* Only the main thread takes SIGTERM and SIGINT. */
		pthread_sigmask(SIG_BLOCK, &block, &old);
		if (pthread_create(&t, &attr, conn_main, conn)) {
			close(fd);
			free(conn);
			sem_post(&wh.slots);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
	}
	close(lfd);
	fprintf(stderr, "ldmeshctl webhook: stopping\n");
	/* Connections still open finish on their own threads; the process
	 * exits under them, as the API server retries. */
	return EXIT_OK;
}
