"""A TCP server that records what reaches it, for the policy tests.

    recorder.py ADDR PORT
Prints "listening", then "accept" for each connection and one line when
it ends:
"conn bytes=N first=HEX" (the first 16 bytes).  A connection whose first
bytes are an HTTP/1.x GET is answered "200 OK" with the path as the body
and logged as "http GET PATH" instead.  Each connection is read for at
most 5 s.
"""
import socket
import sys
import threading


def handle(c):
    data = b""
    c.settimeout(5)
    try:
        while True:
            if data.startswith(b"GET ") and b"\r\n\r\n" in data:
                path = data.split(b" ")[1].decode(errors="replace")
                body = path.encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                          % (len(body), body))
                print("http GET %s" % path, flush=True)
                return
            b = c.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    finally:
        c.close()
    print("conn bytes=%d first=%s" % (len(data), data[:16].hex()), flush=True)


def main():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[1], int(sys.argv[2])))
    ls.listen(128)
    print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        print("accept", flush=True)
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
