"""A libzmq publisher for mdgate's tests.

spec: {"endpoint": str, "socket": "pub"|"xpub", "rate": kbit/s (epgm), "messages": [[frame...]...],
       "b64": bool, "repeat": int, "interval_ms": int, "abort_mid_message": bool,
       "curve": {"server_key", "public", "secret"} (optional, Z85)}
With socket "xpub" the publisher waits for the gateway's subscription before it
sends (no slow-joiner loss); with "pub" it is a plain PUB and sends at once.
Prints {"event":"sent","count":N} then exits; with abort_mid_message it sends
the first frame of one more message with SNDMORE and dies without finishing it.
"""
import base64, json, os, sys, time
import zmq

import peer

spec = json.loads(sys.argv[1])
ctx = zmq.Context()
kind = zmq.XPUB if spec.get("socket", "xpub") == "xpub" else zmq.PUB
s = ctx.socket(kind)
s.setsockopt(zmq.SNDHWM, 0)
s.setsockopt(zmq.LINGER, 5000)
if "rate" in spec:
    s.setsockopt(zmq.RATE, spec["rate"])  # multicast: before connect
peer.connect(s, spec)
if kind == zmq.XPUB:
    s.recv()  # the gateway's subscribe frame
def dec(f):
    return base64.b64decode(f) if spec.get("b64") else f.encode()
msgs = [[dec(f) for f in m] for m in spec.get("messages", [])]
n = 0
interval = spec.get("interval_ms", 0) / 1000.0
for _ in range(spec.get("repeat", 1)):
    for m in msgs:
        s.send_multipart(m)
        n += 1
        if interval:
            time.sleep(interval)
print(json.dumps({"event": "sent", "count": n}), flush=True)
if spec.get("abort_mid_message"):
    s.send(b"md.partial", zmq.SNDMORE)
    sys.stdin.read()  # the test closes stdin once the gateway has the rest
    os._exit(0)
if spec.get("hold"):
    sys.stdin.read()  # stay connected until the test closes stdin
s.close()
ctx.term()
