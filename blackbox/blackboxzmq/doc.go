// Package blackboxzmq is the ZeroMQ guide's Black Box for subscribers of
// the gateway: RunSub connects a libzmq SUB socket to an egress (raw or
// stamped) and spreads the per-message work over cores. One goroutine, its
// OS thread locked, owns the socket and only reads, handing each message to
// one of N workers chosen by topic, so per-topic order is kept. A full
// worker queue makes the reader wait, and libzmq's high-water mark then
// holds or drops upstream without telling: use slowsubzmq.Sub on the
// stamped stream to detect that.
//
// It is apart from package blackbox (the gateway's WebSocket fan-out),
// which builds without libzmq; this one needs it (cgo, libzmq3-dev).
package blackboxzmq
