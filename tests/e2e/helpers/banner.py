"""Server-speaks-first probe: connect, send nothing, time the first bytes.

    banner.py HOST PORT

Prints "banner=<first line> ms=<milliseconds from connect() to first byte>"
or "banner= ms=-1 error=..." when nothing came within 20 s.
"""
import socket
import sys
import time


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(20)
    t0 = time.monotonic()
    s.connect((host, port))
    try:
        data = s.recv(256)
    except OSError as e:
        print("banner= ms=-1 error=%r" % e, flush=True)
        return 1
    ms = int((time.monotonic() - t0) * 1000)
    line = data.split(b"\n")[0].decode("latin-1").strip()
    print("banner=%s ms=%d" % (line, ms), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
