// mdgate dashboard, on mdgate.js (docs/client-js.md). Plain JS, no build.
//
// Rendering costs what the eye can see: values land in a model (rows) as
// they arrive; once per animation frame the rows in the viewport that
// changed are written to the DOM (the latest value wins), with no layout read
// in between; rows outside the viewport cost nothing (the table is
// virtualised: a pool of <tr>s for the visible slice, spacers above and
// below). A value that cannot be shown marks its own row, never the page.
// After a reconnect, a row whose missed updates were replayed from the
// gateway's history is marked "recovered", one that lost updates "gapped",
// until the next reconnect (a generation number: nothing to clear).
import { MdGate } from "./mdgate.js";

const $ = (id) => document.getElementById(id);
const ROW_H = 22;          // px, fixed (style.css: #rows tr)
const OVERSCAN = 4;        // rows painted beyond each edge of the viewport
const rows = new Map();    // topic -> row model
const dirty = new Set();   // topics changed since the last frame
let order = [];            // topics, sorted; rebuilt when a topic comes or goes
let orderDirty = false, lastSort = 0;
const pool = [];           // <tr>s of the visible slice
const stats = { count: 0, gaps: 0, recovered: 0, skipped: 0, reconnects: 0, lagMs: null, errors: 0 };
let markGen = 0;           // connection generation: a row's mark shows while its markGen is this
let repaintAll = false;    // marks of an older generation to take off the visible rows
let newestTs = 0;          // the newest ts that reached the model since the last frame
let prefix = $("filter").value;
let viewTop = 0, viewH = 0; // the viewport's scroll position and height, from events

// gatewayURLs reads /?gateways=host:port,... : the other gateways of a
// failover pair (or edges of one core), tried after this page's own when it
// is gone or a standby (docs/ha.md). Without it: this page's gateway only.
function gatewayURLs() {
  const list = new URLSearchParams(location.search).get("gateways");
  if (!list) return undefined;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const urls = [scheme + location.host + "/ws"];
  for (const item of list.split(",")) {
    const h = item.trim();
    if (!h) continue;
    const url = /^wss?:\/\//.test(h) ? h : scheme + h + "/ws";
    if (!urls.includes(url)) urls.push(url);
  }
  return urls;
}

const g = new MdGate({
  token: new URLSearchParams(location.search).get("token") || undefined, // with auth on: /?token=<JWT>
  urls: gatewayURLs(),
});
let sub = null;

function spec() {
  return { prefixes: [prefix], slow: $("conflate").checked ? "conflate" : "disconnect",
           throttleMs: Number($("throttle").value) || undefined };
}

// resubscribe changes the subscription's options: the new one is sent first,
// so the prefix stays subscribed (the gateway replaces its options) and the
// values held are resumed, not sent again.
function resubscribe() {
  const old = sub;
  sub = g.subscribe(spec());
  if (old) old.close();
}

function note(text, cls) {
  const el = $("note");
  el.textContent = text;
  el.className = cls || "muted";
}

g.on("state", (e) => {
  const el = $("conn");
  el.textContent = e.state;
  el.className = "state " + (e.state === "live" ? "live" : e.state === "reconnecting" || e.state === "connecting" ? "reconnecting" : "down");
  document.body.dataset.conn = e.state;
  if (e.state === "reconnecting") { markGen++; repaintAll = true; }
  if (e.state === "live") {
    if (stats.everLive) stats.reconnects++;
    stats.everLive = true;
  }
});
g.on("cutoff", (e) => note("cut off " + e.code + (e.reason ? ": " + e.reason : ""), "warn"));
g.on("epoch", () => note("gateway restarted, values refreshed", "info"));
g.on("diverged", (e) => note("failover: " + e.topic + " back from seq " + e.from.seq + " to " + e.to.seq + " (updates the new active never had)", "warn"));
g.on("gap", (e) => { stats.gaps++; mark(e.topic, "gapped", e.missed); });
g.on("recovered", (e) => { stats.recovered++; mark(e.topic, "recovered", 0); });

// mark notes what a resume did to topic's row (gap and recovered come
// before the value they are about).
function mark(topic, kind, missed) {
  const r = rows.get(topic);
  if (!r) return;
  r.mark = kind;
  r.markGen = markGen;
  r.missed = missed;
  r.replayed = 0;
  dirty.add(topic);
}
g.on("error", (e) => note("error " + e.code + ": " + e.message, "warn"));
g.on("update", (m) => {
  try { apply(m); } catch (e) { stats.errors++; }
});

