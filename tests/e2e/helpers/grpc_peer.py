"""gRPC peers for the policy tests, with python3-grpcio and no generated
code (raw bytes in and out).

    grpc_peer.py server ADDR PORT
        demo.Greeter with SayHello and Other; prints "listening", then
        "call NAME" for every call it serves.
    grpc_peer.py client HOST PORT N
        N rounds, each on a fresh channel: calls /demo.Greeter/SayHello and
        /demo.Greeter/Other once and prints "round I NAME CODE" (OK, or
        the gRPC status code name).
    grpc_peer.py bytewise HOST PORT
        A raw TCP client that writes the HTTP/2 client preface one byte
        at a time (each its own segment), then an empty SETTINGS frame, and
        prints what came back: "got N first_type T", "eof" or "error E".
"""
import socket
import sys
import time
from concurrent import futures

import grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def serve(addr, port):
    def handler(name):
        def call(request, context):
            print("call %s" % name, flush=True)
            return b"hello " + request
        return grpc.unary_unary_rpc_method_handler(call)

    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "demo.Greeter", {"SayHello": handler("SayHello"), "Other": handler("Other")}),))
    srv.add_insecure_port("%s:%d" % (addr, port))
    srv.start()
    print("listening", flush=True)
    srv.wait_for_termination(timeout=600)


def client(host, port, rounds):
    for i in range(rounds):
        ch = grpc.insecure_channel("%s:%d" % (host, port), options=[("grpc.enable_retries", 0)])
        for name in ("SayHello", "Other"):
            try:
                ch.unary_unary("/demo.Greeter/" + name)(b"x", timeout=10)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            print("round %d %s %s" % (i, name, code), flush=True)
        ch.close()


def bytewise(host, port):
    try:
        # Inside the try: through the mesh, connect() returns once mTLS is
        # up, and a server app that speaks first (gRPC sends SETTINGS) can
        # get the connection refused before that: ECONNRESET from connect.
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(PREFACE)):
            s.sendall(PREFACE[i:i + 1])
            time.sleep(0.02)
        s.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # SETTINGS, empty
        s.settimeout(5)
        got = s.recv(65536)
    except OSError as e:
        print("error %s" % type(e).__name__, flush=True)
        return
    if not got:
        print("eof", flush=True)
    else:
        print("got %d first_type %d" % (len(got), got[3] if len(got) > 3 else -1), flush=True)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "server":
        serve(sys.argv[2], int(sys.argv[3]))
    elif role == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        bytewise(sys.argv[2], int(sys.argv[3]))
