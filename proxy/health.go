package proxy

import (
	"fmt"
	"slices"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/ha"
)

// Health is the loop's state for /healthz.
type Health struct {
	Running        bool      `json:"running"`
	Epoch          string    `json:"epoch"`
	Endpoints      Endpoints `json:"endpoints"`
	IngressPeers   int64     `json:"ingress_peers"`
	EgressPeers    int64     `json:"egress_peers"`
	StampedPeers   int64     `json:"stamped_peers"`
	IngressStamped bool      `json:"ingress_stamped"`
	// AcceptExhausted are listeners whose accepts failed for lack of
	// descriptors within the last second: new connections to them are shed
	// (accepted and closed); connected peers are not affected (accept.go).
	AcceptExhausted []string `json:"accept_exhausted,omitempty"`
	// HA is this gateway's place in a failover pair; nil outside one.
	HA *HAHealth `json:"ha,omitempty"`
}

// HAHealth is the failover pair's state for /healthz.
type HAHealth struct {
	Role      string `json:"role"`
	Mode      string `json:"mode"`
	Term      uint64 `json:"term"`
	PeerAlive bool   `json:"peer_alive"` // the peer's state heard within 2 heartbeats
}

// Alive reports whether the loop went round within the last second (it
// wakes at least every 50 ms): false while it is stuck. Safe from any
// goroutine.
func (p *Proxy) Alive() bool {
	return p.running.Load() && p.now().Sub(time.Unix(0, p.turn.Load())) < time.Second
}

// Health reports the loop's state; safe from any goroutine.
func (p *Proxy) Health() Health {
	var hh *HAHealth
	if p.ha != nil {
		hh = &HAHealth{Role: p.ha.cfg.Role.String(), Mode: ha.Mode(p.haMode.Load()).String(), Term: p.haTerm.Load(), PeerAlive: p.haPeerAlive.Load()}
	}
	return Health{
		HA:              hh,
		Running:         p.running.Load(),
		Epoch:           fmt.Sprintf("%016x", p.epoch.Load()),
		Endpoints:       p.Endpoints(),
		IngressPeers:    p.peers[roleIngress].Load(),
		EgressPeers:     p.peers[roleEgress].Load(),
		StampedPeers:    p.peers[roleStamped].Load(),
		IngressStamped:  p.cfg.IngressStamped,
		AcceptExhausted: slices.Clone(p.exhaustedNow()),
	}
}

// drainMonitor keeps the peer gauges current and hands accept failures to
// the accept guard. It reads at most monitorEventsPerTurn events: out of
// descriptors, the I/O thread emits one per failed accept, and the loop
// sheds (tickAccept) before it reads the rest.
func (p *Proxy) drainMonitor(mon *zmq.Socket, role socketRole) {
	for range monitorEventsPerTurn {
		ev, addr, val, err := mon.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return
		}
		switch ev {
		case zmq.EVENT_ACCEPT_FAILED:
			p.accept.failed(role, addr, val)
		case zmq.EVENT_ACCEPTED, zmq.EVENT_CONNECTED:
			p.m.peers[role].Set(float64(p.peers[role].Add(1)))
			if ev == zmq.EVENT_ACCEPTED {
				p.accept.accepted(role, val)
			}
		case zmq.EVENT_DISCONNECTED:
			p.accept.disconnected(role, val)
			n := p.peers[role].Add(-1)
			if n < 0 {
				p.peers[role].Store(0)
				n = 0
			}
			p.m.peers[role].Set(float64(n))
			p.m.peerDisconnect[role].Inc()
			p.log.Debug().Stringer("socket", role).Str("peer", addr).Msg("peer disconnected")
		}
	}
}

// observeLoop records one iteration's work time.
func (p *Proxy) observeLoop(d time.Duration) {
	p.m.loop.Observe(d.Seconds())
	if d > p.longest {
		p.longest = d
		p.m.loopLongest.Set(d.Seconds())
	}
}
