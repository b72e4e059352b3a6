/*
 * HTTP/2 framing for a connection the mesh follows without ending it: the
 * frames of one direction are cut out of its byte stream as they pass,
 * header blocks are decoded with nghttp2's HPACK inflater (one per
 * direction, in step with the sender's encoder), and what a stage changes
 * is encoded with nghttp2's deflater.  The apps' own frames go on as they
 * are (SETTINGS, flow control, PING, priorities are theirs); knows no
 * connection: proxy/l7_h2.c decides what passes.
 *
 * The caller feeds bytes with h2_feed() and is called back for each frame
 * (the raw bytes to pass on: a DATA frame in pieces as they arrive, any
 * other frame whole) and for each decoded header block.  In a direction
 * that rewrites header blocks the raw HEADERS/CONTINUATION frames are not
 * handed over: the caller writes the block again with h2_write_block().
 */
#ifndef LDMESH_H2_H
#define LDMESH_H2_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_HEAD 9
/* A header block (HEADERS or PUSH_PROMISE and its CONTINUATIONs) or
 * another non-DATA frame larger than this ends the connection: a peer
 * that sends a megabyte of headers costs a bounded buffer. */
#define H2_MAX_BLOCK 65536
/* Header fields in one block. */
#define H2_MAX_FIELDS 256

enum h2_type {
	H2_DATA = 0,
	H2_HEADERS = 1,
	H2_PRIORITY = 2,
	H2_RST_STREAM = 3,
	H2_SETTINGS = 4,
	H2_PUSH_PROMISE = 5,
	H2_PING = 6,
	H2_GOAWAY = 7,
	H2_WINDOW_UPDATE = 8,
	H2_CONTINUATION = 9,
	H2_PREFACE_FRAME = 256, /* the client's preface, passed like a frame */
};

#define H2_FLAG_END_STREAM 0x01
#define H2_FLAG_ACK 0x01
#define H2_FLAG_END_HEADERS 0x04
#define H2_FLAG_PADDED 0x08
#define H2_FLAG_PRIORITY 0x20

#define H2_SETTINGS_HEADER_TABLE_SIZE 1

struct h2_frame {
	uint32_t len; /* payload length */
	int type; /* enum h2_type, or an unknown frame's type */
	uint8_t flags;
	int32_t id;
};

/* A decoded header block. */
struct h2_block {
	int32_t id;
	int type; /* H2_HEADERS or H2_PUSH_PROMISE */
	uint8_t end_stream; /* the HEADERS frame's END_STREAM */
	uint8_t has_prio; /* the HEADERS frame's PRIORITY fields, kept in prio */
	uint8_t prio[5];
	int32_t promised; /* PUSH_PROMISE: the promised stream */
	const nghttp2_nv *nv; /* fields in order, valid during the callback */
	size_t n;
};

struct h2_sink {
	/* Raw bytes of frame f that pass as they are: a DATA frame in
	 * pieces (off: where in the frame, head included, raw starts),
	 * anything else whole (off 0).  0, or -errno to stop. */
	int (*frame)(void *ud, const struct h2_frame *f, const char *raw, size_t n, size_t off);
	/* A header block, complete and decoded.  0, or -errno to stop. */
	int (*block)(void *ud, const struct h2_block *b);
	void *ud;
};

/* One direction of a connection. */
struct h2_dir {
	uint8_t preface_left; /* client direction: preface bytes still due */
	uint8_t rewrite; /* header frames go to the caller as blocks only */
	uint8_t head[H2_HEAD]; /* a frame head arriving in pieces */
	uint8_t head_len;
	struct h2_frame f; /* the frame being cut */
	uint32_t got; /* its payload bytes seen */
	char *frame; /* owned: a non-DATA frame, head included, gathered whole */
	size_t frame_cap;
	char *block; /* owned: a header block's fragments, gathered */
	size_t block_len, block_cap;
	struct h2_block pending; /* the block being gathered (fields unset) */
	uint8_t in_block; /* HEADERS/PUSH_PROMISE seen, END_HEADERS not yet */
	size_t boundary; /* in the last feed: bytes up to its last frame end */
	uint8_t at_boundary; /* the last feed ended between frames */
	uint8_t any_frame; /* a whole frame has been seen */
	nghttp2_hd_inflater *inflater; /* owned */
	nghttp2_hd_deflater *deflater; /* owned, rewrite only: towards the receiver */
	const char *error; /* why the last feed failed */
};

/* client_side: this direction carries the client's preface first.  rewrite:
 * header blocks are written again by the caller.  0 or -ENOMEM. */
int h2_dir_init(struct h2_dir *s, int client_side, int rewrite);
void h2_dir_fini(struct h2_dir *s);
/* Frees buffers an idle direction does not need (between frames). */
void h2_dir_trim(struct h2_dir *s);

/* Feeds n bytes; every frame callback for them is made before it
 * returns.  0, or -errno (s->error says why; -EPROTO: not HTTP/2 as it
 * must be, -EMSGSIZE: over a bound) or what a callback returned. */
int h2_feed(struct h2_dir *s, const char *buf, size_t n, const struct h2_sink *sink);

/* The receiver's SETTINGS_HEADER_TABLE_SIZE: what a rewriting direction's
 * encoder may use (at most 4096, our own choice). */
int h2_dir_encoder_size(struct h2_dir *s, uint32_t size);

/* Writes block b with fields nv[0..n) as HEADERS (+ CONTINUATION) frames
 * of at most 16384 bytes into out[0..cap), encoded by s's deflater.
 * Returns the length, or -ENOSPC / -EPROTO. */
int h2_write_block(struct h2_dir *s, const struct h2_block *b, const nghttp2_nv *nv, size_t n,
		   char *out, size_t cap);

/* Frames of our own for a receiver whose decoder we must not disturb:
 * HEADERS encoded with the static table and literals only.  Each returns
 * the length written into out[0..cap), or -ENOSPC. */
int h2_write_headers(int32_t id, int end_stream, const nghttp2_nv *nv, size_t n, char *out,
		     size_t cap);
int h2_write_data(int32_t id, int end_stream, const char *data, size_t len, char *out, size_t cap);
int h2_write_rst(int32_t id, uint32_t code, char *out, size_t cap);
int h2_write_window_update(int32_t id, uint32_t incr, char *out, size_t cap);

/* Reads a SETTINGS payload: calls fn for each (id, value).  -EPROTO when
 * its length is not a multiple of 6. */
int h2_settings_each(const char *payload, size_t len, void (*fn)(void *, uint16_t, uint32_t),
		     void *ud);

/* The value of header name (lower case) in nv[0..n), NUL-terminated by
 * nghttp2, or NULL. */
const char *h2_field(const nghttp2_nv *nv, size_t n, const char *name);

#endif
