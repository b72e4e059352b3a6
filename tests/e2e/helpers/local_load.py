"""Request load for the same-pod tests.

    local_load.py URL SEQ CONC
SEQ sequential GETs on new connections, then CONC at once (one thread
each, all started together); every answer must be 200.  Prints
"ok=N fail=M" and, for a JSON answer, "peers=a,b" (the app's view of the
client addresses), then the first failure if any.
"""
import http.client
import json
import sys
import threading
import urllib.parse

url, seq, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
u = urllib.parse.urlsplit(url)
ok, fail, peers, first = 0, 0, set(), []
lock = threading.Lock()


def one():
    global ok, fail
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
        c.request("GET", u.path or "/")
        r = c.getresponse()
        body = r.read()
        c.close()
        good = r.status == 200
        peer = None
        try:
            peer = json.loads(body).get("peer")
        except ValueError:
            pass
        with lock:
            ok += good
            fail += not good
            if peer:
                peers.add(peer)
            if not good and not first:
                first.append("status %d" % r.status)
    except Exception as e:  # noqa: BLE001 (count whatever failed)
        with lock:
            fail += 1
            if not first:
                first.append("%s: %s" % (type(e).__name__, e))


for _ in range(seq):
    one()
go = threading.Barrier(conc)


def waiting():
    go.wait(timeout=30)
    one()


ts = [threading.Thread(target=waiting) for _ in range(conc)]
for t in ts:
    t.start()
for t in ts:
    t.join(60)
print("ok=%d fail=%d" % (ok, fail))
print("peers=%s" % ",".join(sorted(peers)))
if first:
    print("first failure: %s" % first[0])
