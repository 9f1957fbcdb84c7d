package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/bridge"
	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/ha"
	"github.com/mdgate/mdgate/internal/config"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/proxy"
)

// options binds every flag to a field of gateway.Config.
type options struct {
	cfg      gateway.Config
	lists    map[string]*config.List
	logLevel string
	level    zerolog.Level // logLevel parsed
	logJSON  bool
	file     string

	jwtSecretFile, jwtPublicKey string
	curveSecretFile, curveDir   string

	haRole, haBind, haPeer string
	haHeartbeat            time.Duration
}

const usageHead = `mdgate gateway: a ZeroMQ market-data gateway.

Usage:
  gateway [options]                 run the gateway
  gateway tap ENDPOINT [PREFIX]     print a gateway's capture stream (--capture-bind) live

Every option can also be set by an environment variable MDGATE_<NAME> (upper
case, dashes as underscores; repeatable options take a comma-separated list)
or a line "name = value" in the file given by --config. The command line wins
over the environment, which wins over the file.

Options:
`

func newFlagSet(w io.Writer) (*flag.FlagSet, *options) {
	o := &options{cfg: gateway.DefaultConfig(), lists: map[string]*config.List{}}
	p := &o.cfg.Proxy
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	list := func(name string, defaults []string, usage string) {
		l := config.NewList(defaults...)
		o.lists[name] = l
		fs.Var(l, name, usage+" (repeatable)")
	}
	fs.StringVar(&o.file, "config", "", "`file` of name = value lines (see above)")
	list("ingress-bind", p.IngressBind, "XSUB `endpoint` that publishers connect to (tcp://, ipc://, epgm://)")
	list("ingress-connect", nil, "publisher `endpoint` the gateway connects to (tcp://, ipc://, epgm://)")
	list("ingress-filter", nil, "topic `prefix` to subscribe upstream; none means every topic (the cache needs it)")
	fs.BoolVar(&p.IngressStamped, "ingress-stamped", false, "the ingress is another gateway's stamped egress: keep its stamps (seq, epoch) instead of re-stamping")
	fs.DurationVar(&p.IngressResubscribe, "ingress-resubscribe", 0, "with --ingress-stamped: when nothing, not even a heartbeat, came from upstream for this long, send a vote upstream (a subscription to the vote topic): an edge fed by a failover pair votes the standby in when the active goes silent (docs/ha.md); 0: never")
	list("egress-bind", p.EgressBind, "XPUB `endpoint` for ZeroMQ subscribers: exactly the publishers' frames")
	list("stamped-bind", p.StampedBind, "XPUB `endpoint` whose messages carry one extra stamp frame (docs/stamp.md)")
	fs.StringVar(&p.CaptureBind, "capture-bind", "", "PUB `endpoint` copying all traffic and subscriptions, for `gateway tap`")
	fs.Int64Var(&p.MaxMsgSize, "max-msg-size", p.MaxMsgSize, "largest ingress frame in `bytes` (ZMQ_MAXMSGSIZE; a publisher sending more is disconnected); -1 for no limit")
	fs.IntVar(&p.MaxFrames, "max-frames", p.MaxFrames, "most frames in a message, topic included; more is dropped")
	fs.IntVar(&p.MaxTopics, "max-topics", p.MaxTopics, "most distinct topics; a message on a new topic past it is dropped")
	fs.IntVar(&p.IngressHWM, "ingress-hwm", p.IngressHWM, "ingress high-water mark in `messages` per publisher (0: none)")
	fs.IntVar(&p.EgressHWM, "egress-hwm", p.EgressHWM, "egress high-water mark in `messages` per ZeroMQ subscriber (0: none; --egress-max-bytes caps it); past it libzmq drops for that subscriber")
	fs.Int64Var(&p.EgressMaxBytes, "egress-max-bytes", p.EgressMaxBytes, "most `bytes` of messages held for one stalled ZeroMQ subscriber: the high-water mark used is at most this / --max-msg-bytes (0: no byte bound)")
	fs.IntVar(&p.MaxMsgBytes, "max-msg-bytes", p.MaxMsgBytes, "largest ingress message in `bytes`, all frames together; larger ones are dropped (too_large)")
	fs.IntVar(&p.MaxTopicBytes, "max-topic-bytes", p.MaxTopicBytes, "longest topic in `bytes`; longer ones are dropped (topic_too_long), and longer ZeroMQ subscriptions are not tracked")
	fs.IntVar(&p.MaxSubscriptions, "egress-max-subscriptions", p.MaxSubscriptions, "distinct prefixes tracked (and replayed) per ZeroMQ egress; past it new prefixes get no replay (counted)")
	fs.DurationVar(&p.ReplayInterval, "replay-interval", p.ReplayInterval, "a prefix's cached values are replayed to new ZeroMQ subscribers at most once per interval; repeats coalesce into one replay at its end")
	fs.IntVar(&p.ReplayBatch, "replay-batch", p.ReplayBatch, "cached values replayed per loop iteration at most (the rest carried over)")
	fs.IntVar(&p.ReplayRate, "replay-rate", p.ReplayRate, "cached values replayed a second at most, all ZeroMQ subscriptions together (0: no rate bound)")
	fs.IntVar(&p.MaxPendingReplays, "replay-max-pending", p.MaxPendingReplays, "prefixes waiting for a replay at most; more are refused (counted)")
	fs.DurationVar(&p.HeartbeatIvl, "zmq-heartbeat", 0, "ZMTP heartbeat interval on every ZeroMQ socket; 0 turns heartbeats off (peers built on go-zeromq/zmq4 need them off)")
	fs.DurationVar(&p.HeartbeatTimeout, "zmq-heartbeat-timeout", 0, "time without traffic after a heartbeat before the peer is dropped (0: libzmq's default, the interval)")
	fs.DurationVar(&p.HeartbeatTTL, "zmq-heartbeat-ttl", 0, "heartbeat time-to-live asked of the remote peer (0: none)")
	fs.DurationVar(&p.HandshakeIvl, "zmq-handshake-timeout", p.HandshakeIvl, "a ZeroMQ connection that has not completed its ZMTP/CURVE handshake this long after it was accepted is dropped, freeing its descriptor (10ms to 1h; libzmq's own default is 30s)")
	fs.StringVar(&o.cfg.HTTP, "http", o.cfg.HTTP, "`address` for /healthz and /metrics")
	fs.DurationVar(&o.cfg.HTTPIdleTimeout, "http-idle-timeout", o.cfg.HTTPIdleTimeout, "an HTTP keep-alive connection with no request for this long is closed (0: --http-read-timeout); WebSocket connections are not affected")
	fs.DurationVar(&o.cfg.HTTPReadTimeout, "http-read-timeout", o.cfg.HTTPReadTimeout, "bound on reading a whole HTTP request (0: none); WebSocket connections are not affected")
	fs.IntVar(&o.cfg.HTTPMaxConns, "http-max-conns", o.cfg.HTTPMaxConns, "most open HTTP connections, WebSocket ones included; more are closed as soon as accepted (0: no limit)")
	fs.BoolVar(&o.cfg.Demo, "demo", false, "run a built-in synthetic feed (random-walk prices, JSON payloads)")
	fs.IntVar(&o.cfg.DemoRate, "demo-rate", o.cfg.DemoRate, "demo feed `messages` a second")
	fs.IntVar(&o.cfg.DemoInstruments, "demo-instruments", o.cfg.DemoInstruments, "demo feed instrument count")
	fs.DurationVar(&o.cfg.ShutdownTimeout, "shutdown-timeout", o.cfg.ShutdownTimeout, "bound on graceful shutdown")
	fs.BoolVar(&o.cfg.LVC, "lvc", true, "keep a last-value cache: replay on subscribe, snapshots, persistence")
	fs.IntVar(&o.cfg.Cache.MaxTopics, "lvc-max-topics", o.cfg.Cache.MaxTopics, "most topics cached (at least 1; --lvc=false for none); a new topic past it is not cached (counted), nothing is evicted")
	fs.Int64Var(&o.cfg.Cache.MaxBytes, "lvc-max-bytes", o.cfg.Cache.MaxBytes, "most frame `bytes` cached; a new topic past it is not cached (counted)")
	list("lvc-ttl", nil, "time to live of cached values under a prefix, as `prefix=duration` (e.g. quotes.=5s); the longest prefix wins")
	list("history", nil, "keep the last updates of every topic under a prefix for clients that resume, as `prefix=count[,bytes[,age]]` (bytes per topic, default 1048576; age e.g. 10m, default none; count 0 turns it off under a longer prefix); the longest prefix wins; kept in --lvc-file")
	fs.Int64Var(&o.cfg.Cache.HistoryMaxBytes, "history-max-bytes", lvc.DefaultHistoryMaxBytes, "most frame `bytes` of history over all topics; past it the topic being updated lets its own oldest go (counted)")
	fs.StringVar(&o.cfg.CacheFile, "lvc-file", "", "persist the cache to this `file` (atomically, every --lvc-save-interval and at shutdown) and load it at start; refused if it is a directory, unreadable, or its directory is missing or not writable; a corrupt file is moved aside to FILE.corrupt-TIME")
	fs.DurationVar(&o.cfg.CacheSaveEvery, "lvc-save-interval", o.cfg.CacheSaveEvery, "how often --lvc-file is rewritten (more than 0; the last save at shutdown is bounded by --shutdown-timeout)")
	fs.StringVar(&o.cfg.SnapshotBind, "snapshot-bind", o.cfg.SnapshotBind, "ROUTER `endpoint` answering snapshot requests (docs/snapshot.md); empty turns it off")
	fs.IntVar(&o.cfg.Snapshot.MaxRequests, "snapshot-max-requests", o.cfg.Snapshot.MaxRequests, "snapshot requests in progress at most, all requesters together; past it ERR busy")
	fs.IntVar(&o.cfg.Snapshot.MaxPerPeer, "snapshot-max-per-peer", o.cfg.Snapshot.MaxPerPeer, "snapshot requests in progress at most from one requester (one served, the rest wait); past it ERR busy")
	fs.IntVar(&o.cfg.Snapshot.HWM, "snapshot-hwm", o.cfg.Snapshot.HWM, "snapshot replies held for one requester in `messages` (bytes: this x --max-msg-bytes at most)")
	fs.DurationVar(&o.cfg.Snapshot.StallTimeout, "snapshot-stall-timeout", o.cfg.Snapshot.StallTimeout, "a snapshot request that could send nothing for this long (its requester does not read) is dropped")
	fs.IntVar(&p.MulticastRate, "multicast-rate", p.MulticastRate, fmt.Sprintf("epgm/pgm rate in `kbit/s` (1 to %d; libzmq's own default, 100, carries about 100 msgs/s)", proxy.MaxMulticastRate))
	fs.DurationVar(&p.MulticastRecovery, "multicast-recovery", p.MulticastRecovery, "epgm/pgm recovery interval: how far back a receiver may ask for lost packets")
	fs.IntVar(&p.MulticastHops, "multicast-hops", p.MulticastHops, "epgm/pgm multicast TTL; 1 stays on the local segment")
	f, b := &o.cfg.Fanout, &o.cfg.Bridge
	fs.IntVar(&f.Shards, "fanout-shards", 0, "fan-out workers, each owning a share of the topics (0: one per core)")
	fs.IntVar(&f.ShardQueue, "fanout-queue", f.ShardQueue, "messages waiting per fan-out worker before new ones are dropped (counted as shard_full)")
	fs.IntVar(&f.Limits.MaxBytes, "slow-max-bytes", f.Limits.MaxBytes, "most `bytes` queued for one client; past it the client is cut off (or conflated, if it asked); a client may ask for less (0: no byte bound; not both this and --slow-max-lag)")
	fs.DurationVar(&f.Limits.MaxLag, "slow-max-lag", f.Limits.MaxLag, "most age of a client's oldest undelivered message; past it the client is cut off; a client may ask for less (0: no lag bound)")
	fs.DurationVar(&f.WriteTimeout, "write-timeout", f.WriteTimeout, "deadline of every write to a client")
	fs.DurationVar(&f.WriteDelay, "write-delay", f.WriteDelay, fmt.Sprintf("how long a fan-out shard holds the wake-ups for live updates it queued, from the first of them: each client woken once a window, so fewer, larger writes (less CPU per delivery) for up to that much latency (0: none; at most %v)", blackbox.MaxWriteDelay))
	fs.DurationVar(&f.BusyWriteDelay, "write-delay-busy", f.BusyWriteDelay, fmt.Sprintf("the same hold, only while the gateway is short of CPU: while the Go scheduler's ready goroutines wait 5 ms or more at p90 (measured each sweep, until under 2 ms), when updates already wait that long (0: never; at most %v; unused with --write-delay)", blackbox.MaxWriteDelay))
	fs.IntVar(&f.InFlight, "ws-inflight-bytes", f.InFlight, "most `bytes` written to a WebSocket client and not yet read by it (its answers to probe pings tell); the window adapts below it to what the client reads in max_lag/8")
	fs.IntVar(&f.InFlightConflate, "ws-inflight-conflate-bytes", f.InFlightConflate, "the same bound for a client with a conflating subscription: smaller, so conflation happens before bytes reach the kernel")
	fs.DurationVar(&f.Heartbeat, "ws-heartbeat", f.Heartbeat, "how often each WebSocket client gets a ping and a heartbeat message (0: never)")
	fs.Int64Var(&b.ReadLimit, "ws-read-limit", b.ReadLimit, "largest client frame in `bytes`; a larger one closes the connection with 1009")
	fs.IntVar(&b.MaxSubs, "ws-max-subscriptions", b.MaxSubs, "most topics plus prefixes per WebSocket connection")
	fs.Float64Var(&b.SubscribeRate, "ws-subscribe-rate", b.SubscribeRate, "subscribe/unsubscribe requests a second per connection, sustained (burst: --ws-subscribe-burst)")
	fs.IntVar(&b.SubscribeBurst, "ws-subscribe-burst", b.SubscribeBurst, "subscribe/unsubscribe requests per connection in a burst")
	fs.IntVar(&b.AbuseLimit, "ws-abuse-limit", b.AbuseLimit, "bad requests in a burst (one forgiven a second) before a connection is closed with 1008")
	list("ws-origin", nil, "browser `origin` allowed to open /ws (repeatable; * for any); default: the page's own origin only")
	fs.DurationVar(&b.HandshakeTimeout, "ws-handshake-timeout", b.HandshakeTimeout, "bound on reading a request's headers and on the WebSocket handshake")
	fs.DurationVar(&b.PongWait, "ws-pong-wait", b.PongWait, "a WebSocket client silent this long (no message, no pong) is dropped; keep it above --ws-heartbeat")
	fs.DurationVar(&b.CloseGrace, "ws-close-grace", b.CloseGrace, "after the gateway's close frame, how long a WebSocket connection waits for the client's close (reading at most 1 MiB) before it is dropped")
	fs.IntVar(&b.SendBuffer, "ws-send-buffer", b.SendBuffer, "socket send buffer per WebSocket client in `bytes` (0: the kernel's); small keeps a slow client's lag visible to --slow-max-lag")
	fs.StringVar(&o.jwtSecretFile, "ws-jwt-secret-file", "", "WebSocket clients must present a JWT signed HS256 with the secret in this `file` (at least 32 bytes); see docs/security.md")
	fs.StringVar(&o.jwtPublicKey, "ws-jwt-public-key", "", "WebSocket clients must present a JWT signed RS256/ES256 by the private half of this PEM public key `file`")
	fs.StringVar(&o.curveSecretFile, "curve-secret-key-file", "", "turn CURVE on for the ingress and egress sockets with the server secret key in this `file` (`gateway keygen` makes one); docs/security.md")
	fs.StringVar(&o.curveDir, "curve-clients-dir", "", "with CURVE: a `directory` of the public keys (one per file) of the publishers and subscribers allowed in")
	fs.StringVar(&o.haRole, "ha-role", "", "make this gateway one of a failover pair (docs/ha.md): primary or backup; empty: a single gateway")
	fs.StringVar(&o.haBind, "ha-bind", "tcp://*:5561", "with --ha-role: the `endpoint` this gateway publishes its pair state on")
	fs.StringVar(&o.haPeer, "ha-peer", "", "with --ha-role: the peer's --ha-bind `endpoint`")
	list("ha-mirror", nil, "with --ha-role: the peer's --stamped-bind `endpoint`, mirrored into the cache and history while this gateway is not active")
	fs.DurationVar(&o.haHeartbeat, "ha-heartbeat", proxy.DefaultHAHeartbeat, "with --ha-role: pair state published this often; the peer is dead after 2 missed")
	fs.StringVar(&o.cfg.HATermFile, "ha-term-file", "", "with --ha-role: keep the pair's term in this `file` (written before stamping under a new one); empty: a restart starts from term 0, and may reuse a (term, seq)")
	fs.IntVar(&b.MaxConns, "ws-max-conns", 0, "most WebSocket connections in all (0: no limit)")
	fs.IntVar(&b.MaxConnsPerIP, "ws-max-conns-per-ip", 0, "most WebSocket connections from one address (0: no limit)")
	fs.StringVar(&o.cfg.TLSCert, "tls-cert", "", "serve HTTP and WebSocket over TLS with this certificate `file` (PEM; with --tls-key)")
	fs.StringVar(&o.cfg.TLSKey, "tls-key", "", "the TLS private key `file` (PEM)")
	fs.BoolVar(&o.cfg.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on --http (for profiling under load; keep --http private)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: trace, debug, info, warn, error")
	fs.BoolVar(&o.logJSON, "log-json", false, "JSON logs even on a terminal (they are JSON whenever stderr is not one)")
	return fs, o
}

// logLevels are the --log-level values.
var logLevels = map[string]zerolog.Level{
	"trace": zerolog.TraceLevel, "debug": zerolog.DebugLevel, "info": zerolog.InfoLevel,
	"warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel,
}

// parse fills o from args, the environment and the config file, and
// validates the result (gateway.Config.Validate): every problem at once.
func parse(args []string, w io.Writer) (*options, error) {
	fs, o := newFlagSet(w)
	if err := config.Load(fs, args, os.LookupEnv, "config"); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (see --help)", strings.Join(fs.Args(), " "))
	}
	p := &o.cfg.Proxy
	p.IngressBind = o.lists["ingress-bind"].Values()
	p.IngressConnect = o.lists["ingress-connect"].Values()
	p.IngressFilter = o.lists["ingress-filter"].Values()
	p.EgressBind = o.lists["egress-bind"].Values()
	p.StampedBind = o.lists["stamped-bind"].Values()
	o.cfg.Bridge.AllowedOrigins = o.lists["ws-origin"].Values()
	if o.curveSecretFile != "" {
		var err error
		if p.CurveSecret, err = readKey(o.curveSecretFile, "secret"); err != nil {
			return nil, fmt.Errorf("--curve-secret-key-file: %w", err)
		}
		if o.curveDir == "" {
			return nil, errors.New("--curve-secret-key-file needs --curve-clients-dir: with no allowed keys nobody could connect")
		}
		if p.CurveClients, err = readClientKeys(o.curveDir); err != nil {
			return nil, fmt.Errorf("--curve-clients-dir: %w", err)
		}
	}
	if (o.cfg.TLSCert == "") != (o.cfg.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	switch {
	case o.jwtSecretFile != "" && o.jwtPublicKey != "":
		return nil, errors.New("give --ws-jwt-secret-file or --ws-jwt-public-key, not both")
	case o.jwtSecretFile != "":
		secret, err := os.ReadFile(o.jwtSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--ws-jwt-secret-file: %w", err)
		}
		if o.cfg.Bridge.Auth, err = bridge.NewHMACAuth(bytes.TrimSpace(secret)); err != nil {
			return nil, fmt.Errorf("--ws-jwt-secret-file: %w", err)
		}
	case o.jwtPublicKey != "":
		pemBytes, err := os.ReadFile(o.jwtPublicKey)
		if err != nil {
			return nil, fmt.Errorf("--ws-jwt-public-key: %w", err)
		}
		if o.cfg.Bridge.Auth, err = bridge.NewPublicKeyAuth(pemBytes); err != nil {
			return nil, fmt.Errorf("--ws-jwt-public-key: %w", err)
		}
	}
	for _, r := range o.lists["lvc-ttl"].Values() {
		prefix, d, ok := strings.Cut(r, "=")
		ttl, err := time.ParseDuration(d)
		if !ok || err != nil || ttl <= 0 {
			return nil, fmt.Errorf("--lvc-ttl %q: want prefix=duration, e.g. quotes.=5s", r)
		}
		o.cfg.Cache.TTL = append(o.cfg.Cache.TTL, lvc.TTLRule{Prefix: prefix, TTL: ttl})
	}
	for _, r := range o.lists["history"].Values() {
		h, err := parseHistoryRule(r)
		if err != nil {
			return nil, err
		}
		o.cfg.Cache.History = append(o.cfg.Cache.History, h)
	}
	switch o.haRole {
	case "":
		if o.haPeer != "" || len(o.lists["ha-mirror"].Values()) > 0 || o.cfg.HATermFile != "" {
			return nil, errors.New("--ha-peer, --ha-mirror and --ha-term-file need --ha-role primary or backup")
		}
	case "primary", "backup":
		role := ha.RolePrimary
		if o.haRole == "backup" {
			role = ha.RoleBackup
		}
		if o.haHeartbeat <= 0 {
			return nil, fmt.Errorf("--ha-heartbeat %v: want more than 0", o.haHeartbeat)
		}
		o.cfg.HA = &proxy.HA{Role: role, Bind: o.haBind, Peer: o.haPeer, Mirror: o.lists["ha-mirror"].Values(), Heartbeat: o.haHeartbeat}
		if o.haPeer == "" || len(o.cfg.HA.Mirror) == 0 {
			return nil, errors.New("--ha-role needs --ha-peer (the peer's --ha-bind) and --ha-mirror (the peer's --stamped-bind)")
		}
	default:
		return nil, fmt.Errorf("--ha-role %q: want primary or backup", o.haRole)
	}
	var errs []error
	level, ok := logLevels[strings.ToLower(o.logLevel)]
	if !ok {
		errs = append(errs, fmt.Errorf("log level %q: want trace, debug, info, warn or error", o.logLevel))
	}
	o.level = level
	if err := o.cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bad configuration (see --help):\n%w", err)
	}
	return o, nil
}

