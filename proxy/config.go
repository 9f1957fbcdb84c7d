package proxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// Config is everything the proxy loop needs. The zero value is not usable:
// start from DefaultConfig.
type Config struct {
	IngressBind    []string // XSUB endpoints publishers connect to
	IngressConnect []string // publisher endpoints the XSUB connects to
	// IngressFilter lists the topic prefixes subscribed upstream; empty means
	// everything (the cache needs it).
	IngressFilter []string
	// IngressStamped says the ingress carries mdgate stamp frames (the feed is
	// another gateway's stamped egress): the upstream stamp is kept, not
	// replaced, and a message without a valid stamp is dropped.
	IngressStamped bool
	// IngressResubscribe, with IngressStamped: when nothing (not even a
	// heartbeat) has come from upstream for this long, the subscriptions
	// are sent upstream again, which a failover pair's standby counts as
	// a vote (docs/ha.md): an edge fed by both gateways of a pair moves
	// the pair on when its active goes silent. 0: never.
	IngressResubscribe time.Duration

	EgressBind  []string // raw XPUB: exactly the publisher's frames
	StampedBind []string // XPUB: the publisher's frames plus one stamp frame
	CaptureBind string   // PUB copy of all traffic, for `gateway tap`

	MaxMsgSize    int64 // ZMQ_MAXMSGSIZE on ingress, bytes per frame; -1 unlimited
	MaxMsgBytes   int   // bytes of a whole message, all frames; larger ones are dropped (too_large)
	MaxTopicBytes int   // bytes of a topic; longer ones are dropped (topic_too_long)
	MaxFrames     int   // frames per message, topic included
	MaxTopics     int   // distinct topics sequenced; new ones past it are dropped
	IngressHWM    int
	// EgressHWM bounds in messages what libzmq holds for one ZeroMQ
	// subscriber (0: no message bound); EgressMaxBytes bounds it in bytes:
	// the HWM used is at most EgressMaxBytes / MaxMsgBytes, so a stalled
	// subscriber holds at most EgressMaxBytes of messages. 0: no byte bound.
	EgressHWM      int
	EgressMaxBytes int64

	// Replays of cached values to new ZeroMQ subscriptions (replay.go).
	ReplayInterval    time.Duration // a prefix is replayed at most once per interval on an egress
	ReplayBatch       int           // messages replayed per loop iteration at most
	ReplayRate        int           // messages replayed a second at most, all prefixes
	MaxPendingReplays int           // prefixes waiting for a replay; more are refused
	// MaxSubscriptions bounds the distinct prefixes the loop tracks per
	// egress; a new prefix past it is not replayed (counted).
	MaxSubscriptions int

	// ZMTP heartbeats on every core socket; zero interval turns them off.
	HeartbeatIvl     time.Duration
	HeartbeatTimeout time.Duration
	HeartbeatTTL     time.Duration

	// HandshakeIvl is ZMQ_HANDSHAKE_IVL on every core socket: a connection
	// that has not completed the ZMTP (and CURVE) handshake this long after
	// it was accepted is dropped, which gives its descriptor back. A real
	// handshake takes a few round trips; libzmq's default is 30 s, which lets
	// idle connections hold descriptors six times as long (accept.go).
	HandshakeIvl time.Duration

	// Multicast (epgm://, pgm://) on the ingress and egress sockets.
	MulticastRate     int           // ZMQ_RATE, kbit/s, 1 to MaxMulticastRate
	MulticastRecovery time.Duration // ZMQ_RECOVERY_IVL: how far back a receiver may ask for repairs
	MulticastHops     int           // ZMQ_MULTICAST_HOPS (TTL): 1 stays on the LAN segment

	// CURVE on every bound ingress and egress socket: the server's secret
	// key (Z85) and the public keys (Z85) of the publishers and subscribers
	// allowed in. Empty CurveSecret: no encryption, anyone may connect.
	CurveSecret  string
	CurveClients []string

	// Linger bounds how long Close waits for queued egress at shutdown.
	Linger time.Duration
	// Batch is how many messages the loop takes from a ready socket before
	// it polls again.
	Batch int
	// Epoch identifies this run; zero means pick a random one.
	Epoch uint64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the gateway's defaults.
func DefaultConfig() Config {
	return Config{
		IngressBind:    []string{"tcp://*:5556"},
		EgressBind:     []string{"tcp://*:5557"},
		StampedBind:    []string{"tcp://*:5559"},
		MaxMsgSize:     1 << 20,
		MaxMsgBytes:    64 << 10,
		MaxTopicBytes:  256,
		MaxFrames:      16,
		MaxTopics:      1_000_000,
		IngressHWM:     100_000,
		EgressHWM:      100_000,
		EgressMaxBytes: 256 << 20,

		ReplayInterval:    time.Second,
		ReplayBatch:       256,
		ReplayRate:        100_000,
		MaxPendingReplays: 4096,
		MaxSubscriptions:  100_000,
		HeartbeatTimeout:  0,
		HandshakeIvl:      5 * time.Second,
		Linger:            time.Second,
		Batch:             512,

		MulticastRate:     100_000, // 100 Mbit/s; libzmq's 100 kbit/s default carries ~100 msgs/s
		MulticastRecovery: 10 * time.Second,
		MulticastHops:     1,
	}
}

// egressHWM is the high-water mark set on each XPUB: EgressHWM capped so a
// stalled subscriber holds at most EgressMaxBytes of messages.
func (c *Config) egressHWM() int {
	if c.EgressMaxBytes == 0 {
		return c.EgressHWM
	}
	byBytes := int(min(c.EgressMaxBytes/int64(max(c.MaxMsgBytes, 1)), 1<<30))
	if c.EgressHWM == 0 {
		return max(byBytes, 1)
	}
	return max(min(c.EgressHWM, byBytes), 1)
}

// MaxMulticastRate is the highest ZMQ_RATE (kbit/s) the gateway accepts.
// Measured here (libzmq 4.3.4, Debian's libpgm 5.3): 100,000 messages of
// 100 bytes crossed intact at 100 and 500 Mbit/s; at 1 Gbit/s the receiver
// died in pgm_receiver.cpp after 2,642.
const MaxMulticastRate = 500_000

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.IngressBind)+len(c.IngressConnect) == 0 {
		errs = append(errs, errors.New("no ingress: give --ingress-bind or --ingress-connect"))
	}
	if len(c.EgressBind)+len(c.StampedBind) == 0 {
		errs = append(errs, errors.New("no egress: give --egress-bind or --stamped-bind"))
	}
	for _, e := range concat(c.IngressBind, c.IngressConnect, c.EgressBind, c.StampedBind) {
		if err := CheckEndpoint(e); err != nil {
			errs = append(errs, err)
		}
	}
	if c.CaptureBind != "" {
		if err := CheckEndpoint(c.CaptureBind); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxMsgSize == 0 || c.MaxMsgSize < -1 {
		errs = append(errs, fmt.Errorf("max message size %d: want a positive byte count or -1", c.MaxMsgSize))
	}
	if c.MaxFrames < 1 || c.MaxFrames > 1000 {
		errs = append(errs, fmt.Errorf("max frames %d: want 1 to 1000", c.MaxFrames))
	}
	if c.MaxTopics < 1 {
		errs = append(errs, fmt.Errorf("max topics %d: want at least 1", c.MaxTopics))
	}
	if c.MaxMsgBytes < 1 {
		errs = append(errs, fmt.Errorf("max message bytes %d: want at least 1", c.MaxMsgBytes))
	}
	if c.MaxTopicBytes < 1 || c.MaxTopicBytes > 65536 {
		errs = append(errs, fmt.Errorf("max topic bytes %d: want 1 to 65536", c.MaxTopicBytes))
	}
	if c.EgressMaxBytes != 0 && c.EgressMaxBytes < int64(c.MaxMsgBytes) {
		errs = append(errs, fmt.Errorf("egress max bytes %d: want 0 (no byte bound) or at least one message of max message bytes (%d)", c.EgressMaxBytes, c.MaxMsgBytes))
	}
	if c.ReplayInterval < 0 {
		errs = append(errs, fmt.Errorf("replay interval %v: want 0 or more", c.ReplayInterval))
	}
	if c.ReplayBatch < 1 {
		errs = append(errs, fmt.Errorf("replay batch %d: want at least 1", c.ReplayBatch))
	}
	if c.ReplayRate < 0 {
		errs = append(errs, fmt.Errorf("replay rate %d: want 0 (no rate bound) or more", c.ReplayRate))
	}
	if c.MaxPendingReplays < 1 {
		errs = append(errs, fmt.Errorf("replay max pending %d: want at least 1", c.MaxPendingReplays))
	}
	if c.MaxSubscriptions < 1 {
		errs = append(errs, fmt.Errorf("egress max subscriptions %d: want at least 1", c.MaxSubscriptions))
	}
	if c.IngressHWM < 0 {
		errs = append(errs, fmt.Errorf("ingress hwm %d: want 0 (none) or more", c.IngressHWM))
	}
	if c.EgressHWM < 0 {
		errs = append(errs, fmt.Errorf("egress hwm %d: want 0 (none) or more", c.EgressHWM))
	}
	if c.Batch < 1 || c.Batch > 65536 {
		errs = append(errs, fmt.Errorf("batch %d: want 1 to 65536", c.Batch))
	}
	if c.MulticastRate < 1 || c.MulticastRate > MaxMulticastRate {
		errs = append(errs, fmt.Errorf("multicast rate %d kbit/s: want 1 to %d (libzmq's epgm receiver crashes at 1 Gbit/s)", c.MulticastRate, MaxMulticastRate))
	}
	if c.MulticastRecovery < time.Millisecond || c.MulticastRecovery > time.Hour {
		errs = append(errs, fmt.Errorf("multicast recovery interval %v: want 1ms to 1h", c.MulticastRecovery))
	}
	if c.MulticastHops < 1 || c.MulticastHops > 255 {
		errs = append(errs, fmt.Errorf("multicast hops %d: want 1 to 255", c.MulticastHops))
	}
	if c.CurveSecret != "" {
		if len(c.CurveSecret) != 40 || len(zmq.Z85decode(c.CurveSecret)) != 32 {
			errs = append(errs, errors.New("CURVE secret key: want 40 characters of Z85"))
		}
		if len(c.CurveClients) == 0 {
			errs = append(errs, errors.New("CURVE is on but no client key is allowed: nobody could connect"))
		}
		for _, k := range c.CurveClients {
			if len(k) != 40 || len(zmq.Z85decode(k)) != 32 {
				errs = append(errs, fmt.Errorf("CURVE client key %q: want 40 characters of Z85", k))
			}
		}
		if !zmq.HasCurve() {
			errs = append(errs, errors.New("CURVE: this libzmq was built without it"))
		}
	}
	if c.HandshakeIvl < 10*time.Millisecond || c.HandshakeIvl > time.Hour {
		errs = append(errs, fmt.Errorf("ZeroMQ handshake timeout %v: want 10ms to 1h", c.HandshakeIvl))
	}
	if c.HeartbeatIvl < 0 {
		errs = append(errs, fmt.Errorf("zmq heartbeat %v: want 0 (off) or more", c.HeartbeatIvl))
	}
	if c.HeartbeatTimeout < 0 {
		errs = append(errs, fmt.Errorf("zmq heartbeat timeout %v: want 0 (the interval) or more", c.HeartbeatTimeout))
	}
	if c.HeartbeatTTL < 0 {
		errs = append(errs, fmt.Errorf("zmq heartbeat ttl %v: want 0 (none) or more", c.HeartbeatTTL))
	}
	return errors.Join(errs...)
}

