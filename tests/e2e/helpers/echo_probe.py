"""Sends small payloads that are neither complete HTTP request lines nor
TLS records to an echo server, one connection each, and reports how long
the echo took.

    echo_probe.py HOST PORT

Prints one line per payload: "<name> ok <ms>" or "<name> TIMEOUT got=<n>"
(3 s at most each).  Through the mesh such bytes are opaque TCP: they must
be forwarded at once, not held while the daemon waits for more.
"""
import socket
import sys
import time

PAYLOADS = [
    ("token", b"hello"),
    ("two-words", b"hello world"),
    ("method-only", b"GET"),
    ("partial-request-line", b"GET /index.html HTTP/1.1"),
    ("redis-inline", b"PING"),
    ("binary", b"\x00\x01\x02\xff"),
    ("line", b"hello\n"),
]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for name, payload in PAYLOADS:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((host, port))
        t0 = time.monotonic()
        s.sendall(payload)
        got = b""
        try:
            while len(got) < len(payload):
                d = s.recv(65536)
                if not d:
                    break
                got += d
            ok = got == payload
        except socket.timeout:
            ok = False
        ms = int((time.monotonic() - t0) * 1000)
        print("%s %s %d" % (name, "ok" if ok else "TIMEOUT got=%d" % len(got), ms), flush=True)
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
