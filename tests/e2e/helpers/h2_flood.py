"""A raw HTTP/2 (h2c, prior knowledge) client that floods a server with
frames a well-behaved client never sends, for the HTTP/2 observer tests.
Frames are built by hand (hpack only encodes the small request heads).

    h2_flood.py MODE HOST PORT PATH
MODE:
    settings   the preface, then 20,000 SETTINGS frames (one entry each)
               without reading their ACKs, then GET PATH
    tiny       GET PATH whose header block comes as a 1-byte HEADERS
               fragment and 4,000 1-byte CONTINUATION frames, then on a
               second stream a POST with 20,000 empty DATA frames and a
               last one that ends it
    bigheader  GET PATH with a header block of 1 MiB (one x-big header)
               in a HEADERS frame and 16 KiB CONTINUATION frames

Prints one line and exits 0:
    outcome MODE sent=BYTES result=R seconds=S
where R is what ended the exchange: status:NNN (the response to the last
request), goaway:CODE, rst_stream:CODE, eof, reset, stalled (the peer
stopped reading what we sent for 10 s: flow control bounded us) or
timeout (nothing came back for 15 s after everything was sent).  Every
wait is bounded; the whole run takes at most about 40 s.
"""
import socket
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream & 0x7FFFFFFF) + payload


def head(enc, method, host, port, path, extra=()):
    return enc.encode([(":method", method), (":scheme", "http"),
                       (":authority", "%s:%d" % (host, port)), (":path", path)]
                      + list(extra), huffman=False)


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_never_indexed(name, value):
    """A literal header field, never indexed, new name, no Huffman."""
    return b"\x10" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = 0
        self.buf = b""

    def send(self, data):
        self.s.settimeout(10)
        self.s.sendall(data)
        self.sent += len(data)

    def wait_answer(self, stream, limit=15):
        """Reads frames until the response head on stream, a GOAWAY, an
        RST_STREAM on stream, EOF or reset; ACKs nothing."""
        deadline = time.monotonic() + limit
        dec = hpack.Decoder()
        dec.max_header_list_size = 1 << 30
        block, block_stream = b"", None
        while time.monotonic() < deadline:
            while len(self.buf) >= 9:
                n = struct.unpack(">I", b"\x00" + self.buf[:3])[0]
                if len(self.buf) < 9 + n:
                    break
                ftype, flags = self.buf[3], self.buf[4]
                sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                payload = self.buf[9:9 + n]
                self.buf = self.buf[9 + n:]
                if ftype == GOAWAY:
                    code = struct.unpack(">I", payload[4:8])[0] if len(payload) >= 8 else -1
                    return "goaway:%d" % code
                if ftype == RST_STREAM and sid == stream:
                    return "rst_stream:%d" % struct.unpack(">I", payload[:4])[0]
                if ftype in (HEADERS, CONTINUATION):
                    if ftype == HEADERS:
                        p = payload
                        if flags & 0x8:  # PADDED
                            p = p[1:len(p) - p[0]]
                        if flags & 0x20:  # PRIORITY
                            p = p[5:]
                        block, block_stream = p, sid
                    else:
                        block += payload
                    if flags & END_HEADERS:
                        try:
                            hdrs = dec.decode(block)
                        except Exception as e:  # a broken block: say so
                            return "bad_headers:%s" % type(e).__name__
                        if block_stream == stream:
                            for k, v in hdrs:
                                k = k.decode() if isinstance(k, bytes) else k
                                if k == ":status":
                                    return "status:%s" % (v.decode() if isinstance(v, bytes)
                                                          else v)
            self.s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                got = self.s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                return "reset"
            if not got:
                return "eof"
            self.buf += got
        return "timeout"


def settings_flood(c, host, port, path):
    c.send(PREFACE + frame(SETTINGS, 0, 0))
    one = frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100))  # MAX_CONCURRENT_STREAMS
    for _ in range(20):
        c.send(one * 1000)
    enc = hpack.Encoder()
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, head(enc, "GET", host, port, path)))
    return 1


def tiny_flood(c, host, port, path):
    c.send(PREFACE + frame(SETTINGS, 0, 0))
    enc = hpack.Encoder()
    block = head(enc, "GET", host, port, path,
                 [("x-pad", "p" * 3000)])  # long enough for 4,000 fragments
    parts = [frame(HEADERS, END_STREAM, 1, block[:1])]
    for i in range(1, len(block)):
        parts.append(frame(CONTINUATION, END_HEADERS if i == len(block) - 1 else 0, 1,
                           block[i:i + 1]))
    c.send(b"".join(parts))
    post = head(enc, "POST", host, port, path)
    c.send(frame(HEADERS, END_HEADERS, 3, post))
    empty = frame(DATA, 0, 3)
    for _ in range(20):
        c.send(empty * 1000)
    c.send(frame(DATA, END_STREAM, 3))
    return 1


def bigheader_flood(c, host, port, path):
    c.send(PREFACE + frame(SETTINGS, 0, 0))
    enc = hpack.Encoder()
    block = head(enc, "GET", host, port, path) + literal_never_indexed(b"x-big", b"a" * (1 << 20))
    step = 16384
    chunks = [block[i:i + step] for i in range(0, len(block), step)]
    out = [frame(HEADERS, END_STREAM | (END_HEADERS if len(chunks) == 1 else 0), 1, chunks[0])]
    for i, ch in enumerate(chunks[1:], 1):
        out.append(frame(CONTINUATION, END_HEADERS if i == len(chunks) - 1 else 0, 1, ch))
    for piece in out:
        c.send(piece)
    return 1


MODES = {"settings": settings_flood, "tiny": tiny_flood, "bigheader": bigheader_flood}


def main():
    mode, host, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    t0 = time.monotonic()
    c = None
    try:
        c = Conn(host, port)
        stream = MODES[mode](c, host, port, path)
        result = c.wait_answer(stream)
    except socket.timeout:
        result = "stalled"
    except ConnectionResetError:
        result = "reset"
    except BrokenPipeError:
        result = "eof"
    except ConnectionRefusedError:
        result = "refused"
    except OSError as e:
        result = "error:%s" % type(e).__name__
    print("outcome %s sent=%d result=%s seconds=%.1f" % (
        mode, c.sent if c else 0, result, time.monotonic() - t0), flush=True)


if __name__ == "__main__":
    main()
