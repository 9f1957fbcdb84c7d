"""Unit checks of the mdgate Python client, without a gateway: the wire
formats, and the client's sequence rule fed frames directly (its requests
captured instead of sent). Run: /usr/bin/python3 -m unittest discover -s
clients/python (the Go test clients/python/python_test.go runs them too)."""

import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mdgate  # noqa: E402
from mdgate import wire  # noqa: E402
import zmq  # noqa: E402

E = 0x1F2E3D4C5B6A7988


def stamp(seq, epoch=E, flags=0, ingress=1764094988123456789, term=0):
    return wire.encode_stamp(wire.Stamp(epoch, seq, ingress, flags, term))


def live(topic, seq, epoch=E, flags=0, term=0):
    return [topic.encode(), b"%s:%d" % (topic.encode(), seq), stamp(seq, epoch, flags, term=term)]


def val(topic, seq, epoch=E, term=0):
    return [b"VAL", stamp(seq, epoch, term=term), topic.encode(), b"%s:%d" % (topic.encode(), seq)]


def end(count, status=None, missed=0, epoch=E):
    f = [b"END", struct.pack(">Q", count), struct.pack(">Q", epoch)]
    if status is not None:
        f += [status.encode(), struct.pack(">Q", missed)]
    return f


class WireTest(unittest.TestCase):
    def test_stamp_round_trip(self):
        st = wire.Stamp(E, 42, -5, wire.FLAG_REPLAY | wire.FLAG_STALE)
        b = wire.encode_stamp(st)
        self.assertEqual(len(b), 32)
        self.assertEqual(b[:8], b"MDGS\x01\x03\x00\x00")
        self.assertEqual(wire.parse_stamp(b), st)

    def test_stamp_with_term(self):
        st = wire.Stamp(E, 42, -5, wire.FLAG_REPLAY, term=0x0102)
        b = wire.encode_stamp(st)
        self.assertEqual(b[:8], b"MDGS\x02\x01\x01\x02")  # version 2, term big-endian in bytes 6-7
        self.assertEqual(wire.parse_stamp(b), st)

    def test_bad_stamps(self):
        good = stamp(1)
        for name, b in [("short", good[:31]), ("long", good + b"\x00"), ("magic", b"XDGS" + good[4:]),
                        ("version", good[:4] + b"\x02" + good[5:]), ("reserved", good[:6] + b"\x00\x01" + good[8:])]:
            with self.subTest(name), self.assertRaises(wire.WireError):
                wire.parse_stamp(b)

    def test_requests(self):
        self.assertEqual(wire.since_request("md.eq.AAPL", E, 41),
                         [b"SINCE", b"md.eq.AAPL", bytes.fromhex("1f2e3d4c5b6a7988"), bytes.fromhex("0000000000000029")])
        self.assertEqual(wire.snap_request("md."), [b"SNAP", b"md."])

    def test_replies(self):
        r = wire.parse_reply(val("t", 3))
        self.assertEqual((r.kind, r.topic, r.stamp.seq, r.frames), ("VAL", "t", 3, [b"t", b"t:3"]))
        r = wire.parse_reply(end(2))
        self.assertEqual((r.kind, r.count, r.epoch, r.status), ("END", 2, E, None))
        r = wire.parse_reply(end(2, "gap", 3))
        self.assertEqual((r.status, r.missed), ("gap", 3))
        r = wire.parse_reply([b"ERR", b"busy", b"later"])
        self.assertEqual((r.kind, r.code, r.text), ("ERR", "busy", "later"))
        for name, f in [("empty", []), ("short VAL", [b"VAL", stamp(1)]), ("END of 4", end(1)[:3] + [b"gap"]),
                        ("END status", end(1, "lost")), ("unknown", [b"HELLO"])]:
            with self.subTest(name), self.assertRaises(wire.WireError):
                wire.parse_reply(f)


