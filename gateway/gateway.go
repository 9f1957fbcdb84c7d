package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/bridge"
	"github.com/mdgate/mdgate/ha"
	"github.com/mdgate/mdgate/internal/demofeed"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/proxy"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/web"
)

// DemoEndpoint is where the built-in demo feed publishes; the ingress binds
// it when the demo runs.
const DemoEndpoint = "inproc://mdgate-demo"

// Config is the whole gateway's configuration.
type Config struct {
	Proxy           proxy.Config
	HTTP            string        // listen address for /healthz, /metrics
	HTTPIdleTimeout time.Duration // close a keep-alive connection idle this long (0: the read timeout); httplimit.go
	HTTPReadTimeout time.Duration // bound on reading a whole request (0: none)
	HTTPMaxConns    int           // open HTTP connections, WebSocket included; more are closed at once (0: no limit)
	Demo            bool
	DemoRate        int // messages a second
	DemoInstruments int
	ShutdownTimeout time.Duration

	LVC            bool // the last-value cache; off: no replay, no snapshots
	Cache          lvc.Config
	CacheFile      string        // persist the cache here; "" off
	CacheSaveEvery time.Duration // how often the file is rewritten
	SnapshotBind   string        // ROUTER for snapshot requests; "" off
	Snapshot       snapshot.Config

	Pprof           bool            // serve /debug/pprof/ on the HTTP address
	TLSCert, TLSKey string          // serve HTTP and WebSocket over TLS with this certificate and key
	Fanout          blackbox.Config // the fan-out engine and per-client limits
	Bridge          bridge.Config   // WebSocket clients

	// HA makes this gateway one of a failover pair (docs/ha.md); nil: not.
	// HA.Term and HA.SaveTerm come from HATermFile when it is set.
	HA         *proxy.HA
	HATermFile string
}

// DefaultConfig returns the defaults documented in --help.
func DefaultConfig() Config {
	return Config{
		Proxy:           proxy.DefaultConfig(),
		HTTP:            ":8080",
		HTTPIdleTimeout: DefaultHTTPIdleTimeout,
		HTTPReadTimeout: DefaultHTTPReadTimeout,
		HTTPMaxConns:    DefaultHTTPMaxConns,
		DemoRate:        2000,
		DemoInstruments: 300,
		ShutdownTimeout: 5 * time.Second,
		LVC:             true,
		Cache:           lvc.DefaultConfig(),
		CacheSaveEvery:  5 * time.Second,
		SnapshotBind:    "tcp://*:5558",
		Snapshot:        snapshot.DefaultConfig(),
		Fanout:          blackbox.DefaultConfig(),
		Bridge:          bridge.DefaultConfig(),
	}
}

// Gateway is a configured, not yet running gateway.
type Gateway struct {
	cfg   Config
	log   zerolog.Logger
	reg   *prometheus.Registry
	proxy *proxy.Proxy
	cache *lvc.Cache       // nil when the cache is off
	snap  *snapshot.Server // nil when off
	fan   *blackbox.Engine
	ws    *bridge.Bridge

	httpReady chan struct{}
	mu        sync.Mutex
	httpAddr  string // guarded by mu
}

