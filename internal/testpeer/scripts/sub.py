"""A libzmq subscriber for mdgate's tests.

spec: {"endpoint": str, "prefixes": [str], "count": int, "timeout_ms": int,
       "curve": {"server_key", "public", "secret"} (optional, Z85)}
Prints {"event":"ready"} once connected, then one line per message:
{"frames": [base64...]}. Exits after count messages or timeout_ms of silence.
"""
import base64, json, sys
import zmq

import peer

spec = json.loads(sys.argv[1])
ctx = zmq.Context()
s = ctx.socket(zmq.SUB)
s.setsockopt(zmq.RCVHWM, 0)
for p in spec.get("prefixes", [""]):
    s.setsockopt(zmq.SUBSCRIBE, p.encode())
peer.connect(s, spec)
print(json.dumps({"event": "ready"}), flush=True)
s.setsockopt(zmq.RCVTIMEO, spec.get("timeout_ms", 10000))
n = 0
want = spec.get("count", 0)
try:
    while want == 0 or n < want:
        m = s.recv_multipart()
        n += 1
        print(json.dumps({"frames": [base64.b64encode(f).decode() for f in m]}), flush=True)
except zmq.Again:
    pass
print(json.dumps({"event": "done", "count": n}), flush=True)
s.close(0)
ctx.term()