// parseHistoryRule reads --history's prefix=count[,bytes[,age]].
func parseHistoryRule(s string) (lvc.HistoryRule, error) {
	bad := func(why string) (lvc.HistoryRule, error) {
		return lvc.HistoryRule{}, fmt.Errorf("--history %q: %s; want prefix=count[,bytes[,age]], e.g. trades.=10000,4194304,1h", s, why)
	}
	prefix, spec, ok := strings.Cut(s, "=")
	if !ok {
		return bad("no =")
	}
	parts := strings.Split(spec, ",")
	if len(parts) > 3 {
		return bad("more than three values")
	}
	r := lvc.HistoryRule{Prefix: prefix, MaxBytes: lvc.DefaultHistoryBytes}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 0 {
		return bad("count is not a whole number of 0 or more")
	}
	r.MaxCount = n
	if len(parts) > 1 {
		if r.MaxBytes, err = strconv.ParseInt(parts[1], 10, 64); err != nil || r.MaxBytes < 1 {
			return bad("bytes is not a whole number of 1 or more")
		}
	}
	if len(parts) > 2 {
		if r.MaxAge, err = time.ParseDuration(parts[2]); err != nil || r.MaxAge <= 0 {
			return bad("age is not a duration of more than 0")
		}
	}
	return r, nil
}
