// The operations view: polls /api/ops once a second and shows the gateway
// itself. The endpoint returns totals; rates and windowed p99s are computed
// here from successive samples (see gateway/ops.go). A failed fetch or a
// missing metric is shown, never left as a frozen page.
"use strict";
(() => {
  const PERIOD = 1000;   // ms between polls, counted from the end of the last
  const TIMEOUT = 2500;  // ms before a poll is abandoned
  const WINDOW = 5;      // seconds for windowed p99s and "last 5 s" columns
  const KEEP = 61;       // samples kept (one a second): the sparklines' minute
  const token = new URLSearchParams(location.search).get("token");
  const $ = (id) => document.getElementById(id);
  let samples = [];      // oldest first; reset when the epoch changes
  let lastOK = 0;        // Date.now() of the last good sample

  const num = (v) => v == null || !isFinite(v) ? null : v;
  const fmtCount = (v) => v == null ? "–" : v >= 1e6 ? (v / 1e6).toFixed(2) + "M" : v >= 1e4 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v));
  const fmtRate = (v) => v == null ? "–" : v >= 100 ? fmtCount(v) : v.toFixed(1);
  const fmtBytes = (v) => {
    if (v == null) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(Math.round(v))) + " " + u[i];
  };
  const fmtSecs = (s) => s == null ? "–" : s < 1e-3 ? (s * 1e6).toFixed(0) + " µs" : s < 1 ? (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms" : s.toFixed(2) + " s";
  const fmtUptime = (s) => {
    if (s == null) return "–";
    s = Math.floor(s);
    const d = Math.floor(s / 86400), p = (n) => String(n).padStart(2, "0");
    const hms = p(Math.floor(s / 3600) % 24) + ":" + p(Math.floor(s / 60) % 60) + ":" + p(s % 60);
    return d ? d + "d " + hms : hms;
  };

  // set writes a value; null shows as absent. data-value carries the raw
  // number for tests and tooling.
  function set(id, v, fmt) {
    const el = $(id);
    if (!el) return;
    el.textContent = fmt(v);
    el.dataset.value = v == null ? "" : String(v);
    el.classList.toggle("absent", v == null);
  }

  // The sample about `secs` before the newest (the oldest one if the
  // history is shorter); null with fewer than two samples.
  function back(secs) {
    if (samples.length < 2) return null;
    const cur = samples[samples.length - 1];
    let best = samples[samples.length - 2];
    for (let i = samples.length - 2; i >= 0; i--) {
      best = samples[i];
      if (cur.ts - samples[i].ts >= secs - 0.2) break;
    }
    return best;
  }

  // rate of a counter picked by get() between the newest sample and the one
  // `secs` back; null when missing or reset.
  function rate(get, secs) {
    const prev = back(secs), cur = samples[samples.length - 1];
    if (!prev) return null;
    const a = num(get(prev)), b = num(get(cur)), dt = cur.ts - prev.ts;
    if (a == null || b == null || dt <= 0 || b < a) return null;
    return (b - a) / dt;
  }

  function increase(get) {
    const prev = back(WINDOW), cur = samples[samples.length - 1];
    if (!prev) return null;
    const a = num(get(prev)), b = num(get(cur));
    return a == null || b == null || b < a ? null : b - a;
  }

  // quantile as Prometheus's histogram_quantile, over cumulative counts.
  function quantile(q, le, cum, total) {
    if (!le || !le.length || !total) return null;
    const rank = q * total;
    let lower = 0, below = 0;
    for (let i = 0; i < le.length; i++) {
      if (cum[i] >= rank) {
        const inb = cum[i] - below;
        return inb === 0 ? le[i] : lower + (le[i] - lower) * (rank - below) / inb;
      }
      lower = le[i]; below = cum[i];
    }
    return le[le.length - 1];
  }

  // p99 of the observations made in the last WINDOW seconds.
  function windowP99(key) {
    const prev = back(WINDOW), cur = samples[samples.length - 1];
    if (!prev) return null;
    const a = prev[key], b = cur[key];
    if (!a || !b || !b.le || b.count < a.count || String(a.le) !== String(b.le)) return null;
    return quantile(0.99, b.le, b.counts.map((c, i) => c - a.counts[i]), b.count - a.count);
  }

  function spark(id, get) {
    const pts = [];
    for (let i = 1; i < samples.length; i++) {
      const a = num(get(samples[i - 1])), b = num(get(samples[i])), dt = samples[i].ts - samples[i - 1].ts;
      pts.push(a == null || b == null || dt <= 0 || b < a ? 0 : (b - a) / dt);
    }
    const max = Math.max(1, ...pts), n = KEEP - 1;
    const line = $(id) && $(id).querySelector("polyline");
    if (line) line.setAttribute("points", pts.map((v, i) => ((n - pts.length + i) * 120 / n).toFixed(1) + "," + (29 - v / max * 28).toFixed(1)).join(" "));
  }

  function rows(tbody, entries) {
    const el = $(tbody);
    if (!el) return;
    el.replaceChildren(...entries.map((cells) => {
      const tr = document.createElement("tr");
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = c.text;
        if (c.num) td.className = "num";
        tr.appendChild(td);
      });
      if (cells.hot) tr.className = "hot";
      else if (cells.zero) tr.className = "zero";
      return tr;
    }));
  }

  function render() {
    const cur = samples[samples.length - 1];
    $("epoch").textContent = cur.epoch || "–";
    set("uptime", num(cur.uptime_seconds), fmtUptime);
    set("ingress-rate", rate((s) => s.ingress_messages_total, 1), fmtRate);
    set("ingress-bytes-rate", rate((s) => s.ingress_bytes_total, 1), fmtBytes);
    set("ingress-total", num(cur.ingress_messages_total), fmtCount);
    set("deliveries-rate", rate((s) => s.fanout_deliveries_total, 1), fmtRate);
    set("fanout-rate", rate((s) => s.fanout_messages_total, 1), fmtRate);
    set("ws-clients", num(cur.ws_connections), fmtCount);
    set("fanout-clients", num(cur.fanout_clients), fmtCount);
    set("cache-topics", num(cur.cache_topics), fmtCount);
    set("cache-bytes", num(cur.cache_bytes), fmtBytes);
    set("lag-p99", windowP99("fanout_lag_seconds"), fmtSecs);
    set("lag-p99-all", cur.fanout_lag_seconds ? num(cur.fanout_lag_seconds.p99) : null, fmtSecs);
    set("loop-p99", windowP99("proxy_loop_seconds"), fmtSecs);
    set("loop-p99-all", cur.proxy_loop_seconds ? num(cur.proxy_loop_seconds.p99) : null, fmtSecs);
    set("loop-longest", num(cur.proxy_loop_longest_seconds), fmtSecs);
    spark("ingress-spark", (s) => s.ingress_messages_total);
    spark("deliveries-spark", (s) => s.fanout_deliveries_total);

    const peers = cur.zmq_peers;
    rows("zmq-peers", peers ? Object.keys(peers).sort().map((k) => [{ text: k }, { text: fmtCount(peers[k]), num: true }])
      : [[{ text: "not exported" }, { text: "–", num: true }]]);
    const cut = cur.cutoffs || {};
    rows("cutoffs", Object.keys(cut).sort().map((k) => {
      const inc = increase((s) => s.cutoffs && s.cutoffs[k]);
      const r = [{ text: k }, { text: fmtCount(cut[k]), num: true }, { text: inc == null ? "–" : fmtCount(inc), num: true }];
      r.hot = inc > 0;
      r.zero = !cut[k];
      return r;
    }));
    const drops = cur.drops || {};
    const dr = [];
    for (const m of Object.keys(drops).sort()) {
      for (const k of Object.keys(drops[m] || {}).sort()) {
        const inc = increase((s) => s.drops && s.drops[m] && s.drops[m][k]);
        const r = [{ text: m.replace(/^mdgate_/, "") }, { text: k }, { text: fmtCount(drops[m][k]), num: true }, { text: inc == null ? "–" : fmtCount(inc), num: true }];
        r.hot = inc > 0;
        r.zero = !drops[m][k];
        dr.push(r);
      }
    }
    rows("drops", dr);
    const missing = Array.isArray(cur.missing) ? cur.missing : [];
    $("missing").textContent = missing.length ? "not exported by this gateway: " + missing.join(", ") : "";
  }

  function showState(state, msg) {
    document.body.dataset.state = state;
    $("state").textContent = state;
    const e = $("error");
    e.hidden = !msg;
    e.textContent = msg || "";
  }

  function tickAge() {
    $("updated").textContent = lastOK ? "updated " + ((Date.now() - lastOK) / 1000).toFixed(0) + " s ago" : "";
  }

  async function poll() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT);
    try {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const resp = await fetch("/api/ops", { headers, cache: "no-store", signal: ctl.signal });
      if (resp.status === 401 || resp.status === 403) {
        showState("unauthorized", "HTTP " + resp.status + ": " + (await resp.text()).trim() +
          " — open /ops?token=<JWT with \"ops\": true>");
        return;
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const s = await resp.json();
      if (typeof s !== "object" || s === null || typeof s.ts !== "number") throw new Error("unexpected body");
      if (samples.length && samples[samples.length - 1].epoch !== s.epoch) samples = []; // a restart: counters begin again
      samples.push(s);
      if (samples.length > KEEP) samples.shift();
      lastOK = Date.now();
      render();
      showState(s.running === false ? "down" : "live", s.running === false ? "the proxy loop is not running" : "");
    } catch (err) {
      showState("error", "cannot read /api/ops: " + (err.name === "AbortError" ? "timed out" : err.message) +
        (lastOK ? " (values below are from the last good sample)" : ""));
    } finally {
      clearTimeout(timer);
      tickAge();
      setTimeout(poll, PERIOD);
    }
  }

  setInterval(tickAge, 1000);
  poll();
})();
