"""What mdgate's test peers (pub.py, sub.py) share; a module, not a script."""


def connect(s, spec):
    """Connects s to spec["endpoint"]; with spec["curve"] as a CURVE client
    (the gateway's public key, then our own pair), set before connect."""
    c = spec.get("curve")
    if c:
        s.curve_serverkey = c["server_key"].encode()
        s.curve_publickey = c["public"].encode()
        s.curve_secretkey = c["secret"].encode()
    s.connect(spec["endpoint"])
