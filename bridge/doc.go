// Package bridge serves the gateway's market data to browsers over
// WebSocket (/ws). It speaks the JSON protocol documented in
// docs/protocol.md: clients subscribe to topics and prefixes (conflated or
// throttled if they ask), get the cached values first (to themselves only)
// and then live updates, and may resume after a reconnect from the last
// sequence number they saw. A token (auth.go), when configured, limits the
// topics a client may subscribe to.
//
// Each connection is one session. ServeHTTP upgrades, starts the client's
// writing (blackbox.Client.Start) and the reader goroutine, and returns, so
// reads do not run on the handler goroutine. The reader (session.run) owns
// the connection's lifetime: it reads and handles requests, reports probe
// answers (pongs) to the blackbox.Client, and when reading ends it closes
// the client, waits for the last writer's done, drains what the peer still
// sends (bounded by CloseGrace and bytes) and closes the socket. While it
// waits for input with nothing buffered it parks on a shallow stack
// (idle.go: a 512-byte read buffer of the bridge's own, a MSG_PEEK poll;
// TLS connections keep gorilla's path).
//
// The writer is package blackbox's: a goroutine started when something is
// queued for the client and retired after 250 ms with nothing to write, so
// an idle connection holds one goroutine, its reader. One writer at a time
// writes updates, snapshot values paced to what the client reads, the
// heartbeat and the probe ping, each wake-up in one Write of frames the
// bridge builds itself (wsConn.WriteBatch: unmasked, uncompressed), and the
// close frame, through gorilla. The reader writes too, through gorilla:
// the pong to a client's ping and the echo of its close; a net.Conn's
// Writes do not interleave, so every frame arrives whole. The writer sets
// its write deadline only when the one it last set falls over a second
// short of what it asks, or after the reader's pong (written under a
// deadline of its own) replaced it (conn.go).
//
// Bad input gets an error frame and the connection stays, until repeated
// abuse closes it with 1008. A client cut off as too slow gets 4008, one
// silent for the pong wait 4009; Shutdown closes everyone with 1001.
//
// The bridge's time is Config.Clock's: deadlines, rate limits, token
// expiry, history ages, the times in pongs and heartbeats. The writer's
// (when heartbeats fall due, write deadlines, lag, the write delay, an idle
// writer's retirement) is the engine's Clock.
package bridge