// New validates cfg (Config.Validate: every problem at once) and builds
// every stage; nothing listens until Run.
func New(cfg Config, log zerolog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Demo {
		cfg.Proxy.IngressBind = append(cfg.Proxy.IngressBind, DemoEndpoint)
	}
	var g *Gateway
	opts := proxy.Options{Registerer: reg, Logger: log.With().Str("stage", "proxy").Logger()}
	var cache *lvc.Cache
	if cfg.LVC {
		cache = lvc.New(cfg.Cache, reg)
		opts.Cache = cache
	}
	var p *proxy.Proxy
	if cfg.Fanout.Alive == nil {
		// Heartbeats only while the stamping loop goes round: clients of a
		// hung gateway see silence and move on. p is set before anything runs.
		cfg.Fanout.Alive = func() bool { return p.Alive() }
	}
	fan, err := blackbox.New(cfg.Fanout, []blackbox.Encoder{bridge.EncodeUpdate}, reg, log.With().Str("stage", "fanout").Logger())
	if err != nil {
		return nil, err
	}
	opts.Sinks = append(opts.Sinks, fan)
	if cfg.HA != nil {
		h := *cfg.HA
		if cfg.HATermFile != "" {
			term, err := ha.LoadTerm(cfg.HATermFile)
			if err != nil {
				return nil, err
			}
			path := cfg.HATermFile
			h.Term, h.SaveTerm = term, func(t uint64) error { return ha.SaveTerm(path, t) }
		}
		h.OnStandby = func() { g.ws.CloseStandby() } // g is set before the proxy runs
		opts.HA = &h
	}
	p, err = proxy.New(cfg.Proxy, opts)
	if err != nil {
		return nil, err
	}
	if cfg.HA != nil {
		cfg.Bridge.Vote = p.Vote // a standby refuses WebSocket clients; one asking it while its peer is dead is the vote
	}
	var snapCache bridge.Cache
	if cache != nil {
		snapCache = cache
	}
	ws, err := bridge.New(cfg.Bridge, fan, snapCache, reg, log.With().Str("stage", "bridge").Logger())
	if err != nil {
		return nil, err
	}
	g = &Gateway{cfg: cfg, log: log, reg: reg, proxy: p, cache: cache, fan: fan, ws: ws, httpReady: make(chan struct{})}
	if cache != nil && cfg.SnapshotBind != "" {
		if g.snap, err = snapshot.NewServer(cfg.SnapshotBind, cache, p.Epoch(), cfg.Snapshot, reg, log.With().Str("stage", "snapshot").Logger()); err != nil {
			return nil, err
		}
		g.snap.Epoch = p.Epoch
		if cfg.HA != nil {
			g.snap.Vote = p.Vote
		}
	}
	return g, nil
}

// Cache returns the last-value cache, nil when it is off.
func (g *Gateway) Cache() *lvc.Cache { return g.cache }

// SnapshotEndpoint is the bound snapshot ROUTER ("" when off); valid once
// Ready is closed.
func (g *Gateway) SnapshotEndpoint() string {
	if g.snap == nil {
		return ""
	}
	return g.snap.Bound()
}

// Fanout returns the fan-out engine.
func (g *Gateway) Fanout() *blackbox.Engine { return g.fan }

// Proxy returns the core loop (for its endpoints and epoch).
func (g *Gateway) Proxy() *proxy.Proxy { return g.proxy }

// Registry is the gateway's metrics registry.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Ready is closed once the proxy's sockets are bound and HTTP listens.
func (g *Gateway) Ready() <-chan struct{} { return g.httpReady }

// HTTPAddr is the address HTTP listens on; valid once Ready is closed.
func (g *Gateway) HTTPAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.httpAddr
}

// Run runs every stage until ctx is done or one fails. On cancellation it
// shuts down within the configured bound and returns nil.
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", g.cfg.HTTP, err)
	}
	if g.cache != nil && g.cfg.CacheFile != "" {
		if err := g.cache.LoadOrQuarantine(g.cfg.CacheFile, g.log.With().Str("stage", "lvc").Logger(), time.Now()); err != nil {
			ln.Close()
			return fmt.Errorf("lvc file: %w", err)
		}
	}
	grp, ctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return g.proxy.Run(ctx) })
	grp.Go(func() error { return g.fan.Run(ctx) })
	if g.snap != nil {
		grp.Go(func() error { return g.snap.Run(ctx) })
	}
	if g.cache != nil && g.cfg.CacheFile != "" {
		grp.Go(func() error {
			return g.cache.Persist(ctx, g.cfg.CacheFile, g.cfg.CacheSaveEvery, g.cfg.ShutdownTimeout, g.log.With().Str("stage", "lvc").Logger())
		})
	}
	hs := g.cfg.Bridge.HandshakeTimeout
	if hs <= 0 {
		hs = bridge.DefaultConfig().HandshakeTimeout
	}
	lim := newLimitListener(ln, g.cfg.HTTPMaxConns, g.reg, g.log.With().Str("stage", "http").Logger())
	ln = lim
	srv := &http.Server{Handler: g.mux(), ReadHeaderTimeout: hs, // a slow handshake times out
		ReadTimeout: g.cfg.HTTPReadTimeout, IdleTimeout: g.cfg.HTTPIdleTimeout}
	lim.instrument(srv) // counts header timeouts: mdgate_http_refused_total{reason="header_timeout"}
	grp.Go(func() error {
		serve := func() error { return srv.Serve(ln) }
		if g.cfg.TLSCert != "" {
			serve = func() error { return srv.ServeTLS(ln, g.cfg.TLSCert, g.cfg.TLSKey) }
		}
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	grp.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
		defer cancel()
		// WebSocket connections are hijacked: srv.Shutdown does not see
		// them. Both share the one bound.
		if err := g.ws.Shutdown(sctx); err != nil {
			g.log.Warn().Err(err).Msg("WebSocket clients dropped at the shutdown bound")
		}
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		return nil
	})
	grp.Go(func() error {
		for _, ready := range g.readiness() {
			select {
			case <-ready:
			case <-ctx.Done():
				return nil
			}
		}
		g.mu.Lock()
		g.httpAddr = ln.Addr().String()
		g.mu.Unlock()
		close(g.httpReady)
		ep, snap := g.proxy.Endpoints(), g.SnapshotEndpoint()
		g.log.Info().Str("http", ln.Addr().String()).Strs("egress", ep.Egress).Strs("stamped", ep.Stamped).
			Str("snapshot", snap).Msg(banner(ln.Addr().String(), g.cfg.TLSCert != "", ep, snap))
		if g.cfg.Demo {
			g.log.Info().Int("rate", g.cfg.DemoRate).Int("instruments", g.cfg.DemoInstruments).Msg("demo feed on")
			return demofeed.Publish(ctx, DemoEndpoint, g.cfg.DemoRate, g.cfg.DemoInstruments)
		}
		return nil
	})
	return grp.Wait()
}

