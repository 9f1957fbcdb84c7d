// Package proxy is mdgate's libzmq proxy loop: the one goroutine that owns
// every ZeroMQ socket of the core (the XSUB ingress, the XPUB egresses, the
// capture PUB and their monitors).
//
// Publishers send multipart [topic, payload...] messages to the XSUB. The loop
// validates each one, stamps it (epoch, per-topic sequence number, ingress
// time), and hands the immutable *tick.Message to:
//
//   - the raw XPUB egress, which sends exactly the frames the publisher sent;
//   - the stamped XPUB egress, which appends one stamp frame (see package tick);
//   - the capture PUB (the "espresso" tap), when configured;
//   - the Cache (last-value cache) and every Sink (the WebSocket fan-out).
//
// Sinks are called on the loop's goroutine and must never block. libzmq
// sockets are not thread-safe: nothing outside Run touches them, and Run locks
// its OS thread for its whole life.
package proxy
