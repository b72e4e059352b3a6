"""Opens one connection, exchanges NBYTES with an echo server, then holds it.

    hold.py HOST PORT NBYTES

Prints "ready local=IP:PORT peer=IP:PORT" once the echo came back, then
keeps the connection open until stdin is closed (or 60 s pass), and closes.
"""
import select
import socket
import sys


def main():
    host, port, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect((host, port))
    # newline-terminated, so this test does not depend on how fast the
    # daemons classify the stream (test_opaque_bytes_* covers that)
    s.sendall(b"x" * (nbytes - 1) + b"\n")
    got = 0
    while got < nbytes:
        d = s.recv(65536)
        if not d:
            print("eof after %d bytes" % got, flush=True)
            return 1
        got += len(d)
    print("ready local=%s:%s peer=%s:%s" % (s.getsockname()[:2] + s.getpeername()[:2]),
          flush=True)
    select.select([sys.stdin], [], [], 60)
    s.close()
    print("closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