func (g *Gateway) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))
	mux.HandleFunc("GET /healthz", g.healthz)
	mux.Handle("GET /ws", g.ws)
	mux.Handle("GET /api/ops", g.opsHandler()) // the operations view's data; ops.go
	mux.HandleFunc("GET /api/history", g.history)
	mux.HandleFunc("GET /ops", serveOpsPage)
	mux.Handle("GET /", web.Handler())
	if g.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func (g *Gateway) healthz(w http.ResponseWriter, _ *http.Request) {
	h := g.proxy.Health()
	status := "ok"
	code := http.StatusOK
	switch {
	case !h.Running:
		status, code = "down", http.StatusServiceUnavailable
	case len(h.AcceptExhausted) > 0:
		status = "degraded" // a listener sheds new connections for lack of descriptors; the rest serves: still 200
	}
	var file *lvc.FileStatus // --lvc-file: saves, the last error, a corrupt file moved aside
	if g.cache != nil && g.cfg.CacheFile != "" {
		fs := g.cache.FileStatus()
		fs.Path = g.cfg.CacheFile
		file = &fs
		if fs.Failing && status == "ok" {
			status = "degraded" // the last save failed: the file on disk is getting old; still 200
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(struct {
		Status  string          `json:"status"`
		Proxy   proxy.Health    `json:"proxy"`
		LVCFile *lvc.FileStatus `json:"lvc_file,omitempty"`
	}{status, h, file})
}

// history answers GET /api/history?topic=T: the recovery window of one
// topic (its retained updates, the oldest's seq, epoch and ingress time),
// the per-topic figure /metrics cannot carry (its labels are a fixed set;
// there, mdgate_history_window_seconds is per --history rule). 404 when no
// rule keeps the topic's history or it has no value.
func (g *Gateway) history(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" || len(topic) > g.cfg.Proxy.MaxTopicBytes {
		http.Error(w, "want ?topic= with a topic of 1 to --max-topic-bytes bytes", http.StatusBadRequest)
		return
	}
	var th lvc.TopicHistory
	ok := false
	if g.cache != nil {
		th, ok = g.cache.History(topic)
	}
	if !ok {
		http.Error(w, "no history kept for this topic", http.StatusNotFound)
		return
	}
	window := 0.0
	if th.Updates > 0 {
		window = time.Since(time.Unix(0, th.OldestIngressUnix)).Seconds()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Topic string `json:"topic"`
		lvc.TopicHistory
		WindowSeconds float64 `json:"window_seconds"` // now minus the oldest retained update's ingress time
	}{topic, th, window})
}

func (g *Gateway) readiness() []<-chan struct{} {
	r := []<-chan struct{}{g.proxy.Ready()}
	if g.snap != nil {
		r = append(r, g.snap.Ready())
	}
	return r
}
