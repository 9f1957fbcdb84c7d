#!/usr/bin/python3
"""Follow mdgate's stamped stream from the command line: the snapshot, then
every update in its topic's order, gaps repaired through SINCE.

    /usr/bin/python3 clients/python/follow.py --snapshot tcp://127.0.0.1:5558 \\
        --prefix md.fx. tcp://127.0.0.1:5559

One line an update: topic, seq, where it came from (live, snapshot, repair),
the value (first payload frame), "gap missed=N" when updates before it are
missing for good, and "diverged" when a failover pair's new active went on
from a seq at or below the one held (docs/ha.md). --json prints JSON lines
instead, with an event line once the snapshot is merged ({"event":
"started"}) and at the end ({"event": "done", "stats": {...}})."""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mdgate  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stamped", nargs="+", help="the stamped egress, e.g. tcp://127.0.0.1:5559 (a failover pair: both)")
    ap.add_argument("--snapshot", action="append",
                    help="the snapshot endpoint, e.g. tcp://127.0.0.1:5558 (repeatable: asked in turn; none: no snapshot, no repair)")
    ap.add_argument("--heartbeat", type=float,
                    help="a failover pair's --ha-heartbeat in seconds: vote after 3 silent ones (default 0.5 with two stamped endpoints)")
    ap.add_argument("--request-timeout", type=float, default=5.0, help="seconds to wait for a snapshot reply")
    ap.add_argument("--prefix", action="append", help="topic prefix (repeatable; default everything)")
    ap.add_argument("--rcvhwm", type=int, default=1000, help="the SUB's receive high-water mark")
    ap.add_argument("--json", action="store_true", help="JSON lines")
    ap.add_argument("--idle", type=float, help="stop after this many seconds without an update")
    ap.add_argument("--until-seq", type=int, help="stop once --topics topics have reached this seq")
    ap.add_argument("--topics", type=int, default=1, help="with --until-seq: how many topics")
    ap.add_argument("--slow-every", type=int, default=0, help="pause every N updates (to see repairs at work)")
    ap.add_argument("--slow-ms", type=float, default=0, help="the pause, in milliseconds")
    a = ap.parse_args()

    out = sys.stdout
    with mdgate.Client(a.stamped, a.snapshot, prefixes=a.prefix or [""], rcvhwm=a.rcvhwm, heartbeat=a.heartbeat,
                       request_timeout=a.request_timeout) as c:
        c.start()
        if a.json:
            print(json.dumps({"event": "started", "topics": len(c.topics()), "epoch": "%016x" % (c.epoch or 0)}), file=out, flush=True)
        reached, n = set(), 0
        if a.json:
            print(json.dumps({"event": "stats", "stats": dict(c.stats)}), file=out, flush=True)
        last_stats = time.monotonic()
        for u in c.updates(a.idle):
            if a.json:
                print(json.dumps({"t": u.topic, "s": u.seq, "e": "%016x" % u.epoch, "term": u.term, "src": u.source,
                                  "gap": u.gap, "missed": u.missed, "diverged": u.diverged,
                                  "v": u.value[:32].decode("latin-1")}), file=out)
            else:
                print(u.topic, u.seq, u.source, u.value.decode("utf-8", "replace"),
                      "gap missed=%d" % u.missed if u.gap else "", "diverged" if u.diverged else "", file=out)
            n += 1
            if a.json and time.monotonic() - last_stats >= 0.5:
                last_stats = time.monotonic()
                print(json.dumps({"event": "stats", "stats": dict(c.stats)}), file=out)
            if a.slow_every and n % a.slow_every == 0:
                out.flush()
                time.sleep(a.slow_ms / 1000)  # the consumer's slow work
            if a.until_seq is not None and u.seq >= a.until_seq:
                reached.add(u.topic)
                if len(reached) >= a.topics:
                    break
        if a.json:
            print(json.dumps({"event": "done", "stats": dict(c.stats)}), file=out, flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
