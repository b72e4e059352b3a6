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

# print() writes the text and the newline separately: from several threads
# lines could interleave ("acceptaccept").  One locked write per line.
OUT_LOCK = threading.Lock()


def say(line):
    with OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


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
                say("http GET %s" % path)
                return
            b = c.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    finally:
        c.close()
    say("conn bytes=%d first=%s" % (len(data), data[:16].hex()))


def main():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[1], int(sys.argv[2])))
    ls.listen(128)
    say("listening")
    while True:
        c, _ = ls.accept()
        say("accept")
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
