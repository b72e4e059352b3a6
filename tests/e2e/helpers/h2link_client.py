"""An independent HTTP/2 peer for a daemon's link port (python3-h2 from
Debian, not our code): mTLS with the given certificate, ALPN h2, one
CONNECT stream to AUTHORITY, then an HTTP/1.0 GET through it.

    h2link_client.py HOST PORT CERT KEY BUNDLE AUTHORITY FORWARDED

Prints "tls=ok" or "tls_error=...", then "status=NNN", then (for a 2xx)
"body=<the response body as JSON string>"; exits 0 when it got that far,
whatever the status."""
import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events


def main():
    host, port, cert, key, bundle, authority, forwarded = sys.argv[1:8]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # an SVID names a SPIFFE ID, not a host
    ctx.load_verify_locations(bundle)
    if cert != "-":
        ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, int(port)), timeout=10)
    try:
        s = ctx.wrap_socket(raw)
        # TLS 1.3: a refused client certificate shows on the first read.
        s.settimeout(10)
    except (ssl.SSLError, OSError) as e:
        print("tls_error=%s" % e, flush=True)
        return 0
    # python3-h2 4.1 checks requests for :path and :scheme, which a plain
    # CONNECT (RFC 9113 8.5) must not carry: its own check is turned off.
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(b":method", b"CONNECT"), (b":authority", authority.encode()),
                            (b"forwarded", forwarded.encode())])
    try:
        s.sendall(conn.data_to_send())
    except (ssl.SSLError, OSError) as e:
        print("tls_error=%s" % e, flush=True)
        return 0
    status, body, sent, done = None, b"", False, False
    while not done:
        try:
            data = s.recv(65536)
        except (ssl.SSLError, OSError) as e:
            print("tls_error=%s" % e if status is None else "error=%s" % e, flush=True)
            return 0
        if not data:
            break
        if status is None:
            print("tls=ok", flush=True)
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                status = int(dict(ev.headers)[b":status"])
                print("status=%d" % status, flush=True)
                if 200 <= status < 300 and not sent:
                    conn.send_data(sid, b"GET /index.html HTTP/1.0\r\n\r\n")
                    sent = True
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) and \
                    ev.stream_id == sid:
                done = True
        s.sendall(conn.data_to_send())
    if status is None:
        print("tls=ok", flush=True)
        print("status=none", flush=True)
    elif 200 <= status < 300:
        print("body=%s" % json.dumps(body.decode(errors="replace")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
