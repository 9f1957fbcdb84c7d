// mdgate.js: the JavaScript client of the gateway's WebSocket protocol
// (docs/protocol.md), served by the gateway at /mdgate.js. One ES module, no
// dependencies, no build. Usage and API: docs/client-js.md, types: mdgate.d.ts.
//
// It splits frames on "\n", tracks each topic's last seq, epoch and term,
// reports gaps, recoveries (missed updates replayed from the gateway's
// history), divergences (after a failover, values the new active never had),
// gateway restarts (a new epoch) and cut-offs, reconnects with full-jitter
// backoff to the next URL of its list (at once when a gateway is or becomes
// the standby of a failover pair), and resumes where it left off with
// requests that stay small whatever the number of topics.

const RESUME_CHUNK = 48 << 10;      // bytes per resume request; the gateway reads at most 64 KiB a frame
const RESUME_MAX_POINTS = 100_000;  // the gateway holds at most this many resume points a connection
const RETRY_BUSY_MS = 1000;         // snapshot_busy / rate_limited: ask again after this
const IDLE_MS = 45_000;             // nothing at all (the gateway sends a heartbeat every 15 s): reconnect
const enc = new TextEncoder();
const byteLen = (s) => (/^[\x20-\x7e]*$/.test(s) ? s.length : enc.encode(s).length);

export class MdGate {
  /**
   * @param {object} opts
   * @param {string[]} [opts.urls]  WebSocket URLs, tried in turn (default: this page's /ws)
   * @param {string|(() => string|Promise<string>)} [opts.token]  bearer token, or a callback called before each connect
   * @param {{min?: number, max?: number}} [opts.backoff]  full-jitter backoff bounds in ms (500, 20000)
   */
  constructor(opts = {}) {
    this.urls = opts.urls && opts.urls.length ? opts.urls.slice() : [defaultURL()];
    this._token = opts.token;
    this._min = (opts.backoff && opts.backoff.min) || 500;
    this._max = (opts.backoff && opts.backoff.max) || 20000;
    this._handlers = new Map();   // event -> Set of functions
    this._subs = new Set();       // live Subscription objects
    this._last = new Map();       // topic -> {seq, epoch, term}
    this._divergedOn = new Set(); // topics that took a "diverged" value on the current connection
    this._epochsSeen = new Set(); // "from>to" already reported
    this._caps = new Map();       // url -> {resume: bool|undefined, throttle: bool|undefined}
    this._pending = new Map();    // request id -> reply callback, on the current connection
    this._ws = null;
    this._url = "";
    this._i = 0;                  // index of the URL to connect to next
    this._attempt = 0;            // failures since the last live connection
    this._quick = this.urls.length - 1; // refused handshakes that may move to the next URL at once
    this._standbySkip = false;    // a 1012 "standby" skipped the backoff since the last live connection
    this._opened = false;         // the current connection got through its handshake
    this._conn = 0;               // connection generation: callbacks of older ones are ignored
    this._degrade = false;        // the last connection was closed with 1008/1009: no resume next time
    this._nextId = 1;
    this._timer = null;
    this._idle = null;
    this._closed = false;
    this.state = "connecting";
    queueMicrotask(() => this._connect());
  }

