"""An HTTP/1.1 server that honours `Upgrade: h2c` (RFC 7540 section 3.2),
built on python3-h2, for the h2c smuggling tests.  Like Go's h2c handler,
Node and many gRPC gateways, it switches to HTTP/2 when a request asks.

    h2c_server.py ADDR PORT [echo-headers]
Prints "listening", then "served http1 PATH" or "served h2 PATH" for every
request it answers (its own log: the evidence of what reached the app).
Every answer is 200 with the path as the body.  With echo-headers, an
HTTP/2 request is answered with the header fields it arrived with instead
(a JSON list of [name, value] pairs, in order, pseudo-headers included),
and the line "headers PATH JSON" is printed before "served h2 PATH".
"""
import json
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

# print() writes the text and the newline separately: from several threads
# lines could interleave ("acceptaccept").  One locked write per line.
OUT_LOCK = threading.Lock()
ECHO_HEADERS = False


def say(line):
    with OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def h2_loop(c, conn, first_path, data=b""):
    if first_path is not None:
        answer_h2(c, conn, 1, first_path)
    while True:
        if not data:
            data = c.recv(65536)
        if not data:
            return
        events, data = conn.receive_data(data), b""
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                fields = [(k.decode() if isinstance(k, bytes) else k,
                           v.decode() if isinstance(v, bytes) else v) for k, v in ev.headers]
                path = dict(fields).get(":path", "")
                answer_h2(c, conn, ev.stream_id, path, fields)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                c.sendall(conn.data_to_send())
                return
        c.sendall(conn.data_to_send())


def answer_h2(c, conn, stream_id, path, fields=None):
    body = path.encode()
    if ECHO_HEADERS and fields is not None:
        text = json.dumps(fields)
        say("headers %s %s" % (path, text))
        body = text.encode()
    conn.send_headers(stream_id, [(":status", "200"), ("content-length", str(len(body)))])
    conn.send_data(stream_id, body, end_stream=True)
    c.sendall(conn.data_to_send())
    say("served h2 %s" % path)


def handle(c):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                if buf.startswith(b"PRI * HTTP/2.0"):
                    conn = h2.connection.H2Connection(h2.config.H2Configuration(
                        client_side=False))
                    conn.initiate_connection()
                    c.sendall(conn.data_to_send())
                    return h2_loop(c, conn, None, buf)
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            n = int(hdrs.get("content-length", "0") or 0)
            while len(buf) < n:
                buf += c.recv(65536)
            buf = buf[n:]
            upgrade = [t.strip().lower() for t in hdrs.get("upgrade", "").split(",")]
            if "h2c" in upgrade and "http2-settings" in hdrs:
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          b"Upgrade: h2c\r\n\r\n")
                conn = h2.connection.H2Connection(h2.config.H2Configuration(
                    client_side=False))
                conn.initiate_upgrade_connection(hdrs["http2-settings"])
                c.sendall(conn.data_to_send())
                return h2_loop(c, conn, path, buf)
            body = path.encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            say("served http1 %s" % path)
    except (OSError, ValueError, h2.exceptions.ProtocolError) as e:
        say("connection error %s" % type(e).__name__)
    finally:
        c.close()


def main():
    global ECHO_HEADERS
    ECHO_HEADERS = sys.argv[3:4] == ["echo-headers"]
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[1], int(sys.argv[2])))
    ls.listen(64)
    say("listening")
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