class RuleTest(unittest.TestCase):
    """The sequence rule, with the client's requests captured."""

    def client(self, snapshot="tcp://unused:1", stamped="tcp://unused:2", **kw):
        c = mdgate.Client(stamped, snapshot, **kw)
        c._started = True
        self.sent = []
        c._send = self.sent.append
        return c

    def drain(self, c):
        out = []
        while c._ready:
            u = c._ready.popleft()
            out.append("%s%d%s%s%s" % (u.topic, u.seq, {"live": "", "repair": "r", "snapshot": "s"}[u.source],
                                       "!%d" % u.missed if u.gap else "", "~" if u.diverged else ""))
        return " ".join(out)

    def test_in_order_and_repeats(self):
        c = self.client()
        for seq in (1, 2, 2, 1, 3):
            c._on_live(live("t", seq))
        c._on_live(live("t", 3, flags=wire.FLAG_REPLAY))
        self.assertEqual(self.drain(c), "t1 t2 t3")
        self.assertEqual(c.last("t").value, b"t:3")

    def test_repaired(self):
        c = self.client()
        for seq in (1, 2, 5, 6):
            c._on_live(live("t", seq))
        c._on_live(live("u", 1))  # another topic goes on meanwhile
        self.assertEqual(self.sent, [wire.since_request("t", E, 2)])
        self.assertEqual(c.repairing(), ["t"])
        for f in (val("t", 3), val("t", 4), val("t", 5), end(3, "recovered")):
            c._on_reply(f)
        self.assertEqual(self.drain(c), "t1 t2 u1 t3r t4r t5r t6")
        self.assertEqual((c.repairing(), c.stats["repairs"], c.stats["gaps"]), ([], 1, 0))

    def test_repairs_one_at_a_time(self):
        c = self.client()
        for topic in ("a", "b"):
            c._on_live(live(topic, 1))
            c._on_live(live(topic, 3))
        self.assertEqual(self.sent, [wire.since_request("a", E, 1)])
        c._on_reply(val("a", 2))
        c._on_reply(end(1, "recovered"))
        self.assertEqual(self.sent[1:], [wire.since_request("b", E, 1)])
        c._on_reply(val("b", 2))
        c._on_reply(end(1, "recovered"))
        self.assertEqual(self.drain(c), "a1 b1 a2r a3 b2r b3")

    def test_gap_reported(self):
        c = self.client()
        for seq in (1, 2, 9):
            c._on_live(live("t", seq))
        for f in (val("t", 6), val("t", 7), val("t", 8), val("t", 9), end(4, "gap", 3)):
            c._on_reply(f)
        self.assertEqual(self.drain(c), "t1 t2 t6r!3 t7r t8r t9r")
        self.assertEqual((c.stats["gaps"], c.stats["missed"]), (1, 3))

    def test_nohistory_falls_back_to_snap(self):
        c = self.client()
        for seq in (1, 2, 9, 10):
            c._on_live(live("t", seq))
        c._on_reply(end(0, "nohistory"))
        self.assertEqual(self.sent[1:], [wire.snap_request("t")])
        for f in (val("t", 9), val("t2", 4), end(2)):  # t2: under the prefix t, not the topic
            c._on_reply(f)
        self.assertEqual(self.drain(c), "t1 t2 t9s!6 t10")
        self.assertIsNone(c.last("t2"))

    def test_nothing_after_the_point_falls_back_to_snap(self):
        c = self.client()
        for seq in (1, 5):
            c._on_live(live("t", seq))
        c._on_reply(end(0, "gap", 4))  # the history holds nothing after 1, though t is at 5
        self.assertEqual(self.sent[1:], [wire.snap_request("t")])
        c._on_reply(val("t", 5))
        c._on_reply(end(1))
        self.assertEqual(self.drain(c), "t1 t5s!3")

    def test_deleted_meanwhile(self):
        c = self.client()
        for seq in (1, 5):
            c._on_live(live("t", seq))
        c._on_reply(end(0, "nohistory"))
        c._on_reply(end(0))  # the SNAP of t: no value
        u = [c._ready.popleft() for _ in range(2)][1]
        self.assertTrue(u.deleted and u.gap and u.source == "snapshot", u)
        self.assertFalse(c._ready)  # the held 5 is older than the deletion: let go
        self.assertEqual((c.topics(), c.repairing(), c.stats["held_dropped"]), ([], [], 1))
        c._on_live(live("t", 9))  # created again: a fresh start
        self.assertEqual(self.drain(c), "t9")

    def test_busy_is_retried(self):
        c = self.client()
        for seq in (1, 3):
            c._on_live(live("t", seq))
        c._on_reply([b"ERR", b"busy", b"try later"])
        self.assertEqual((c.stats["retries"], len(c._queue)), (1, 1))
        c._queue[0].not_before = 0
        c._send_next()
        self.assertEqual(self.sent, [wire.since_request("t", E, 1)] * 2)

    def test_bad_request_raises(self):
        c = self.client()
        for seq in (1, 3):
            c._on_live(live("t", seq))
        with self.assertRaises(mdgate.MdgateError):
            c._on_reply([b"ERR", b"bad_seq", b"no"])

    def test_epoch_change(self):
        c = self.client()
        c._on_live(live("t", 7))
        c._on_live(live("t", 1, epoch=E + 1))
        self.assertEqual(self.drain(c), "t7 t1!0")
        self.assertEqual(self.sent, [])

    def test_term_rule(self):
        # The active stamped t up to 5 under term 1; the pair's other gateway
        # took over having mirrored only up to 2, and goes on from 3 under
        # term 2: the client's 3 to 5 were never there.
        c = self.client()
        for seq in (1, 2, 3, 4, 5):
            c._on_live(live("t", seq, term=1))
        c._on_live(live("t", 3, term=2))  # a higher term at or below our seq: diverged, taken
        c._on_live(live("t", 3, term=2))  # now a repeat
        c._on_live(live("t", 4, term=2))
        c._on_live(live("t", 5, term=1))  # the replaced active, still publishing: stale
        self.assertEqual(self.drain(c), "t1 t2 t3 t4 t5 t3~ t4")
        self.assertEqual((c.last("t").term, c.last("t").value), (2, b"t:4"))
        self.assertEqual((c.stats["diverged"], c.stats["stale_term"], c.stats["gaps"]), (1, 1, 0))
        self.assertEqual(self.sent, [])
        c._on_live(live("t", 9, term=2))  # a gap after diverging: repaired from the new point
        self.assertEqual(self.sent, [wire.since_request("t", E, 4)])

    def test_heartbeats_passed_over(self):
        # A pair's active puts a heartbeat on its stamped egress every
        # --ha-heartbeat: seq 0, no payload, flag heartbeat. Not an update.
        c = self.client()
        c._on_live(live("t", 1, term=1))
        hb = wire.encode_stamp(wire.Stamp(E, 0, 0, wire.FLAG_HEARTBEAT, term=1))
        c._on_live([wire.HEARTBEAT_TOPIC, hb])
        c._on_live(live("t", 2, term=1))
        self.assertEqual(self.drain(c), "t1 t2")
        self.assertEqual((c.stats["heartbeats"], c.topics(), self.sent), (1, ["t"], []))

    def test_term_checked_through_since(self):
        # The client held t up to 5 under term 1 and is cut off; a new active,
        # which had t only up to 3, goes on from 4 under term 2 and is past 5
        # when the client hears it: the repair asks from 4, the seq before
        # ours, and the update at 5 tells the client it diverged.
        c = self.client()
        for seq in (1, 2, 3, 4, 5):
            c._on_live(live("t", seq, term=1))
        c._on_live(live("t", 9, term=2))
        self.assertEqual(self.sent, [wire.since_request("t", E, 4)])
        for f in (val("t", 5, term=2), val("t", 6, term=2), val("t", 7, term=2), val("t", 8, term=2),
                  val("t", 9, term=2), end(5, "recovered")):
            c._on_reply(f)
        self.assertEqual(self.drain(c), "t1 t2 t3 t4 t5 t5r~ t6r t7r t8r t9r")  # the held 9: a repeat now
        self.assertEqual((c.stats["diverged"], c.stats["gaps"], c.stats["repairs"]), (1, 0, 1))

    def test_term_checked_clean_takeover(self):
        # A new term right after our seq: the update at our seq is ours.
        c = self.client()
        for seq in (1, 2):
            c._on_live(live("t", seq, term=1))
        c._on_live(live("t", 3, term=2))
        self.assertEqual(self.sent, [wire.since_request("t", E, 1)])
        for f in (val("t", 2, term=1), val("t", 3, term=2), end(2, "recovered")):
            c._on_reply(f)
        self.assertEqual(self.drain(c), "t1 t2 t3r")
        self.assertEqual((c.stats["diverged"], c.last("t").term), (0, 2))

    def test_term_check_seq_held_gone(self):
        # The history no longer has the seq held (5): nothing to compare; the
        # updates after it come with a gap of what is gone after ours.
        c = self.client()
        for seq in (1, 5):
            c._on_live(live("t", seq, term=1))
        self.sent.clear()
        c._on_reply(val("t", 2, term=1))  # the repair of 2..4 first
        c._on_reply(val("t", 3, term=1))
        c._on_reply(val("t", 4, term=1))
        c._on_reply(end(3, "recovered"))
        self.drain(c)
        c._on_live(live("t", 9, term=2))
        self.assertEqual(self.sent, [wire.since_request("t", E, 4)])
        for f in (val("t", 7, term=2), val("t", 8, term=2), val("t", 9, term=2), end(3, "gap", 2)):
            c._on_reply(f)  # the server counts 5 and 6 gone from its point, 4
        self.assertEqual(self.drain(c), "t7r!1 t8r t9r")
        self.assertEqual((c.stats["diverged"], c.stats["fallbacks"]), (0, 0))

    def test_term_rule_on_a_topic_snapshot(self):
        c = self.client()
        for seq in (1, 2, 8):
            c._on_live(live("t", seq, term=1))
        c._on_reply(end(0, "nohistory"))
        c._on_reply(val("t", 2, term=2))  # the new active's latest, below what we held: diverged
        c._on_reply(end(1))
        # The held 8 of term 1 is stale after it: let go, no new repair.
        self.assertEqual(self.drain(c), "t1 t2 t2s~")
        self.assertEqual(self.sent[1:], [wire.snap_request("t")])
        self.assertEqual((c.repairing(), c.stats["stale_term"]), ([], 1))

    def test_passive_is_retried(self):
        c = self.client()
        for seq in (1, 3):
            c._on_live(live("t", seq))
        c._on_reply([b"ERR", b"passive", b"this gateway is the standby of a failover pair"])
        self.assertEqual((c.stats["retries"], c.stats["passive"], len(c._queue)), (1, 1, 1))
        c._queue[0].not_before = 0
        c._send_next()
        self.assertEqual(self.sent, [wire.since_request("t", E, 1)] * 2)

    def test_passive_moves_to_the_next_endpoint(self):
        c = self.client(snapshot=["tcp://a:1", "tcp://b:1"])
        c._redial = lambda i: None
        for seq in (1, 3):
            c._on_live(live("t", seq))
        self.assertEqual(c.snapshot, "tcp://a:1")
        c._on_reply([b"ERR", b"passive", b"standby"])
        # the other endpoint, asked at once
        self.assertEqual((c.snapshot, c.stats["moves"], c.stats["passive"]), ("tcp://b:1", 1, 1))
        self.assertEqual(self.sent, [wire.since_request("t", E, 1)] * 2)
        c._on_reply([b"ERR", b"passive", b"standby"])
        # every endpoint asked: back to the first after a backoff
        self.assertEqual((c.snapshot, len(self.sent), len(c._queue)), ("tcp://a:1", 2, 1))
        self.assertGreater(c._queue[0].not_before, 0)
        c._queue[0].not_before = 0
        c._send_next()
        c._on_reply(val("t", 2))
        c._on_reply(end(1, "recovered"))
        self.assertEqual(self.drain(c), "t1 t2r t3")
        self.assertEqual(c._round, 0)

    def test_timeout_moves_to_the_next_endpoint(self):
        c = self.client(snapshot=["tcp://a:1", "tcp://b:1"], request_timeout=0.0)
        c._redial = lambda i: None
        c._poller = type("P", (), {"poll": lambda self, ms: []})()
        for seq in (1, 3):
            c._on_live(live("t", seq))
        c._pump(0)
        self.assertEqual((c.snapshot, c.stats["timeouts"]), ("tcp://b:1", 1))
        self.assertEqual(self.sent, [wire.since_request("t", E, 1)] * 2)

    def test_no_connection_moves_to_the_next_endpoint(self):
        # A dead gateway's endpoint (a pair's killed active): the send finds
        # no connection (ZMQ_IMMEDIATE), and the request moves on after
        # CONNECT_WAIT, not after request_timeout.
        c = self.client(snapshot=["tcp://a:1", "tcp://b:1"], request_timeout=30.0)
        c._redial = lambda i: None
        events = []
        c._poller = type("P", (), {"poll": lambda self, ms: [], "modify": lambda self, s, ev: events.append(ev)})()

        def send(frames):
            if c.snapshot == "tcp://a:1":
                raise zmq.Again()
            self.sent.append(frames)
        c._send = send
        for seq in (1, 3):
            c._on_live(live("t", seq))
        self.assertEqual((self.sent, c._cur.sent, events), ([], False, [zmq.POLLIN | zmq.POLLOUT]))
        self.assertLessEqual(c._cur.deadline - time.monotonic(), mdgate.client.CONNECT_WAIT)
        c._cur.deadline = 0.0  # CONNECT_WAIT has passed
        c._pump(0)
        self.assertEqual((c.snapshot, c.stats["unconnected"], c.stats["timeouts"]), ("tcp://b:1", 1, 0))
        self.assertEqual(self.sent, [wire.since_request("t", E, 1)])
        self.assertTrue(c._cur.sent)
        self.assertGreater(c._cur.deadline - time.monotonic(), 20)  # request_timeout for the answer
        c._on_reply(val("t", 2))
        c._on_reply(end(1, "recovered"))
        self.assertEqual(self.drain(c), "t1 t2r t3")

    def test_silence_votes(self):
        class Sub:
            def __init__(self):
                self.opts = []

            def setsockopt(self, opt, v):
                self.opts.append((opt, v))
        c = self.client(stamped=["tcp://a:2", "tcp://b:2"], heartbeat=0.01)
        self.assertEqual(c.heartbeat, 0.01)
        c._sub = Sub()
        c._next_vote = 0
        c._vote_if_silent(1.0)
        c._vote_if_silent(1.005)  # within a heartbeat of the last vote: none
        c._vote_if_silent(1.02)
        self.assertEqual(c.stats["votes"], 2)
        Z = __import__("zmq")
        self.assertEqual(c._sub.opts, [(Z.SUBSCRIBE, wire.VOTE_TOPIC), (Z.UNSUBSCRIBE, wire.VOTE_TOPIC),
                                       (Z.SUBSCRIBE, wire.VOTE_TOPIC)])
        self.assertEqual(mdgate.Client("tcp://a:2").heartbeat, 0)  # one endpoint: off
        self.assertEqual(mdgate.Client(["tcp://a:2", "tcp://b:2"]).heartbeat, mdgate.client.DEFAULT_HEARTBEAT)

    def test_without_snapshot_gaps_are_reported(self):
        c = self.client(snapshot=None)
        for seq in (1, 4, 5):
            c._on_live(live("t", seq))
        self.assertEqual(self.drain(c), "t1 t4!2 t5")
        self.assertEqual(self.sent, [])

    def test_start_merge(self):
        c = self.client()
        c._starting = True
        c._queue.append(mdgate.client._Request("SNAP", "", "start"))
        c._send_next()
        for seq in (4, 5, 6):  # streamed while the snapshot is taken
            c._on_live(live("t", seq))
        c._on_live(live("n", 1))  # a topic created after the snapshot
        for f in (val("t", 5), val("u", 2), end(2)):
            c._on_reply(f)
        self.assertFalse(c._starting)
        self.assertEqual(self.drain(c), "t5s u2s t6 n1")

    def test_hold_bound(self):
        c = self.client(hold_max_bytes=10)
        for seq in (1, 3, 4, 5):  # each 4 bytes (t, t:N): 3 and 4 fit, 5 does not with them
            c._on_live(live("t", seq))
        self.assertEqual(c.stats["held_dropped"], 2)
        for f in (val("t", 2), val("t", 3), end(2, "recovered")):
            c._on_reply(f)
        # 5 was held alone after the others were let go: a new gap after 3.
        self.assertEqual(self.sent[1:], [wire.since_request("t", E, 3)])
        for f in (val("t", 4), val("t", 5), end(2, "recovered")):
            c._on_reply(f)
        self.assertEqual(self.drain(c), "t1 t2r t3r t4r t5r")


if __name__ == "__main__":
    unittest.main()