  /** Registers fn for an event; returns a function that removes it. */
  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const s = this._handlers.get(event);
    if (s) s.delete(fn);
  }

  /**
   * Subscribes now and again after every reconnect (resuming where it left off).
   * @returns {{close(): void}}
   */
  subscribe(spec = {}) {
    const sub = new Subscription(this, spec);
    this._subs.add(sub);
    if (this._ws && this._ws.readyState === WebSocket.OPEN && this._ready) this._start(sub, this._conn, false);
    return sub;
  }

  /** The last seq and epoch seen for topic (and its term when not 0, as on the wire), or undefined. */
  last(topic) {
    const p = this._last.get(topic);
    if (!p) return undefined;
    return p.term ? { seq: p.seq, epoch: p.epoch, term: p.term } : { seq: p.seq, epoch: p.epoch };
  }

  /** Closes the connection for good. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    clearTimeout(this._idle);
    this._conn++;
    if (this._ws) this._ws.close(1000, "client closed");
    this._ws = null;
    this._setState("closed");
  }

  // ---- internals -------------------------------------------------------

  _emit(event, arg) {
    const s = this._handlers.get(event);
    if (!s) return;
    for (const fn of s) {
      try { fn(arg); } catch (e) { setTimeout(() => { throw e; }); } // a handler's bug must not stop the stream
    }
  }

  _setState(state) {
    if (this.state === state && state !== "reconnecting") return;
    this.state = state;
    this._emit("state", { state, url: this._url });
  }

  async _connect() {
    this._timer = null;
    if (this._closed) return;
    const conn = ++this._conn;
    this._url = this.urls[this._i % this.urls.length];
    this._setState(this._everLive ? "reconnecting" : "connecting");
    let token = this._token;
    if (typeof token === "function") {
      try { token = await token(); } catch (e) {
        if (conn !== this._conn) return;
        this._emit("error", { code: "token", message: String(e && e.message || e), id: null });
        return this._retry(conn);
      }
      if (conn !== this._conn || this._closed) return;
    }
    let ws;
    try {
      ws = token ? new WebSocket(this._url, ["mdgate", "bearer." + token]) : new WebSocket(this._url);
    } catch (e) {
      this._emit("error", { code: "connect", message: String(e && e.message || e), id: null });
      return this._retry(conn);
    }
    this._ws = ws;
    this._ready = false;
    this._opened = false;
    this._divergedOn.clear();
    this._pending.clear();
    ws.onopen = () => { if (conn === this._conn) { this._opened = true; this._onOpen(conn); } };
    ws.onmessage = (ev) => { if (conn === this._conn) this._onMessage(ev.data); };
    ws.onclose = (ev) => { if (conn === this._conn) this._onClose(conn, ev); };
    this._touch(conn);
  }

  _touch(conn) {
    clearTimeout(this._idle);
    this._idle = setTimeout(() => {
      if (conn === this._conn && this._ws) this._ws.close(4000, "idle");
    }, IDLE_MS);
  }

  _caps_() {
    let c = this._caps.get(this._url);
    if (!c) this._caps.set(this._url, c = {});
    return c;
  }

  _send(msg) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
  }

  // request sends msg with a fresh id and calls cb with the reply (ack or error).
  _request(msg, cb) {
    const id = this._nextId++;
    msg.id = id;
    if (cb) this._pending.set(id, cb);
    this._send(msg);
    return id;
  }

  _onOpen(conn) {
    const degrade = this._degrade;
    this._ready = true;
    this._acksDue = this._subs.size;
    if (this._acksDue === 0) return this._live(conn);
    // One at a time: a subscribe uses (and forgets) the points held before it.
    let chain = Promise.resolve();
    for (const sub of this._subs) chain = chain.then(() => this._start(sub, conn, degrade, false));
  }

  // _start sends sub's resume points, then its subscribe.
  async _start(sub, conn, degrade, count = true) {
    if (count) this._acksDue++;
    const held = degrade || sub.spec.snapshot === false ? false : await this._sendResume(conn, sub);
    if (conn !== this._conn || !this._subs.has(sub)) return this._acked(conn);
    this._sendSubscribe(sub, conn, degrade, held);
  }

  _acked(conn) {
    if (conn === this._conn && --this._acksDue === 0) this._live(conn);
  }

  _live(conn) {
    if (conn !== this._conn) return;
    this._attempt = 0;
    this._quick = this.urls.length - 1;
    this._standbySkip = false;
    this._degrade = false; // the plain request got through: resume again next time
    this._everLive = true;
    this._setState("live");
  }

  // matchesAny: is topic covered by one of the subscriptions?
  _covered(topic) {
    for (const s of this._subs) if (s._covers(topic)) return true;
    return false;
  }

  // _points lists the resume points of the topics the subscriptions cover.
  _points(sub) {
    const out = [];
    for (const [topic, p] of this._last) {
      if (sub ? sub._covers(topic) : this._covered(topic)) out.push([topic, p]);
      if (out.length >= RESUME_MAX_POINTS) break;
    }
    return out;
  }

  // _sendResume sends the resume points of sub's topics with the compact
  // resume op, chunked by size and grouped by epoch, one chunk at a time
  // (each waits for its ack), and resolves true if the gateway holds them,
  // false if it has none (nothing to resume, or a gateway without the op).
  async _sendResume(conn, sub) {
    const caps = this._caps_();
    if (caps.resume === false) return false;
    // Grouped by epoch and term: a failover pair's gateway checks the
    // term of the update at each seq (a client that got it from a replaced
    // active is told it diverged).
    const byEpoch = new Map();
    for (const [topic, p] of this._points(sub)) {
      const key = p.epoch + "/" + (p.term || 0);
      if (!byEpoch.has(key)) byEpoch.set(key, { epoch: p.epoch, term: p.term || 0, list: [] });
      byEpoch.get(key).list.push([topic, p.seq]);
    }
    if (byEpoch.size === 0) return false;
    const chunks = [];
    for (const { epoch, term, list } of byEpoch.values()) {
      const head = `{"op":"resume","id":0000000000,"epoch":${JSON.stringify(epoch)},"term":${term},"seqs":{`;
      let parts = [], size = head.length + 2;
      for (const [topic, seq] of list) {
        const part = JSON.stringify(topic) + ":" + seq;
        const n = byteLen(part) + 1;
        if (parts.length && size + n > RESUME_CHUNK) { chunks.push({ epoch, term, parts }); parts = []; size = head.length + 2; }
        parts.push(part);
        size += n;
      }
      if (parts.length) chunks.push({ epoch, term, parts });
    }
    for (const c of chunks) {
      const id = this._nextId++;
      const reply = await new Promise((resolve) => {
        this._pending.set(id, resolve);
        const term = c.term ? `,"term":${c.term}` : ""; // only a pair's gateway knows terms
        this._send(`{"op":"resume","id":${id},"epoch":${JSON.stringify(c.epoch)}${term},"seqs":{${c.parts.join(",")}}}`);
      });
      if (conn !== this._conn || reply == null) return false;
      if (reply.op === "error") {
        if (reply.code === "unknown_op" || reply.code === "bad_request") {
          caps.resume = false; // an older gateway: the per-topic map in subscribe instead
          return false;
        }
        return true; // too_many_resume_points and the like: the rest loads as snapshots
      }
      caps.resume = true;
    }
    return true;
  }

  _sendSubscribe(sub, conn, degrade = false, held = true) {
    const caps = this._caps_();
    const msg = { op: "subscribe" };
    if (sub.topics.length) msg.topics = sub.topics;
    if (sub.prefixes.length) msg.prefixes = sub.prefixes;
    msg.snapshot = sub.spec.snapshot !== false;
    if (sub.spec.slow) msg.slow = sub.spec.slow;
    if (sub.spec.maxLagMs) msg.max_lag_ms = sub.spec.maxLagMs;
    if (sub.spec.maxQueueBytes) msg.max_queue_bytes = sub.spec.maxQueueBytes;
    if (sub.spec.throttleMs && caps.throttle !== false) msg.throttle_ms = sub.spec.throttleMs;
    if (!degrade && !held && caps.resume === false) {
      // An older gateway: the per-topic map, as much of it as fits; the
      // other topics come as snapshots (gaps are still seen from their seq).
      const resume = {};
      let size = byteLen(JSON.stringify(msg)) + 16, n = 0;
      for (const [topic, p] of this._points(sub)) {
        const sz = byteLen(JSON.stringify(topic)) + 48;
        if (size + sz > RESUME_CHUNK) break;
        resume[topic] = p.term ? { seq: p.seq, epoch: p.epoch, term: p.term } : { seq: p.seq, epoch: p.epoch };
        size += sz; n++;
      }
      if (n) msg.resume = resume;
    }
    this._request(msg, (reply) => {
      if (conn !== this._conn) return;
      if (reply && reply.op === "error") {
        if (reply.code === "bad_request" && /throttle_ms/.test(reply.message || "") && msg.throttle_ms) {
          caps.throttle = false; // an older gateway: no server-side throttle
          this._emit("error", reply);
          return this._start(sub, conn, false, false);
        }
        if (reply.code === "snapshot_busy" || reply.code === "rate_limited") {
          setTimeout(() => {
            if (conn === this._conn) this._start(sub, conn, false, false);
          }, RETRY_BUSY_MS);
          return;
        }
        this._emit("error", reply);
      }
      this._acked(conn);
    });
  }

  _onMessage(data) {
    this._touch(this._conn);
    if (typeof data !== "string") return;
    let start = 0;
    while (start < data.length) {
      let end = data.indexOf("\n", start);
      if (end < 0) end = data.length;
      if (end > start) {
        let m;
        try { m = JSON.parse(data.slice(start, end)); } catch (e) {
          this._emit("error", { code: "bad_json", message: "from the gateway: " + e.message, id: null });
          m = null;
        }
        if (m) this._handle(m);
      }
      start = end + 1;
    }
  }

  _handle(m) {
    switch (m.op) {
      case "update":
      case "snapshot":
        return this._value(m);
      case "ack":
      case "error": {
        const cb = m.id != null ? this._pending.get(m.id) : undefined;
        if (cb) { this._pending.delete(m.id); cb(m); }
        else if (m.op === "error") this._emit("error", { code: m.code, message: m.message, id: m.id });
        return;
      }
    }
  }

  // _value passes a snapshot value or an update on, after telling what it
  // says about the topic's sequence: a gap (the gateway's "gap"/"missed", or
  // a seq jump the client sees itself), a new epoch, a recovery (the first
  // update replayed from the topic's history on resume, "recovered": nothing
  // missed), or a divergence (a failover pair's new active never had the
  // values the client holds past its seq). Replayed updates ("replay") are
  // checked like live ones: past the history's window the first carries
  // "gap" and the exact "missed"; one that starts another epoch (a restart)
  // is an epoch change.
  _value(m) {
    const topic = m.topic;
    if (!this._covered(topic)) return; // of a subscription closed since
    const prev = this._last.get(topic);
    const skipped = m.skipped || 0;
    const term = m.term || 0; // absent: a gateway that is not one of a pair
    let diverged = null;
    if (prev && prev.epoch === m.epoch) {
      if (m.seq <= prev.seq) {
        if (!this._diverges(topic, prev, m, term)) return; // already seen (an overlapping resubscribe)
        diverged = { topic, from: { seq: prev.seq, term: prev.term }, to: { seq: m.seq, term } };
      } else {
        const missed = m.gap ? (m.missed || 0) : m.seq - prev.seq - 1 - skipped;
        if (m.gap || missed > 0) this._emit("gap", { topic, missed });
      }
    } else if (prev) {
      const key = prev.epoch + ">" + m.epoch;
      if (!this._epochsSeen.has(key)) {
        this._epochsSeen.add(key);
        if (this._epochsSeen.size > 64) this._epochsSeen.clear();
        this._emit("epoch", { from: prev.epoch, to: m.epoch });
      }
    } else if (m.gap && m.missed) {
      this._emit("gap", { topic, missed: m.missed });
    }
    // A replayed update (a resume from the topic's history) advances the
    // topic's seq like a live one, so the next resume starts after it.
    if (m.deleted) this._last.delete(topic); // created again, it starts over: not a gap
    else if (prev) { prev.seq = m.seq; prev.epoch = m.epoch; prev.term = term; }
    else this._last.set(topic, { seq: m.seq, epoch: m.epoch, term });
    if (diverged) {
      this._divergedOn.add(topic);
      this._emit("diverged", diverged);
    }
    if (m.recovered) this._emit("recovered", { topic });
    this._emit("update", {
      op: m.op, topic, seq: m.seq, epoch: m.epoch, term, ts: m.ts, data: m.data,
      enc: m.enc, frames: m.frames,
      deleted: !!m.deleted, stale: !!m.stale, gap: !!m.gap, missed: m.missed || 0, skipped,
      replay: !!m.replay, recovered: !!m.recovered, diverged: !!diverged,
    });
  }

  // _diverges: is m, of the topic's epoch and not past the client's seq,
  // a value that replaces what the client holds (it saw updates a failover
  // pair's new active never got), rather than one already seen?
  // - A higher term than the client's with a seq not past its own: within
  //   an epoch a pair never stamps the same (term, seq) twice, and a new
  //   active continues each topic's seq under a higher term, so these seqs
  //   were stamped again, over values the new active never had.
  // - "diverged": the gateway's latest, sent because the client resumed
  //   from a seq past it. Once a connection: the client's seq then comes
  //   from this gateway, so a second one (an overlapping subscription's,
  //   resumed from the seq held before the first arrived) is a duplicate.
  _diverges(topic, prev, m, term) {
    if (term > prev.term) return true;
    return !!m.diverged && m.seq < prev.seq && !this._divergedOn.has(topic);
  }

  _onClose(conn, ev) {
    clearTimeout(this._idle);
    this._ws = null;
    this._ready = false;
    for (const cb of this._pending.values()) cb(null);
    this._pending.clear();
    if (this._closed) return;
    if (ev.code !== 1005 && ev.code !== 1006 && !(ev.code === 4000 && ev.reason === "idle")) {
      this._emit("cutoff", { code: ev.code, reason: ev.reason || "" });
    }
    // 1009 (a frame too big) and 1008 (too many bad requests, or the token
    // expired): never send the same requests again; the next connection
    // subscribes plainly, with snapshots and without resume.
    if (ev.code === 1009 || ev.code === 1008) this._degrade = true;
    // A failover pair: the gateway stopped being the active one (1012
    // "standby"), so the other is: go to the next URL at once, without the
    // backoff, once until a connection is live again (a gateway that keeps
    // doing it gets the backoff). A handshake that failed (a standby refuses
    // it with 503 "passive"; a browser cannot tell that from a refused
    // connection) moves on at once too, while URLs of this round remain:
    // each URL once at most since the last live connection, then backoff.
    let now = false;
    if (ev.code === 1012 && ev.reason === "standby" && !this._standbySkip) {
      this._standbySkip = true;
      this._quick = Math.max(0, this.urls.length - 2); // the other URLs but the one tried now
      now = true;
    } else if (!this._opened && this._quick > 0) {
      this._quick--;
      now = true;
    }
    this._retry(conn, now);
  }

  // _retry connects again, to the next URL of the list: after a full-jitter
  // backoff, or now (counted neither as a failure nor in the backoff).
  _retry(conn, now = false) {
    if (this._closed || conn !== this._conn || this._timer) return;
    this._i++; // failover: the next URL first
    let delay = 0;
    if (!now) {
      const cap = Math.min(this._max, this._min * 2 ** Math.min(this._attempt, 30));
      this._attempt++;
      delay = Math.random() * cap; // full jitter
    }
    this._setState("reconnecting");
    this._timer = setTimeout(() => this._connect(), delay);
  }
}

class Subscription {
  constructor(g, spec) {
    this._g = g;
    this.spec = spec;
    this.topics = (spec.topics || []).slice();
    this.prefixes = (spec.prefixes || []).slice();
    this._exact = new Set(this.topics);
  }

  _covers(topic) {
    if (this._exact.has(topic)) return true;
    for (const p of this.prefixes) if (topic.startsWith(p)) return true;
    return false;
  }

  /** Unsubscribes what no other subscription still needs. */
  close() {
    const g = this._g;
    if (!g._subs.delete(this)) return;
    const topics = [], prefixes = [];
    const still = (kind, v) => { for (const s of g._subs) if (s[kind].includes(v)) return true; return false; };
    for (const t of this.topics) if (!still("topics", t)) topics.push(t);
    for (const p of this.prefixes) if (!still("prefixes", p)) prefixes.push(p);
    for (const t of g._last.keys()) if (!g._covered(t)) g._last.delete(t);
    if (topics.length + prefixes.length === 0) return;
    const msg = { op: "unsubscribe" };
    if (topics.length) msg.topics = topics;
    if (prefixes.length) msg.prefixes = prefixes;
    g._request(msg);
  }
}

function defaultURL() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}
