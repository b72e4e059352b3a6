"""A long-lived connection driven from stdin, against an echo server.

    chat.py HOST PORT

Connects and prints "connected local=IP:PORT".  Then for each stdin line
"send N" it sends N bytes, reads N back (30 s at most) and prints "ok N" (or
"error ..."); at end of stdin it closes and prints "closed".
"""
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect((host, port))
    print("connected local=%s:%s" % s.getsockname()[:2], flush=True)
    for line in sys.stdin:
        n = int(line.split()[1])
        try:
            s.sendall(b"y" * (n - 1) + b"\n")  # see hold.py
            got = 0
            while got < n:
                d = s.recv(65536)
                if not d:
                    raise OSError("EOF after %d bytes" % got)
                got += len(d)
            print("ok %d" % n, flush=True)
        except OSError as e:
            print("error %r" % e, flush=True)
    s.close()
    print("closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
