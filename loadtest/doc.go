// Command loadtest measures the gateway. It starts a gateway binary (pinned
// to one core with -pin, the load on the other; -gateway-args adds flags to
// its command line, such as "--write-delay 10ms") or attaches to a running
// one (-http), and runs scenarios:
//
//   - ws: JSON ticks carrying their send time go into the ZeroMQ ingress at a
//     set rate and out to K WebSocket clients, each subscribed to S of T
//     topics (seeded); -stalled adds clients that never read; -sweep raises
//     the rate until p99 passes a bound or anything is lost.
//   - zmq: N publishers -> M subscribers over ZeroMQ through mdgate, beside
//     libzmq's own zmq_proxy (a child process, measured the same way) and a
//     direct run with no proxy (this machine's ceiling), as ratios.
//   - slow: fast clients' latency with and without stalled clients.
//   - idle: gateway memory per idle WebSocket connection.
//   - standard: ws, zmq, slow and idle, as `make bench` runs them.
//   - nats: mdgate beside nats-server (scripts/ensure-nats installs it
//     outside the module) under the ws scenario's load, one after the
//     other, pinned and shared: server CPU per delivery and p99 at -rate,
//     the saturation rate of a short stepped search, harness cores, and RSS
//     per subscribed idle connection. nats-server is fed over its TCP port
//     and read over WebSocket with the NATS text protocol spoken here. Its
//     own generated sections of docs/benchmarks.md and docs/loadtest.html.
//   - attacks: the "isolation" issue's eight attacks (ZeroMQ subscribe
//     replays, subscribes matching nothing, snapshot requesters that never
//     read, descriptor exhaustion, a stalled ZeroMQ SUB of big messages, huge
//     WebSocket subscribes, a stalled WebSocket client at SIGTERM, idle HTTP
//     keep-alives), each against its own gateway beside a good workload (a
//     WebSocket client and a ZeroMQ SUB checking every topic's numbering)
//     measured before, during and after it: p99, losses, the proxy loop's
//     longest iteration, RSS, the attack's own counters and its bounds.
//     It writes its own generated section of docs/benchmarks.md.
//
// Each run reports deliveries a second, losses (expected from what was sent
// against what arrived), latency percentiles (HdrHistogram), throughput over
// time, the gateway's CPU per delivery and RSS (from /proc), and slow-client
// cut-offs. Output: a table with a progress line, -json, an -html report
// with inline SVG charts (opens offline), and -md, which rewrites the
// generated section of docs/benchmarks.md.
//
// It targets loopback only, stops by itself (bounded counts, windows and a
// 30-minute guard), and kills every process it started.
package main
