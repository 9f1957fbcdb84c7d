// Package bridge serves the gateway's market data to browsers over
// WebSocket (/ws). It speaks the JSON protocol documented in
// docs/protocol.md: clients subscribe to topics and prefixes (conflated or
// throttled if they ask), get the cached values first (to themselves only)
// and then live updates, and may resume after a reconnect from the last
// sequence number they saw. A token (auth.go), when configured, limits the
// topics a client may subscribe to.
//
// Each connection is one session with two goroutines; ServeHTTP upgrades,
// starts them and returns, so reads no longer run on the handler goroutine.
// The reader (session.run) owns the connection's lifetime: it reads and
// handles requests, reports probe answers (pongs) to the blackbox.Client,
// and when reading ends it closes the client, waits for the writer, drains
// what the peer still sends (bounded by CloseGrace and bytes) and closes the
// socket. The writer is the client's Run (package blackbox), the only
// goroutine that writes: updates, snapshot values paced to what the client
// reads, pings and the close frame.
//
// Bad input gets an error frame and the connection stays, until repeated
// abuse closes it with 1008. A client cut off as too slow gets 4008, one
// silent for the pong wait 4009; Shutdown closes everyone with 1001.
//
// The bridge's time is Config.Clock's: deadlines, rate limits, token
// expiry, history ages, the times in pongs and heartbeats. The writer's
// (heartbeat beats, write deadlines, lag) is the engine's Clock.
package bridge
