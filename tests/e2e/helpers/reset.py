"""TCP reset, seen from the client.

    reset.py server ADDR PORT   for each client: read a few bytes, then close
                                with SO_LINGER {on, 0}, which sends a RST;
                                prints "reset n=N"
    reset.py client HOST PORT   connect, send "hello", wait (10 s at most)
                                and print result=ECONNRESET|EOF|DATA|TIMEOUT
"""
import errno
import socket
import struct
import sys


def server(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(16)
    print("listening", flush=True)
    n = 0
    while True:
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            c.recv(16)
        except OSError:
            pass
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        n += 1
        print("reset n=%d" % n, flush=True)


def client(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    s.sendall(b"hello")
    try:
        data = s.recv(100)
        print("result=%s" % ("DATA" if data else "EOF"), flush=True)
    except socket.timeout:
        print("result=TIMEOUT", flush=True)
    except OSError as e:
        print("result=%s" % errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    return 0


if __name__ == "__main__":
    fn = server if sys.argv[1] == "server" else client
    sys.exit(fn(sys.argv[2], int(sys.argv[3])))
