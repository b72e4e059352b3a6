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
    grpc_peer.py greeter ADDR PORT
        demo.Greeter with SayHello (unary; a request whose payload is
        b"fail" gets INTERNAL), Other (unary) and Stream (server streaming,
        5 messages); prints "listening", then "call NAME" for every call.
    grpc_peer.py calls HOST PORT N FAILS
        On ONE channel: N unary SayHello calls, FAILS of them (spread out)
        asking for INTERNAL, then one Stream call; prints
        "unary ok=A internal=B other=C" (C: any other outcome, listed on
        "unary_other ..." lines) and "stream messages=M code=CODE".
    grpc_peer.py methods HOST PORT N
        On ONE channel: N rounds of SayHello then Other; prints
        "method NAME CODE=COUNT ..." for each method (codes sorted).
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


def greeter(addr, port):
    def unary(name):
        def call(request, context):
            print("call %s" % name, flush=True)
            if request == b"fail":
                context.abort(grpc.StatusCode.INTERNAL, "asked to fail")
            return b"hello " + request
        return grpc.unary_unary_rpc_method_handler(call)

    def stream(request, context):
        print("call Stream", flush=True)
        for i in range(5):
            yield b"message %d" % i

    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "demo.Greeter", {"SayHello": unary("SayHello"), "Other": unary("Other"),
                         "Stream": grpc.unary_stream_rpc_method_handler(stream)}),))
    srv.add_insecure_port("%s:%d" % (addr, port))
    srv.start()
    print("listening", flush=True)
    srv.wait_for_termination(timeout=600)


def one_channel(host, port):
    return grpc.insecure_channel("%s:%d" % (host, port), options=[("grpc.enable_retries", 0)])


def calls(host, port, n, fails):
    ch = one_channel(host, port)
    say = ch.unary_unary("/demo.Greeter/SayHello")
    every = max(1, n // fails) if fails else 0
    ok = internal = 0
    other = []
    for i in range(n):
        fail = bool(every) and i % every == every - 1 and i // every < fails
        try:
            say(b"fail" if fail else b"x%d" % i, timeout=10)
            ok += 1
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INTERNAL:
                internal += 1
            else:
                other.append(e.code().name)
    print("unary ok=%d internal=%d other=%d" % (ok, internal, len(other)), flush=True)
    if other:
        print("unary_other %s" % " ".join(other[:20]), flush=True)
    got, code = 0, "OK"
    try:
        for _ in ch.unary_stream("/demo.Greeter/Stream")(b"s", timeout=10):
            got += 1
    except grpc.RpcError as e:
        code = e.code().name
    print("stream messages=%d code=%s" % (got, code), flush=True)
    ch.close()


def call(ch, name):
    """One unary call of /demo.Greeter/NAME: "OK" or the status code name."""
    try:
        ch.unary_unary("/demo.Greeter/" + name)(b"x", timeout=10)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def methods(host, port, rounds):
    ch = one_channel(host, port)
    seen = {"SayHello": {}, "Other": {}}
    for _ in range(rounds):
        for name in ("SayHello", "Other"):
            code = call(ch, name)
            seen[name][code] = seen[name].get(code, 0) + 1
    for name in ("SayHello", "Other"):
        print("method %s %s" % (name, " ".join("%s=%d" % kv for kv in sorted(seen[name].items()))),
              flush=True)
    ch.close()


def client(host, port, rounds):
    for i in range(rounds):
        ch = grpc.insecure_channel("%s:%d" % (host, port), options=[("grpc.enable_retries", 0)])
        for name in ("SayHello", "Other"):
            print("round %d %s %s" % (i, name, call(ch, name)), flush=True)
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
    elif role == "greeter":
        greeter(sys.argv[2], int(sys.argv[3]))
    elif role == "calls":
        calls(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif role == "methods":
        methods(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        bytewise(sys.argv[2], int(sys.argv[3]))
