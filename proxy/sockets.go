package proxy

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/tick"
)

// Endpoints are the addresses the proxy actually bound (a wildcard port such
// as tcp://127.0.0.1:* is resolved).
type Endpoints struct {
	Ingress []string `json:"ingress"`
	Egress  []string `json:"egress"`
	Stamped []string `json:"stamped,omitempty"`
	Capture string   `json:"capture,omitempty"`
}

var monitorSeq atomic.Uint64 // unique inproc names for socket monitors

// Endpoints returns the bound addresses; valid once Ready is closed.
func (p *Proxy) Endpoints() Endpoints {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.endpoints
}

// sockets are the loop's sockets; all owned by the Run goroutine.
type sockets struct {
	xsub, xpub, spub, capture *zmq.Socket
	mirror                    *zmq.Socket           // failover pair: the active's stamped egress (ha.go)
	monitors                  [numRoles]*zmq.Socket // by role, may be nil
	monitored                 []*zmq.Socket         // sockets with a monitor attached
	all                       []*zmq.Socket
	in                        *recvBatch
}

// egressSocket returns the socket of an egress, or nil.
func (s *sockets) egressSocket(e egress) *zmq.Socket {
	switch e {
	case egressRaw:
		return s.xpub
	case egressStamped:
		return s.spub
	}
	return s.capture
}

// close stops every socket monitor first, while its reader is still
// connected, then closes the sockets. libzmq's I/O thread sends monitor
// events with a blocking send: an event for a monitor whose reader is gone
// would block that thread, and with it every socket of the context, for
// good.
func (s *sockets) close(linger time.Duration) {
	if s.in != nil {
		s.in.free()
	}
	for _, sock := range s.monitored {
		sock.Monitor("", 0)
	}
	for i := len(s.all) - 1; i >= 0; i-- {
		s.all[i].SetLinger(linger)
		s.all[i].Close()
	}
}

func (s *sockets) newSocket(t zmq.Type) (*zmq.Socket, error) {
	sock, err := zmq.NewSocket(t)
	if err != nil {
		return nil, fmt.Errorf("new %v socket: %w", t, err)
	}
	s.all = append(s.all, sock)
	return sock, nil
}

// open creates, configures and binds every socket.
func (p *Proxy) open(s *sockets) (err error) {
	c := &p.cfg
	ep := Endpoints{}
	if s.xsub, err = s.newSocket(zmq.XSUB); err != nil {
		return err
	}
	if err := checkHandle(s.xsub); err != nil {
		return err
	}
	s.in = newRecvBatch(c.Batch, 4*c.Batch+p.frameCap())
	opts := []error{
		s.xsub.SetRcvhwm(c.IngressHWM),
		s.xsub.SetMaxmsgsize(c.MaxMsgSize),
	}
	if err := errors.Join(append(opts, p.common(s.xsub))...); err != nil {
		return fmt.Errorf("ingress options: %w", err)
	}
	if s.monitors[roleIngress], err = p.monitor(s, s.xsub); err != nil {
		return err
	}
	for _, e := range c.IngressBind {
		got, err := bind(s.xsub, e)
		if err != nil {
			return fmt.Errorf("ingress: %w", err)
		}
		p.track(roleIngress, got)
		ep.Ingress = append(ep.Ingress, got)
	}
	for _, e := range c.IngressConnect {
		if err := s.xsub.Connect(e); err != nil {
			return fmt.Errorf("ingress connect %s: %w", e, err)
		}
	}
	// Subscribe upstream: everything, or the configured prefixes.
	for _, f := range p.upstreamFilters() {
		if _, err := s.xsub.SendBytes(append([]byte{1}, f...), 0); err != nil {
			return fmt.Errorf("ingress subscribe %q: %w", f, err)
		}
	}

	if len(c.EgressBind) > 0 {
		if s.xpub, ep.Egress, err = p.openXPUB(s, c.EgressBind, roleEgress); err != nil {
			return fmt.Errorf("egress: %w", err)
		}
	}
	if len(c.StampedBind) > 0 {
		if s.spub, ep.Stamped, err = p.openXPUB(s, c.StampedBind, roleStamped); err != nil {
			return fmt.Errorf("stamped egress: %w", err)
		}
	}
	if c.CaptureBind != "" {
		if s.capture, err = s.newSocket(zmq.PUB); err != nil {
			return err
		}
		if err := s.capture.SetSndhwm(c.egressHWM()); err != nil {
			return fmt.Errorf("capture options: %w", err)
		}
		if ep.Capture, err = bind(s.capture, c.CaptureBind); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
	}
	p.mu.Lock()
	p.endpoints = ep
	p.mu.Unlock()
	return nil
}