// apply puts one value into the model; the DOM is written on the next frame.
function apply(m) {
  if (!m.topic.startsWith(prefix)) return;
  let r = rows.get(m.topic);
  if (!r) {
    r = { topic: m.topic, prices: [], first: null, px: null, prev: null, data: null, flash: 0 };
    rows.set(m.topic, r);
    orderDirty = true;
  }
  if (m.op === "update") stats.count++;
  if (m.skipped) stats.skipped += m.skipped;
  if (m.replay && r.markGen === markGen) r.replayed++;
  if (m.ts > newestTs) newestTs = m.ts;
  const d = m.data;
  const px = m.enc ? null : d && typeof d === "object" ? d.px : typeof d === "number" ? d : null;
  r.deleted = m.deleted;
  r.stale = m.stale;
  r.prev = r.px;
  r.px = px;
  r.data = m.enc ? { binary: true } : d;
  r.seq = m.seq;
  r.ts = m.ts;
  if (typeof px === "number") {
    if (r.first == null) r.first = d && typeof d.chg === "number" ? px - d.chg : px;
    r.prices.push(px);
    if (r.prices.length > 40) r.prices.shift();
    if (typeof r.prev === "number" && px !== r.prev) r.flash = px > r.prev ? 1 : -1;
  }
  dirty.add(m.topic);
}

