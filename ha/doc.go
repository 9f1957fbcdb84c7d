// Package ha is mdgate's Binary Star failover: two core gateways, a primary
// and a backup, each publishing its state to the other every heartbeat, so
// that exactly one of them is active (stamps and serves) and the other is
// passive (stands by), with failover driven by clients. It is the state
// machine of the ZeroMQ guide's bstar (chapter 4, "Binary Star"), extended
// with a term so that two actives left by a split can be told apart and the
// older one yields. See docs/ha.md for the topology and the full table.
//
// The package has three parts:
//
//   - Machine, the state machine. It is pure: no goroutines, no sockets, no
//     clock. Its owner feeds it the peer's states (Peer), the votes of
//     clients (ClientRequest) and the passing of time (Tick), always with
//     the current time passed in, and acts on each Result. A Machine is not
//     safe for concurrent use: one goroutine owns it.
//   - State, the message the two gateways exchange, and its 32-byte wire
//     form (Append, Parse).
//   - Link, the runner of the PUB/SUB exchange: one goroutine, Run, with its
//     OS thread locked, owns both libzmq sockets. It publishes exactly the
//     states its owner hands to Beat and never a beat of its own, so a hung
//     owner (in the gateway, the stamping loop) goes silent and its peer
//     sees it dead. Received states come out of Recv. Beat, Recv, Endpoint
//     and Stats are safe for concurrent use.
//
// The rules that keep one active, in short (docs/ha.md has every row):
//
//   - The peer is dead when nothing has come from it for two heartbeats.
//   - A passive (or a starting primary) becomes active only when a client
//     asks it (the vote) and the peer is dead: a cut HA link alone never
//     makes two actives. A starting backup refuses clients.
//   - A starting gateway whose peer is active comes up passive; failback is
//     manual (stop the active).
//   - Every entry into Active takes a new term, above every term this
//     gateway has held or seen from its peer: odd terms for the primary,
//     even ones for the backup, so the two can never take the same term,
//     even when each takes over unaware of the other.
//   - An active that sees its peer active with a higher term yields (goes
//     passive); with equal terms the backup yields.
//   - Two passives, or a peer with our own role, are fatal errors: the
//     owner must stop, as bstar does.
package ha
