/*
 * HTTP/2 framing for a followed connection; see h2.h.  Frames are cut by
 * their 9-byte heads; everything inside a header block is nghttp2's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h2.h"

/* Decoded fields of one block may reference large table entries: bounded. */
#define H2_MAX_DECODED (4 * H2_MAX_BLOCK)
#define H2_FRAME_MAX 16384 /* what every peer accepts (RFC 9113 4.2) */

static int fail(struct h2_dir *s, int err, const char *why)
{
	s->error = why;
	return err;
}

int h2_dir_init(struct h2_dir *s, int client_side, int rewrite)
{
	memset(s, 0, sizeof(*s));
	s->preface_left = client_side ? H2_PREFACE_LEN : 0;
	s->rewrite = (uint8_t)(rewrite != 0);
	s->at_boundary = 1;
	/* The sender's encoder is bounded by what its peer announced, which
	 * we pass on without reading closely: allow up to our own bound. */
	if (nghttp2_hd_inflate_new(&s->inflater) ||
	    nghttp2_hd_inflate_change_table_size(s->inflater, H2_MAX_BLOCK)) {
		if (s->inflater) {
			nghttp2_hd_inflate_del(s->inflater);
			s->inflater = NULL;
		}
		return -ENOMEM;
	}
	if (rewrite && nghttp2_hd_deflate_new(&s->deflater, 4096)) {
		nghttp2_hd_inflate_del(s->inflater);
		s->inflater = NULL;
		return -ENOMEM;
	}
	return 0;
}

void h2_dir_fini(struct h2_dir *s)
{
	free(s->frame);
	free(s->block);
	if (s->inflater) {
		nghttp2_hd_inflate_del(s->inflater);
	}
	if (s->deflater) {
		nghttp2_hd_deflate_del(s->deflater);
	}
	memset(s, 0, sizeof(*s));
}

void h2_dir_trim(struct h2_dir *s)
{
	if (s->head_len == 0 && !s->in_block) {
		free(s->frame);
		free(s->block);
		s->frame = s->block = NULL;
		s->frame_cap = s->block_cap = 0;
		s->block_len = 0;
	}
}

int h2_dir_encoder_size(struct h2_dir *s, uint32_t size)
{
	if (!s->deflater) {
		return 0;
	}
	return nghttp2_hd_deflate_change_table_size(s->deflater, size < 4096 ? size : 4096)
		       ? -ENOMEM
		       : 0;
}

