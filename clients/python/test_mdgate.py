"""Unit checks of the mdgate Python client, without a gateway: the wire
formats, and the client's sequence rule fed frames directly (its requests
captured instead of sent). Run: /usr/bin/python3 -m unittest discover -s
clients/python (the Go test clients/python/python_test.go runs them too)."""

import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mdgate  # noqa: E402
from mdgate import wire  # noqa: E402

E = 0x1F2E3D4C5B6A7988


def stamp(seq, epoch=E, flags=0, ingress=1764094988123456789):
    return wire.encode_stamp(wire.Stamp(epoch, seq, ingress, flags))


def live(topic, seq, epoch=E, flags=0):
    return [topic.encode(), b"%s:%d" % (topic.encode(), seq), stamp(seq, epoch, flags)]


def val(topic, seq, epoch=E):
    return [b"VAL", stamp(seq, epoch), topic.encode(), b"%s:%d" % (topic.encode(), seq)]


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

    def client(self, snapshot="tcp://unused:1", **kw):
        c = mdgate.Client("tcp://unused:2", snapshot, **kw)
        c._started = True
        self.sent = []
        c._send = self.sent.append
        return c

    def drain(self, c):
        out = []
        while c._ready:
            u = c._ready.popleft()
            out.append("%s%d%s%s" % (u.topic, u.seq, {"live": "", "repair": "r", "snapshot": "s"}[u.source],
                                     "!%d" % u.missed if u.gap else ""))
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