func concat(ss ...[]string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

var transports = []string{"tcp://", "ipc://", "inproc://", "epgm://", "pgm://"}

// CheckEndpoint reports an endpoint libzmq would refuse or misread: an
// unknown transport, no address, or for tcp://, epgm:// and pgm:// a port
// that is not * or 0 to 65535 (libzmq takes 99999 modulo 65536 and binds
// 34463).
func CheckEndpoint(e string) error {
	for _, t := range transports {
		if !strings.HasPrefix(e, t) || len(e) == len(t) {
			continue
		}
		if t == "ipc://" || t == "inproc://" {
			return nil
		}
		// tcp://[src;]host:port, epgm://iface;group:port: the port ends it.
		addr := e[len(t):]
		if i := strings.LastIndexByte(addr, ';'); i >= 0 {
			addr = addr[i+1:]
		}
		i := strings.LastIndexByte(addr, ':')
		if i < 0 {
			return fmt.Errorf("endpoint %q: no port (want host:port, port * or 0 to 65535)", e)
		}
		if port := addr[i+1:]; port != "*" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 0 || n > 65535 {
				return fmt.Errorf("endpoint %q: port %q: want * or 0 to 65535", e, port)
			}
		}
		return nil
	}
	return fmt.Errorf("endpoint %q: want tcp://, ipc://, inproc://, epgm:// or pgm:// followed by an address", e)
}
