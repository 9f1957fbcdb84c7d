"""mdgate's Python client for the ZeroMQ side: the stamped stream merged
with a snapshot, per-topic gap detection and repair through SINCE.

Importable without installing: put clients/python on sys.path (or
PYTHONPATH). Needs pyzmq (Debian: python3-zmq). docs/client-python.md."""

from .client import LIVE, REPAIR, SNAPSHOT, Client, MdgateError, Update
from .wire import (FLAG_DELETE, FLAG_HEARTBEAT, FLAG_REPLAY, FLAG_STALE, GAP, HEARTBEAT_TOPIC, NOHISTORY, RECOVERED,
                   VOTE_TOPIC, Stamp, WireError, encode_stamp, parse_reply, parse_stamp, since_request, snap_request)

__all__ = ["Client", "Update", "MdgateError", "LIVE", "SNAPSHOT", "REPAIR", "Stamp", "WireError",
           "parse_stamp", "encode_stamp", "parse_reply", "snap_request", "since_request",
           "FLAG_REPLAY", "FLAG_STALE", "FLAG_DELETE", "FLAG_HEARTBEAT", "HEARTBEAT_TOPIC", "VOTE_TOPIC", "RECOVERED", "GAP",
           "NOHISTORY"]
