// Command loadtest measures the gateway under WebSocket fan-out load: it
// starts a gateway binary (pinned to one core with -pin, the load on the
// other), publishes JSON ticks that carry their send time into the ZeroMQ
// ingress at a set rate, and reads them on K WebSocket clients, each
// subscribed to S of T topics (seeded). After a warm-up it reports
// deliveries a second, losses, end-to-end latency percentiles, and the
// gateway's CPU per delivery and RSS read from /proc. -sweep raises the
// rate until p99 passes a bound or anything is lost; -idle measures the
// gateway's memory per idle WebSocket connection.
//
// It runs on loopback only, stops by itself, and kills the gateway it
// started. This is the part of the harness issue 4 needs; the ZeroMQ
// scenarios with zmq_proxy baselines and the HTML report are still to come.
package main