// fmt formats a price; anything but a number (or nothing) is an error for
// the row to show.
function fmt(x) {
  if (x == null) return "–";
  if (typeof x !== "number") throw new TypeError("not a number: " + JSON.stringify(x).slice(0, 30));
  if (Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  return x.toFixed(a >= 10 ? 2 : 4);
}

// spark draws the last prices into the row's own polyline (no HTML parsing).
function spark(line, prices) {
  if (prices.length < 2) { line.setAttribute("points", ""); return; }
  const lo = Math.min(...prices), hi = Math.max(...prices), span = hi - lo || 1;
  let pts = "";
  for (let i = 0; i < prices.length; i++) {
    pts += (i * 90 / (prices.length - 1)).toFixed(1) + "," + (17 - (prices[i] - lo) / span * 16).toFixed(1) + " ";
  }
  line.setAttribute("points", pts);
}

// A flash colours the row for FLASH_MS, then frame() clears it: two paints.
// A fading animation (Web Animations, even opacity on a layer of its own)
// made chromium render every frame while the feed ran, about 40 rows flashing
// at once: frames of 33-50 ms instead of 16.7 in headless chromium at 5,000
// instruments x 20,000 msgs/s, and twice the lag (BenchmarkDashboardLag).
const FLASH = { 1: "rgba(46,160,67,.35)", [-1]: "rgba(248,81,73,.35)" };
const FLASH_MS = 600;
const flashing = new Set(); // <tr>s coloured, each with its _flashEnd

// paint writes row r into tr; changed: a new value (flash), not a scroll.
function paint(tr, r, changed) {
  const c = tr.cells;
  if (tr._topic !== r.topic) { tr._topic = tr.dataset.topic = r.topic; c[0].textContent = r.topic; }
  try {
    const d = r.data && typeof r.data === "object" ? r.data : {};
    const last = r.deleted ? "deleted" : r.px != null ? fmt(r.px) : d.binary ? "binary" : JSON.stringify(r.data).slice(0, 40);
    const chg = typeof r.px === "number" && r.first != null ? r.px - r.first : null;
    const bid = fmt(d.bid), ask = fmt(d.ask);
    c[1].textContent = last;
    c[2].textContent = chg == null ? "–" : (chg >= 0 ? "+" : "") + fmt(chg);
    c[2].className = "num " + (chg > 0 ? "up" : chg < 0 ? "down" : "");
    c[3].textContent = bid;
    c[4].textContent = ask;
    spark(tr._line, r.prices);
    c[6].textContent = r.seq;
    c[7].textContent = r.stale ? "stale (cache file)" : new Date(r.ts / 1000).toLocaleTimeString();
    const marked = r.mark && r.markGen === markGen;
    tr.className = r.stale ? (marked ? "stale " + r.mark : "stale") : marked ? r.mark : "";
    tr.title = !marked ? "" : r.mark === "recovered"
      ? "recovered after the reconnect: " + r.replayed + " missed updates replayed"
      : "gap: " + (r.missed ? r.missed + " updates lost" : "updates lost") + (r.replayed ? ", " + r.replayed + " replayed" : "");
    if (changed && r.flash) flash(tr, FLASH[r.flash]);
    else if (!changed) flash(tr, "");
  } catch (e) {
    stats.errors++;
    tr.className = "bad";
    tr.title = String(e.message || e);
    c[1].textContent = "⚠ bad value";
    c[6].textContent = r.seq;
    c[7].textContent = String(e.message || e);
  }
  r.flash = 0;
}

// flash colours tr (color "": clears it now).
function flash(tr, color) {
  if (tr.style.backgroundColor !== color) tr.style.backgroundColor = color;
  if (color) { tr._flashEnd = performance.now() + FLASH_MS; flashing.add(tr); }
  else flashing.delete(tr);
}

function newRow() {
  const tr = document.createElement("tr");
  for (let i = 0; i < 8; i++) tr.insertCell().className = i >= 1 && i <= 4 || i === 6 ? "num" : "";
  const NS = "http://www.w3.org/2000/svg", svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 90 18");
  tr._line = svg.appendChild(document.createElementNS(NS, "polyline"));
  tr.cells[5].appendChild(svg);
  return tr;
}

// frame: once per animation frame, the visible rows that changed.
function frame() {
  requestAnimationFrame(frame); // first: nothing below can stop the loop
  const now = Date.now();
  if (orderDirty && (order.length < 2000 || now - lastSort > 250)) {
    order = Array.from(rows.keys()).sort();
    orderDirty = false;
    lastSort = now;
    $("rowcount").textContent = order.length + " instruments";
  }
  const first = Math.max(0, Math.floor(viewTop / ROW_H) - OVERSCAN);
  const n = Math.min(order.length - first, Math.ceil(viewH / ROW_H) + 2 * OVERSCAN);
  setHeight("pad-top", first * ROW_H);
  setHeight("pad-bottom", Math.max(0, order.length - first - n) * ROW_H);
  const body = $("rows");
  for (let i = 0; i < n; i++) {
    let tr = pool[i];
    if (!tr) { tr = pool[i] = newRow(); body.appendChild(tr); }
    else if (tr.hidden) tr.hidden = false;
    const topic = order[first + i], r = rows.get(topic);
    if (tr._topic !== topic || repaintAll) paint(tr, r, false);
    else if (dirty.has(topic)) paint(tr, r, true);
  }
  for (let i = Math.max(n, 0); i < pool.length && !pool[i].hidden; i++) { pool[i].hidden = true; pool[i]._topic = pool[i].dataset.topic = ""; }
  dirty.clear();
  repaintAll = false;
  if (flashing.size) {
    const t = performance.now();
    for (const tr of flashing) if (tr._flashEnd <= t || tr.hidden) flash(tr, "");
  }
  if (newestTs) { stats.lagMs = Date.now() - newestTs / 1000; newestTs = 0; }
}

const heights = {};
function setHeight(id, px) {
  if (heights[id] === px) return;
  heights[id] = px;
  $(id).style.height = px + "px";
}

function applyFilter() {
  const next = $("filter").value;
  if (next === prefix) return;
  if (sub) sub.close(); // forgets the old prefix's topics
  prefix = next;
  for (const topic of rows.keys()) if (!topic.startsWith(prefix)) rows.delete(topic);
  orderDirty = true;
  sub = g.subscribe(spec());
}

const view = $("viewport");
view.addEventListener("scroll", () => { viewTop = view.scrollTop; }, { passive: true });
new ResizeObserver((es) => { viewH = es[0].contentRect.height; }).observe(view);
$("filter").addEventListener("change", applyFilter);
$("filter").addEventListener("keydown", (e) => { if (e.key === "Enter") applyFilter(); });
$("conflate").addEventListener("change", resubscribe);
$("throttle").addEventListener("change", resubscribe);

setInterval(() => {
  $("rate").textContent = stats.count;
  stats.count = 0;
  $("lag").textContent = stats.lagMs == null ? "–" : Math.max(0, stats.lagMs).toFixed(1) + " ms";
  $("gaps").textContent = stats.gaps;
  $("recovered").textContent = stats.recovered;
  $("skipped").textContent = stats.skipped;
  $("reconnects").textContent = stats.reconnects;
}, 1000);

window.mdgate = { rows, stats, client: g, state: () => document.body.dataset.conn, topics: () => order.slice() };
document.body.dataset.conn = "connecting";
sub = g.subscribe(spec());
requestAnimationFrame(frame);
