"""Bulk transfer both ways at once, with sha256 of what each side sent and got.

    bulk.py server ADDR PORT NBYTES   accept one client, then keep listening
                                      (idle, 120 s at most) until killed
    bulk.py client HOST PORT NBYTES   connect

Each side sends NBYTES of seeded pseudo-random data (seed 1 client, 2 server)
while it reads the other's stream, half-closes after sending, reads to
end-of-file and prints one JSON line: sent_sha256, sent_bytes, recv_sha256,
recv_bytes, peer, local.  All socket waits are bounded (socket timeout).
"""
import hashlib
import json
import random
import socket
import sys
import threading
import time

CHUNK = 1 << 20
TIMEOUT = 120


def send_all(sock, nbytes, seed, out):
    block = random.Random(seed).randbytes(CHUNK)
    h = hashlib.sha256()
    left = nbytes
    while left:
        piece = block if left >= CHUNK else block[:left]
        sock.sendall(piece)
        h.update(piece)
        left -= len(piece)
    sock.shutdown(socket.SHUT_WR)
    out["sent_sha256"] = h.hexdigest()
    out["sent_bytes"] = nbytes


def recv_all(sock, out):
    h = hashlib.sha256()
    total = 0
    while True:
        data = sock.recv(CHUNK)
        if not data:
            break
        h.update(data)
        total += len(data)
    out["recv_sha256"] = h.hexdigest()
    out["recv_bytes"] = total


def exchange(sock, nbytes, seed):
    out = {}
    errors = []

    def run(fn, *args):
        try:
            fn(*args)
        except Exception as e:  # reported in the JSON line
            errors.append("%s: %r" % (fn.__name__, e))

    t = threading.Thread(target=run, args=(send_all, sock, nbytes, seed, out))
    t.start()
    run(recv_all, sock, out)
    t.join(TIMEOUT)
    out["peer"] = "%s:%s" % sock.getpeername()[:2]
    out["local"] = "%s:%s" % sock.getsockname()[:2]
    out["errors"] = errors
    print(json.dumps(out), flush=True)
    return 0 if not errors else 1


def main():
    role, host, port, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    if role == "server":
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, port))
        ls.listen(8)
        print("listening", flush=True)
        ls.settimeout(TIMEOUT)
        sock, _ = ls.accept()
    else:
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect((host, port))
    sock.settimeout(TIMEOUT)
    rc = exchange(sock, nbytes, 2 if role == "server" else 1)
    if role == "server":
        time.sleep(TIMEOUT)
    return rc


if __name__ == "__main__":
    sys.exit(main())