static int grow(char **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 256;
	char *p;

	if (need <= *cap) {
		return 0;
	}
	while (n < need) {
		n *= 2;
	}
	p = realloc(*buf, n);
	if (!p) {
		return -ENOMEM;
	}
	*buf = p;
	*cap = n;
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_head(char *out, uint32_t len, uint8_t type, uint8_t flags, int32_t id)
{
	out[0] = (char)(len >> 16);
	out[1] = (char)(len >> 8);
	out[2] = (char)len;
	out[3] = (char)type;
	out[4] = (char)flags;
	out[5] = (char)((uint32_t)id >> 24 & 0x7f);
	out[6] = (char)((uint32_t)id >> 16);
	out[7] = (char)((uint32_t)id >> 8);
	out[8] = (char)id;
}

/* ---- header blocks -------------------------------------------------------- */

struct field_at {
	uint32_t name, namelen, value, valuelen;
	uint8_t flags;
};

/* Decodes the gathered block and hands it to the sink. */
static int block_done(struct h2_dir *s, const struct h2_sink *k)
{
	struct field_at at[H2_MAX_FIELDS];
	nghttp2_nv nv[H2_MAX_FIELDS];
	char *arena = NULL;
	size_t cap = 0, used = 0, n = 0, i;
	static const uint8_t none[1];
	const uint8_t *in = s->block ? (const uint8_t *)s->block : none;
	size_t left = s->block_len;
	int r = 0;

	s->in_block = 0;
	for (;;) {
		nghttp2_nv f;
		int fl = 0;
		ssize_t c = nghttp2_hd_inflate_hd2(s->inflater, &f, &fl, in, left, 1);

		if (c < 0) {
			r = fail(s, -EPROTO, "HPACK: the header block does not decode");
			goto out;
		}
		in += c;
		left -= (size_t)c;
		if (fl & NGHTTP2_HD_INFLATE_EMIT) {
			if (n == H2_MAX_FIELDS ||
			    used + f.namelen + f.valuelen + 2 > H2_MAX_DECODED) {
				r = fail(s, -EMSGSIZE, "a header block over the mesh's bounds");
				goto out;
			}
			if (grow(&arena, &cap, used + f.namelen + f.valuelen + 2) < 0) {
				r = -ENOMEM;
				goto out;
			}
			at[n] = (struct field_at){(uint32_t)used, (uint32_t)f.namelen,
						  (uint32_t)(used + f.namelen + 1),
						  (uint32_t)f.valuelen, f.flags};
			memcpy(arena + used, f.name, f.namelen);
			arena[used + f.namelen] = 0;
			memcpy(arena + used + f.namelen + 1, f.value, f.valuelen);
			arena[used + f.namelen + 1 + f.valuelen] = 0;
			used += f.namelen + f.valuelen + 2;
			n++;
		}
		if (fl & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(s->inflater);
			break;
		}
		if (c == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT)) {
			r = fail(s, -EPROTO, "HPACK: the header block ends inside a field");
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		nv[i] = (nghttp2_nv){(uint8_t *)arena + at[i].name, (uint8_t *)arena + at[i].value,
				     at[i].namelen, at[i].valuelen, at[i].flags};
	}
	s->pending.nv = nv;
	s->pending.n = n;
	r = k->block(k->ud, &s->pending);
	s->pending.nv = NULL;
out:
	free(arena);
	s->block_len = 0;
	return r;
}

static int block_add(struct h2_dir *s, const char *p, size_t n)
{
	if (!n) {
		return 0;
	}
	if (s->block_len + n > H2_MAX_BLOCK) {
		return fail(s, -EMSGSIZE, "a header block over 64 KiB");
	}
	if (grow(&s->block, &s->block_cap, s->block_len + n) < 0) {
		return -ENOMEM;
	}
	memcpy(s->block + s->block_len, p, n);
	s->block_len += n;
	return 0;
}

/* HEADERS or PUSH_PROMISE: strips padding (and priority, kept apart) and
 * starts a block with its fragment. */
static int block_start(struct h2_dir *s)
{
	const struct h2_frame *f = &s->f;
	const uint8_t *p = (const uint8_t *)s->frame + H2_HEAD;
	size_t len = f->len, pad = 0;

	if (!f->id) {
		return fail(s, -EPROTO, "a header block on stream 0");
	}
	memset(&s->pending, 0, sizeof(s->pending));
	s->pending.id = f->id;
	s->pending.type = f->type;
	if (f->flags & H2_FLAG_PADDED) {
		if (len < 1) {
			return fail(s, -EPROTO, "a padded frame without its pad length");
		}
		pad = p[0];
		p++;
		len--;
	}
	if (f->type == H2_HEADERS) {
		s->pending.end_stream = (uint8_t)(f->flags & H2_FLAG_END_STREAM);
		if (f->flags & H2_FLAG_PRIORITY) {
			if (len < 5) {
				return fail(s, -EPROTO, "HEADERS too short for its priority");
			}
			s->pending.has_prio = 1;
			memcpy(s->pending.prio, p, 5);
			p += 5;
			len -= 5;
		}
	} else {
		if (len < 4) {
			return fail(s, -EPROTO, "PUSH_PROMISE too short");
		}
		s->pending.promised = (int32_t)(be32(p) & 0x7fffffff);
		p += 4;
		len -= 4;
	}
	if (pad > len) {
		return fail(s, -EPROTO, "padding longer than the frame");
	}
	s->in_block = 1;
	s->block_len = 0;
	return block_add(s, (const char *)p, len - pad);
}

/* ---- frames ----------------------------------------------------------------- */

static int frame_begin(struct h2_dir *s, const struct h2_sink *k)
{
	struct h2_frame *f = &s->f;
	const uint8_t *h = s->head;

	f->len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
	f->type = h[3];
	f->flags = h[4];
	f->id = (int32_t)(be32(h + 5) & 0x7fffffff);
	s->got = 0;
	if (s->in_block && (f->type != H2_CONTINUATION || f->id != s->pending.id)) {
		return fail(s, -EPROTO, "a header block interrupted by another frame");
	}
	if (!s->in_block && f->type == H2_CONTINUATION) {
		return fail(s, -EPROTO, "CONTINUATION outside a header block");
	}
	if (f->type == H2_DATA) {
		return k->frame(k->ud, f, (const char *)h, H2_HEAD, 0);
	}
	if (f->len > H2_MAX_BLOCK) {
		return fail(s, -EMSGSIZE, "a control frame over 64 KiB");
	}
	if (grow(&s->frame, &s->frame_cap, H2_HEAD + f->len) < 0) {
		return -ENOMEM;
	}
	memcpy(s->frame, h, H2_HEAD);
	return 0;
}

static int frame_end(struct h2_dir *s, const struct h2_sink *k)
{
	const struct h2_frame *f = &s->f;
	int header =
		f->type == H2_HEADERS || f->type == H2_PUSH_PROMISE || f->type == H2_CONTINUATION;
	int r = 0;

	s->head_len = 0;
	s->any_frame = 1;
	if (f->type == H2_DATA) {
		return 0;
	}
	if (f->type == H2_HEADERS || f->type == H2_PUSH_PROMISE) {
		r = block_start(s);
	} else if (f->type == H2_CONTINUATION) {
		r = block_add(s, s->frame + H2_HEAD, f->len);
	}
	if (r == 0 && !(header && s->rewrite)) {
		r = k->frame(k->ud, f, s->frame, H2_HEAD + f->len, 0);
	}
	if (r == 0 && header && (f->flags & H2_FLAG_END_HEADERS)) {
		r = block_done(s, k);
	}
	return r;
}

int h2_feed(struct h2_dir *s, const char *buf, size_t n, const struct h2_sink *k)
{
	size_t i = 0;
	int r;

	s->boundary = s->at_boundary ? 0 : (size_t)-1;
	if (s->preface_left) {
		size_t off = H2_PREFACE_LEN - s->preface_left;
		size_t take = n < s->preface_left ? n : s->preface_left;
		struct h2_frame pf = {.len = H2_PREFACE_LEN, .type = H2_PREFACE_FRAME};

		if (memcmp(buf, H2_PREFACE + off, take)) {
			return fail(s, -EPROTO, "not the HTTP/2 connection preface");
		}
		s->preface_left = (uint8_t)(s->preface_left - take);
		i = take;
		r = k->frame(k->ud, &pf, buf, take, off);
		if (r < 0) {
			return r;
		}
		s->boundary = s->preface_left ? (size_t)-1 : i;
	}
	while (i < n) {
		if (s->head_len < H2_HEAD) {
			size_t take = H2_HEAD - s->head_len;

			take = take < n - i ? take : n - i;
			memcpy(s->head + s->head_len, buf + i, take);
			s->head_len = (uint8_t)(s->head_len + take);
			i += take;
			if (s->head_len < H2_HEAD) {
				break;
			}
			r = frame_begin(s, k);
		} else {
			size_t take = s->f.len - s->got;

			take = take < n - i ? take : n - i;
			if (s->f.type == H2_DATA) {
				r = k->frame(k->ud, &s->f, buf + i, take, H2_HEAD + s->got);
			} else {
				memcpy(s->frame + H2_HEAD + s->got, buf + i, take);
				r = 0;
			}
			s->got += (uint32_t)take;
			i += take;
		}
		if (r == 0 && s->head_len == H2_HEAD && s->got == s->f.len) {
			r = frame_end(s, k);
			if (r == 0 && !s->in_block) {
				s->boundary = i;
			}
		}
		if (r < 0) {
			return r;
		}
	}
	s->at_boundary = (uint8_t)(s->boundary == n && !s->preface_left);
	return 0;
}

/* ---- writing ---------------------------------------------------------------- */

/* Cuts an encoded block into HEADERS + CONTINUATION frames. */
static int frames_of_block(const struct h2_block *b, const uint8_t *enc, size_t len, char *out,
			   size_t cap)
{
	size_t prio = b->has_prio ? 5 : 0, room = H2_FRAME_MAX - prio, at = 0, w = 0;
	int first = 1;

	do {
		size_t take = len - at < room ? len - at : room;
		size_t extra = first ? prio : 0;
		uint8_t flags = 0;

		if (w + H2_HEAD + extra + take > cap) {
			return -ENOSPC;
		}
		if (first) {
			flags = (uint8_t)((b->end_stream ? H2_FLAG_END_STREAM : 0) |
					  (prio ? H2_FLAG_PRIORITY : 0));
		}
		if (at + take == len) {
			flags |= H2_FLAG_END_HEADERS;
		}
		put_head(out + w, (uint32_t)(extra + take),
			 (uint8_t)(first ? H2_HEADERS : H2_CONTINUATION), flags, b->id);
		w += H2_HEAD;
		if (extra) {
			memcpy(out + w, b->prio, 5);
			w += 5;
		}
		memcpy(out + w, enc + at, take);
		w += take;
		at += take;
		first = 0;
		room = H2_FRAME_MAX;
	} while (at < len);
	return (int)w;
}

static int encode(nghttp2_hd_deflater *d, const struct h2_block *b, const nghttp2_nv *nv, size_t n,
		  char *out, size_t cap)
{
	size_t bound = nghttp2_hd_deflate_bound(d, nv, n);
	uint8_t *enc = malloc(bound ? bound : 1);
	ssize_t len;
	int r;

	if (!enc) {
		return -ENOMEM;
	}
	len = nghttp2_hd_deflate_hd(d, enc, bound, nv, n);
	r = len < 0 ? -EPROTO : frames_of_block(b, enc, (size_t)len, out, cap);
	free(enc);
	return r;
}

int h2_write_block(struct h2_dir *s, const struct h2_block *b, const nghttp2_nv *nv, size_t n,
		   char *out, size_t cap)
{
	if (!s->deflater || b->type != H2_HEADERS) {
		return -EPROTO;
	}
	return encode(s->deflater, b, nv, n, out, cap);
}

int h2_write_headers(int32_t id, int end_stream, const nghttp2_nv *nv, size_t n, char *out,
		     size_t cap)
{
	/* A fresh encoder at the default size, every field never indexed:
	 * static table and literals, nothing the receiver's table keeps. */
	struct h2_block b = {.id = id, .type = H2_HEADERS, .end_stream = (uint8_t) !!end_stream};
	nghttp2_nv fields[16];
	nghttp2_hd_deflater *d;
	size_t i;
	int r;

	if (n > 16) {
		return -E2BIG;
	}
	for (i = 0; i < n; i++) {
		fields[i] = nv[i];
		fields[i].flags |= NGHTTP2_NV_FLAG_NO_INDEX;
	}
	if (nghttp2_hd_deflate_new(&d, 4096)) {
		return -ENOMEM;
	}
	r = encode(d, &b, fields, n, out, cap);
	nghttp2_hd_deflate_del(d);
	return r;
}

int h2_write_data(int32_t id, int end_stream, const char *data, size_t len, char *out, size_t cap)
{
	if (len > H2_FRAME_MAX || H2_HEAD + len > cap) {
		return -ENOSPC;
	}
	put_head(out, (uint32_t)len, H2_DATA, end_stream ? H2_FLAG_END_STREAM : 0, id);
	memcpy(out + H2_HEAD, data, len);
	return (int)(H2_HEAD + len);
}

static int write_u32_frame(uint8_t type, int32_t id, uint32_t v, char *out, size_t cap)
{
	if (cap < H2_HEAD + 4) {
		return -ENOSPC;
	}
	put_head(out, 4, type, 0, id);
	out[9] = (char)(v >> 24);
	out[10] = (char)(v >> 16);
	out[11] = (char)(v >> 8);
	out[12] = (char)v;
	return H2_HEAD + 4;
}

int h2_write_rst(int32_t id, uint32_t code, char *out, size_t cap)
{
	return write_u32_frame(H2_RST_STREAM, id, code, out, cap);
}

int h2_write_window_update(int32_t id, uint32_t incr, char *out, size_t cap)
{
	return write_u32_frame(H2_WINDOW_UPDATE, id, incr & 0x7fffffff, out, cap);
}

int h2_settings_each(const char *payload, size_t len, void (*fn)(void *, uint16_t, uint32_t),
		     void *ud)
{
	const uint8_t *p = (const uint8_t *)payload;
	size_t i;

	if (len % 6) {
		return -EPROTO;
	}
	for (i = 0; i < len; i += 6) {
		fn(ud, (uint16_t)(p[i] << 8 | p[i + 1]), be32(p + i + 2));
	}
	return 0;
}

const char *h2_field(const nghttp2_nv *nv, size_t n, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < n; i++) {
		if (nv[i].namelen == len && !memcmp(nv[i].name, name, len)) {
			return (const char *)nv[i].value;
		}
	}
	return NULL;
}