// upstreamFilters are the prefixes subscribed upstream: the configured
// ones, or everything; with IngressResubscribe and filters, the heartbeat
// topic too, so quiet topics are not taken for a silent upstream.
func (p *Proxy) upstreamFilters() []string {
	if len(p.cfg.IngressFilter) == 0 {
		return []string{""}
	}
	if p.cfg.IngressStamped && p.cfg.IngressResubscribe > 0 {
		return append(slices.Clone(p.cfg.IngressFilter), tick.HeartbeatTopic)
	}
	return p.cfg.IngressFilter
}

func (p *Proxy) openXPUB(s *sockets, endpoints []string, role socketRole) (*zmq.Socket, []string, error) {
	x, err := s.newSocket(zmq.XPUB)
	if err != nil {
		return nil, nil, err
	}
	if err := errors.Join(checkHandle(x), x.SetSndhwm(p.cfg.egressHWM()), x.SetXpubVerbose(1), p.common(x)); err != nil {
		return nil, nil, fmt.Errorf("options: %w", err)
	}
	if s.monitors[role], err = p.monitor(s, x); err != nil {
		return nil, nil, err
	}
	var bound []string
	for _, e := range endpoints {
		got, err := bind(x, e)
		if err != nil {
			return nil, nil, err
		}
		p.track(role, got)
		bound = append(bound, got)
	}
	return x, bound, nil
}

// common sets the options every core socket shares.
func (p *Proxy) common(s *zmq.Socket) error {
	c := &p.cfg
	var errs []error
	if c.CurveSecret != "" {
		errs = append(errs, s.SetCurveServer(1), s.SetCurveSecretkey(c.CurveSecret), s.SetZapDomain(zapDomain))
	}
	errs = append(errs, s.SetTcpKeepalive(1), s.SetLinger(c.Linger), s.SetHandshakeIvl(c.HandshakeIvl),
		s.SetRate(c.MulticastRate), s.SetRecoveryIvl(c.MulticastRecovery), s.SetMulticastHops(c.MulticastHops))
	if c.HeartbeatIvl > 0 {
		errs = append(errs, s.SetHeartbeatIvl(c.HeartbeatIvl))
		if c.HeartbeatTimeout > 0 {
			errs = append(errs, s.SetHeartbeatTimeout(c.HeartbeatTimeout))
		}
		if c.HeartbeatTTL > 0 {
			errs = append(errs, s.SetHeartbeatTtl(c.HeartbeatTTL))
		}
	}
	return errors.Join(errs...)
}

// monitor attaches a PAIR socket that receives s's connection events. The
// reader's receive queue is unbounded (RCVHWM 0): libzmq's I/O thread blocks
// on a full monitor pipe, so a bound here would let a burst of connections
// stall all traffic while the loop is busy. Events are a few dozen bytes per
// connect or disconnect and the loop drains them on every poll.
func (p *Proxy) monitor(s *sockets, sock *zmq.Socket) (*zmq.Socket, error) {
	addr := fmt.Sprintf("inproc://mdgate-monitor-%d", monitorSeq.Add(1))
	if err := sock.Monitor(addr, zmq.EVENT_ACCEPTED|zmq.EVENT_CONNECTED|zmq.EVENT_DISCONNECTED|zmq.EVENT_ACCEPT_FAILED); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	s.monitored = append(s.monitored, sock)
	mon, err := s.newSocket(zmq.PAIR)
	if err != nil {
		return nil, err
	}
	if err := mon.SetRcvhwm(0); err != nil {
		return nil, fmt.Errorf("monitor options: %w", err)
	}
	if err := mon.Connect(addr); err != nil {
		return nil, fmt.Errorf("monitor connect: %w", err)
	}
	return mon, nil
}

func bind(s *zmq.Socket, endpoint string) (string, error) {
	if err := s.Bind(endpoint); err != nil {
		return "", fmt.Errorf("bind %s: %w", endpoint, err)
	}
	got, err := s.GetLastEndpoint()
	if err != nil {
		return endpoint, nil
	}
	return got, nil
}
