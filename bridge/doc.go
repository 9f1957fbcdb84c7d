// Package bridge serves the gateway's market data to browsers over
// WebSocket (/ws). It speaks the JSON protocol documented in
// docs/protocol.md: clients subscribe to topics and prefixes, get the cached
// values first (to themselves only) and then live updates, and may resume
// after a reconnect from the last sequence number they saw.
//
// The bridge owns each connection's reads (the HTTP handler goroutine);
// writes belong to the connection's blackbox.Client. Bad input gets an
// error frame and the connection stays, until repeated abuse closes it with
// 1008.
package bridge
