"""Many concurrent connections to a line echo server.

    many.py serve ADDR PORT      echo server (every line back), "listening"
    many.py client HOST PORT N   opens N connections, one after another,
                                 all kept open; a round trip on each ("first=K": K
                                 came back right), then, after a line on
                                 stdin, a second ("second=K"); after one
                                 more line (or end of input) it closes them
                                 all and prints "closed"

Every wait is bounded (60 s).
"""
import selectors
import socket
import sys
import time


def serve(addr, port):
    sel = selectors.DefaultSelector()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(4096)
    srv.setblocking(False)
    sel.register(srv, selectors.EVENT_READ)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is srv:
                c, _ = srv.accept()
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                continue
            s.setblocking(True)
            s.sendall(data)
            s.setblocking(False)


def round_trip(conns, tag):
    """Sends a line on every connection at once, then collects the echoes."""
    sel = selectors.DefaultSelector()
    want, got = {}, {}
    for i, c in enumerate(conns):
        msg = b"%s %d %s\n" % (tag, i, b"x" * (i % 50))
        c.sendall(msg)
        want[c] = msg
        got[c] = b""
        sel.register(c, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    left = len(conns)
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            c = key.fileobj
            d = c.recv(65536)
            got[c] += d
            if not d or len(got[c]) >= len(want[c]):
                sel.unregister(c)
                left -= 1
    return sum(got[c] == want[c] for c in conns)


def client(host, port, n):
    conns = []
    for _ in range(n):
        c = socket.socket()
        c.settimeout(60)
        c.connect((host, port))
        conns.append(c)
    print("first=%d" % round_trip(conns, b"first"), flush=True)
    sys.stdin.readline()
    print("second=%d" % round_trip(conns, b"second"), flush=True)
    sys.stdin.readline()
    for c in conns:
        c.close()
    print("closed", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
