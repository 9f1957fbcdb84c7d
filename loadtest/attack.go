package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/internal/attackpeer"
	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/snapshot"
)

// The attacks scenario: each attack of the "isolation" issue against its own
// gateway process, with the good workload (attackload.go) measured before,
// during and after it. The reproductions follow the regression tests named
// in each attack's what.

// attack is one reproduction. start begins it and returns the function
// that ends it (called at the end of the during window); check, when set,
// runs at the end of the during window while the attack still runs.
type attack struct {
	name, what string
	args       []string // gateway flags beyond the common ones
	prlimit    bool     // run the gateway under prlimit --nofile=256:256
	snapshot   bool     // bind the snapshot ROUTER
	zmqPrefix  string   // the good ZeroMQ subscriber's prefix (default md.good.)
	during     time.Duration
	noAfter    bool // the attack ends the gateway (finish)
	prepare    func(e *attackEnv) error
	start      func(e *attackEnv) (stop func(), err error)
	check      func(e *attackEnv)
	finish     func(e *attackEnv)
	metrics    []metricRef
}

// metricRef names one of an attack's own metrics; a counter is reported as
// its growth from the attack's start to the end, a gauge as its values.
type metricRef struct {
	Label  string
	Name   string
	Labels []string
	Gauge  bool
}

// attackEnv is what an attack's functions work with.
type attackEnv struct {
	o                 options
	g                 *gateway
	stamped, snapshot string
	res               *attackResult
}

func (e *attackEnv) note(format string, a ...any) {
	e.res.Notes = append(e.res.Notes, fmt.Sprintf(format, a...))
}

func (e *attackEnv) bound(ok bool, format string, a ...any) {
	e.res.Bounds = append(e.res.Bounds, bound{What: fmt.Sprintf(format, a...), OK: ok})
}

func (e *attackEnv) scrape() promscrape.Families {
	f, err := promscrape.Scrape(e.g.ctx, "http://"+e.g.http+"/metrics")
	if err != nil {
		return promscrape.Families{}
	}
	return f
}

func (e *attackEnv) metric(name string, labels ...string) float64 {
	v, _ := e.scrape().Value(name, labels...)
	return v
}

// waitMetric waits up to d for name to reach at least want.
func (e *attackEnv) waitMetric(d time.Duration, want float64, name string, labels ...string) error {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		v := e.metric(name, labels...)
		if v >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s = %v after %v, want %v", name, v, d, want)
		}
	}
}

// fill caches n topics (format with the index) of payload through the
// ingress and waits until the cache holds at least want topics.
func (e *attackEnv) fill(format string, n int, payload []byte) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		pub, err := openFeed(e.g.ingress)
		if err != nil {
			errc <- err
			return
		}
		defer pub.Close()
		for i := range n {
			if _, err := pub.SendMessage(fmt.Sprintf(format, i), payload); err != nil {
				errc <- err
				return
			}
		}
		// Keep the socket open (closing drops what is queued) until cached.
		errc <- e.waitMetric(60*time.Second, float64(n), "mdgate_lvc_topics")
	}()
	return <-errc
}

// attackResult is one attack's record.
type attackResult struct {
	Name        string             `json:"name"`
	What        string             `json:"what"`
	Args        []string           `json:"gateway_args,omitempty"`
	Skipped     string             `json:"skipped,omitempty"`
	Error       string             `json:"error,omitempty"`
	Good        goodResult         `json:"good"`
	LoopLongest [numPhases]float64 `json:"loop_longest_ms"`          // since start, read at the end of each phase
	LoopBucket  [numPhases]float64 `json:"loop_bucket_ms"`           // upper bound of the slowest histogram bucket hit in each phase
	RSSMB       [numPhases]float64 `json:"gateway_rss_mb"`           // end of before, peak during, end of after
	Cores       [numPhases]float64 `json:"gateway_cores"`            // gateway CPU over each phase
	Metrics     []metricValue      `json:"metrics"`                  // the attack's own
	Bounds      []bound            `json:"bounds"`                   // what must hold
	Notes       []string           `json:"notes,omitempty"`          // the attack's own figures
	Seconds     float64            `json:"seconds"`                  // wall time of the attack's run
	Windows     [numPhases]float64 `json:"window_s"`                 // each phase's length
	Rate        int                `json:"good_msgs_per_s"`          // the good publisher's rate
	Started     string             `json:"started"`                  //
	Procs       int                `json:"cpus"`                     //
	Goroutines  [numPhases]float64 `json:"gateway_goroutines"`       //
	Heap        [numPhases]float64 `json:"gateway_heap_inuse_mb"`    //
	Conns       [numPhases]float64 `json:"gateway_http_conns"`       //
	Subs        [numPhases]float64 `json:"gateway_zmq_stamped_subs"` //
}

type metricValue struct {
	Label  string             `json:"label"`
	Gauge  bool               `json:"gauge,omitempty"`
	Values [numPhases]float64 `json:"values"` // at the end of each phase
	Start  float64            `json:"at_attack_start"`
}

type bound struct {
	What string `json:"what"`
	OK   bool   `json:"ok"`
}

// attacksScenario runs every attack (or those named in -attacks) and writes
// the table, -json and -md.
func attacksScenario(o options) error {
	if o.attachHTTP != "" {
		return errors.New("-scenario attacks starts its own gateways: -http is not supported")
	}
	window := 3 * time.Second
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "window" {
			window = o.window
		}
	})
	o.window = window
	var results []attackResult
	for _, a := range attackList() {
		if o.attacks != "" && !slices.Contains(strings.Split(o.attacks, ","), a.name) {
			continue
		}
		fmt.Printf("attack %s: %s\n", a.name, a.what)
		r := runAttack(o, a)
		printAttack(r)
		results = append(results, r)
	}
	fmt.Println()
	fmt.Print(attacksTable(results))
	if err := writeReport(o, results, attackBeginMark, attackEndMark, "Isolation under attack (latest run)",
		func() string { return attacksMarkdown(results, o) }); err != nil {
		return err
	}
	var failed []string
	for _, r := range results {
		if r.Error != "" || !r.held() {
			failed = append(failed, r.Name)
		}
	}
	if len(failed) > 0 {
		fmt.Printf("attacks where a bound failed or a good client lost messages: %s\n", strings.Join(failed, ", "))
	}
	return nil
}

func runAttack(o options, a attack) (r attackResult) {
	t0 := time.Now()
	r = attackResult{Name: a.name, What: a.what, Args: a.args, Rate: o.attackRate, Started: t0.UTC().Format(time.RFC3339), Procs: runtime.NumCPU()}
	defer func() { r.Seconds = time.Since(t0).Seconds() }()
	var wrap []string
	if a.prlimit {
		p, err := exec.LookPath("prlimit")
		if err != nil {
			r.Skipped = "prlimit (util-linux) not found"
			return r
		}
		wrap = []string{p, "--nofile=256:256"}
	}
	fail := func(err error) attackResult {
		r.Error = err.Error()
		fmt.Printf("  error: %v\n", err)
		return r
	}
	g, stamped, snap, err := startAttackGateway(o, a, wrap)
	if err != nil {
		return fail(err)
	}
	defer g.stop()
	e := &attackEnv{o: o, g: g, stamped: stamped, snapshot: snap, res: &r}
	if a.prepare != nil {
		if err := a.prepare(e); err != nil {
			return fail(fmt.Errorf("prepare: %w", err))
		}
	}
	prefix := a.zmqPrefix
	if prefix == "" {
		prefix = "md.good."
	}
	load, err := startGoodLoad(g, stamped, prefix, o.attackRate)
	if err != nil {
		return fail(err)
	}
	done := false
	defer func() {
		if !done {
			load.finish()
		}
	}()

	// One phase: sample RSS every 250 ms for d (peak kept) and read the
	// gateway's figures at its end.
	var last promscrape.Families
	// check runs at the end of the window, before the figures are read; stop
	// after they are.
	phase := func(p int, d time.Duration, check, stop func()) {
		cpu0, _ := g.procStats()
		start := time.Now()
		var peak int64
		for time.Since(start) < d {
			time.Sleep(min(250*time.Millisecond, d-time.Since(start)))
			_, rss := g.procStats()
			peak = max(peak, rss)
			fmt.Printf("\r  %-6s %4.1fs of %v ", phaseNames[p], time.Since(start).Seconds(), d)
		}
		if check != nil {
			check()
		}
		cpu1, rss := g.procStats()
		if p == 1 {
			rss = max(rss, peak)
		}
		f := e.scrape()
		r.RSSMB[p] = float64(rss) / (1 << 20)
		r.Cores[p] = (cpu1 - cpu0).Seconds() / time.Since(start).Seconds()
		r.Windows[p] = time.Since(start).Seconds()
		v := func(name string, labels ...string) float64 { x, _ := f.Value(name, labels...); return x }
		r.LoopLongest[p] = v("mdgate_proxy_loop_longest_seconds") * 1e3
		r.LoopBucket[p] = slowestBucket(last, f, "mdgate_proxy_loop_seconds") * 1e3
		r.Goroutines[p] = v("go_goroutines")
		r.Heap[p] = v("go_memstats_heap_inuse_bytes") / (1 << 20)
		r.Conns[p] = v("mdgate_http_connections")
		r.Subs[p] = v("mdgate_zmq_subscriptions", "egress", "stamped")
		for i, m := range a.metrics {
			r.Metrics[i].Values[p] = v(m.Name, m.Labels...)
		}
		last = f
		if stop != nil {
			stop()
		}
	}
	r.Metrics = make([]metricValue, len(a.metrics))
	for i, m := range a.metrics {
		r.Metrics[i].Label, r.Metrics[i].Gauge = m.Label, m.Gauge
	}
	last = e.scrape()
	load.setPhase(0)
	phase(0, o.window, nil, nil)
	for i, m := range a.metrics {
		r.Metrics[i].Start, _ = last.Value(m.Name, m.Labels...)
	}
	load.setPhase(1)
	stop, err := a.start(e)
	if err != nil {
		return fail(fmt.Errorf("start: %w", err))
	}
	d := o.window
	if a.during > d {
		d = a.during
	}
	var check func()
	if a.check != nil {
		check = func() { a.check(e) }
	}
	phase(1, d, check, stop)
	if !a.noAfter {
		load.setPhase(2)
		phase(2, o.window, nil, nil)
	}
	fmt.Print("\r")
	good, err := load.finish()
	done = true
	r.Good = good
	if err != nil {
		e.note("good publisher: %v", err)
	}
	if a.finish != nil {
		a.finish(e)
	}
	e.bound(r.Good.lost() == 0 && r.Good.WSCut == "", "good clients lost nothing (WebSocket %d, ZeroMQ %d of %d sent)%s",
		sum(r.Good.WS, func(c clientPhase) int64 { return c.Lost }), sum(r.Good.ZMQ, func(c clientPhase) int64 { return c.Lost }), r.Good.Sent, cutNote(r.Good.WSCut))
	return r
}

func cutNote(s string) string {
	if s == "" {
		return ""
	}
	return "; WebSocket client cut off: " + s
}

// startAttackGateway starts a gateway on fresh loopback ports with the
// defaults except a.args; the stamped egress (and the snapshot ROUTER when
// asked) on known ports.
func startAttackGateway(o options, a attack, wrap []string) (g *gateway, stamped, snap string, err error) {
	bin, err := filepath.Abs(o.gatewayBin)
	if err != nil {
		return nil, "", "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, "", "", fmt.Errorf("no gateway binary at %s: run `make build` first (%w)", bin, err)
	}
	var ports [5]string
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, "", "", err
		}
	}
	stamped = "tcp://" + ports[3]
	if a.snapshot {
		snap = "tcp://" + ports[4]
	}
	args := append([]string{"--http", ports[0], "--ingress-bind", "tcp://" + ports[1], "--egress-bind", "tcp://" + ports[2],
		"--stamped-bind", stamped, "--snapshot-bind", snap, "--log-level", "warn", "--log-json"}, a.args...)
	g, err = launchGateway(o, bin, args, wrap, ports[0], "tcp://"+ports[1], "tcp://"+ports[2])
	return g, stamped, snap, err
}

// attackList is the eight attacks, in its order.
func attackList() []attack {
	return []attack{
		{
			name: "replay", what: "an XSUB peer re-sends a subscribe to md. 50 times over 3,000 cached md.* topics (proxy TestIsolationSubscribeReplayAmplification)",
			zmqPrefix: "md.", // the good subscriber is in the replay's blast radius
			prepare:   func(e *attackEnv) error { return e.fill("md.cached.%05d", 3000, []byte(strings.Repeat("x", 200))) },
			start:     func(e *attackEnv) (func(), error) { return pyXSub(e.stamped, 50, "md.") },
			metrics: []metricRef{
				{Label: "replay requests queued", Name: "mdgate_zmq_replay_requests_total", Labels: []string{"egress", "stamped", "outcome", "queued"}},
				{Label: "coalesced", Name: "mdgate_zmq_replay_requests_total", Labels: []string{"egress", "stamped", "outcome", "coalesced"}},
				{Label: "values replayed", Name: "mdgate_lvc_replayed_total"},
			},
			finish: func(e *attackEnv) {
				m := e.res.Metrics
				e.bound(delta(m[1], 1) >= 49, "the 50 subscribes coalesce (at least 49 coalesced: %.0f)", delta(m[1], 1))
				e.bound(delta(m[2], 1) <= 2*3010, "at most two replays of the cache's md.* topics (%.0f values, bound %d)", delta(m[2], 1), 2*3010)
			},
		},
		{
			name: "nomatch", what: "5,000 distinct ZeroMQ subscribes matching nothing against 100,000 cached topics (proxy TestIsolationSubscribeCost)",
			prepare: func(e *attackEnv) error { return e.fill("md.cached.%06d", 100_000, []byte("v")) },
			start:   func(e *attackEnv) (func(), error) { return pyXSub(e.stamped, 5000, "zz.nomatch.%05d") },
			metrics: []metricRef{
				{Label: "subscribes read", Name: "mdgate_zmq_subscription_events_total", Labels: []string{"egress", "stamped", "op", "subscribe"}},
				{Label: "values replayed", Name: "mdgate_lvc_replayed_total"},
				{Label: "refused (subscription limit)", Name: "mdgate_zmq_replay_requests_total", Labels: []string{"egress", "stamped", "outcome", "refused_subscription_limit"}},
			},
			finish: func(e *attackEnv) {
				m := e.res.Metrics
				e.bound(delta(m[0], 1) >= 5000, "every subscribe handled within the window (%.0f)", delta(m[0], 1))
				e.bound(delta(m[1], 1) == 0, "nothing replayed for prefixes matching nothing (%.0f)", delta(m[1], 1))
			},
		},
		snapshotAttack(),
		fdAttack(),
		bigStalledSubAttack(),
		wsHugeSubscribeAttack(),
		wsShutdownAttack(),
		idleHTTPAttack(),
	}
}

// delta is a counter's growth from the attack's start to the end of phase p.
func delta(m metricValue, p int) float64 { return m.Values[p] - m.Start }

// pyXSub runs a python3-zmq XSUB that sends n subscribe frames (prefix
// formatted with the index when it holds a %) and stays connected until the
// returned stop (which kills it when it has not left within 5s).
func pyXSub(endpoint string, n int, prefix string) (func(), error) {
	x, err := attackpeer.StartXSub(endpoint, n, prefix, 30*time.Second)
	if err != nil {
		return nil, err
	}
	return sync.OnceFunc(func() {
		if x.Leave(5*time.Second) != nil {
			x.Kill()
		}
	}), nil
}

// snapshotAttack: 20 DEALERs x 20 requests for "" that never read, beside a
// good DEALER fetching the 20,000-topic snapshot again and again.
func snapshotAttack() attack {
	const topics = 20_000
	var fetches []time.Duration
	var fetchErrs atomic.Int64
	var fetchMu sync.Mutex
	fetch := func(e *attackEnv) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		t := time.Now()
		res, err := snapshot.Fetch(ctx, e.snapshot, "md.snap.")
		if err == nil && len(res.Values) != topics {
			err = fmt.Errorf("%d values, want %d", len(res.Values), topics)
		}
		return time.Since(t), err
	}
	return attack{
		name: "snapshot", what: "20 snapshot DEALERs x 20 requests for \"\" that never read, beside a good DEALER fetching 20,000 topics (snapshot TestSnapshotAttack)",
		snapshot: true, during: 7 * time.Second, // past --snapshot-stall-timeout (5s)
		prepare: func(e *attackEnv) error {
			if err := e.fill("md.snap.%05d", topics, []byte(strings.Repeat("x", 200))); err != nil {
				return err
			}
			d, err := fetch(e)
			if err != nil {
				return fmt.Errorf("good fetch before the attack: %w", err)
			}
			e.note("good snapshot fetch of %d topics before the attack: %v", topics, d.Round(time.Millisecond))
			return nil
		},
		start: func(e *attackEnv) (func(), error) {
			stopc := make(chan struct{})
			var wg sync.WaitGroup
			sent := make(chan error, 1)
			wg.Add(2)
			go func() { // owns the attackers' sockets
				defer wg.Done()
				attackpeer.SnapshotFlood(e.snapshot, 20, 20, 4096, sent, stopc)
			}()
			go func() { // the good fetcher
				defer wg.Done()
				for {
					select {
					case <-stopc:
						return
					default:
					}
					d, err := fetch(e)
					fetchMu.Lock()
					if err != nil {
						fetchErrs.Add(1)
					} else {
						fetches = append(fetches, d)
					}
					fetchMu.Unlock()
				}
			}()
			if err := <-sent; err != nil {
				close(stopc)
				wg.Wait()
				return nil, err
			}
			return func() { close(stopc); wg.Wait() }, nil
		},
		metrics: []metricRef{
			{Label: "requests ok", Name: "mdgate_snapshot_requests_total", Labels: []string{"result", "ok"}},
			{Label: "busy", Name: "mdgate_snapshot_requests_total", Labels: []string{"result", "busy"}},
			{Label: "stalled", Name: "mdgate_snapshot_requests_total", Labels: []string{"result", "stalled"}},
			{Label: "evicted", Name: "mdgate_snapshot_requests_total", Labels: []string{"result", "evicted"}},
			{Label: "active requests", Name: "mdgate_snapshot_active_requests", Gauge: true},
		},
		finish: func(e *attackEnv) {
			fetchMu.Lock()
			defer fetchMu.Unlock()
			slices.Sort(fetches)
			n := len(fetches)
			if n > 0 {
				e.note("good snapshot fetches of %d topics during the attack: %d, p50 %v, max %v, failed %d",
					topics, n, fetches[n/2].Round(time.Millisecond), fetches[n-1].Round(time.Millisecond), fetchErrs.Load())
			}
			m := e.res.Metrics
			e.bound(n > 0 && fetchErrs.Load() == 0, "every good snapshot fetch during the attack complete (%d ok, %d failed)", n, fetchErrs.Load())
			e.bound(delta(m[2], 1) >= 20, "every attacker stalled and dropped within the window (stalled %.0f, want >= 20)", delta(m[2], 1))
			e.bound(m[4].Values[2] == 0, "no request in progress after the attackers left (%.0f)", m[4].Values[2])
			grow := e.res.RSSMB[1] - e.res.RSSMB[0]
			e.bound(grow <= 100, "gateway RSS growth bounded (%+.0f MB, bound 100 MB; unbounded it was +780 MiB)", grow)
		},
	}
}

// fdAttack: the gateway at a 256-descriptor limit, 300 idle TCP connections
// to its ingress, re-dialed when dropped (cmd/gateway
// TestAcceptFloodAtDescriptorLimit).
func fdAttack() attack {
	var ok, failed, degraded atomic.Int64
	var dials, refused atomic.Int64
	var cpu0 time.Duration
	var t0 time.Time
	return attack{
		name: "descriptors", what: "gateway under prlimit --nofile=256:256, 300 idle TCP connections to the ingress re-dialed when dropped (cmd/gateway TestAcceptFloodAtDescriptorLimit)",
		prlimit: true,
		start: func(e *attackEnv) (func(), error) {
			stopc := make(chan struct{})
			var wg sync.WaitGroup
			host := strings.TrimPrefix(e.g.ingress, "tcp://")
			for range 300 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pace := time.NewTicker(100 * time.Millisecond) // the attacker's pace
					defer pace.Stop()
					for {
						c, err := net.DialTimeout("tcp", host, 2*time.Second)
						dials.Add(1)
						if err != nil {
							refused.Add(1)
						} else {
							held := make(chan struct{})
							go func() {
								select {
								case <-stopc:
								case <-held:
								}
								c.Close()
							}()
							io.Copy(io.Discard, c) // until the gateway drops us or stop closes c
							close(held)
						}
						select {
						case <-stopc:
							return
						case <-pace.C:
						}
					}
				}()
			}
			wg.Add(1)
			go func() { // the good /healthz prober
				defer wg.Done()
				cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				pace := time.NewTicker(50 * time.Millisecond)
				defer pace.Stop()
				for {
					resp, err := cl.Get("http://" + e.g.http + "/healthz")
					if err != nil {
						failed.Add(1)
					} else {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						ok.Add(1)
						if strings.Contains(string(b), `"degraded"`) {
							degraded.Add(1)
						}
					}
					select {
					case <-stopc:
						return
					case <-pace.C:
					}
				}
			}()
			cpu0, _ = e.g.procStats()
			t0 = time.Now()
			return func() { close(stopc); wg.Wait() }, nil
		},
		check: func(e *attackEnv) {
			cpu1, _ := e.g.procStats()
			cores := (cpu1 - cpu0).Seconds() / time.Since(t0).Seconds()
			e.note("attacker: %d dials, %d refused; /healthz answered %d, failed %d, said degraded %d times", dials.Load(), refused.Load(), ok.Load(), failed.Load(), degraded.Load())
			e.bound(failed.Load() == 0 && ok.Load() > 0, "/healthz answered throughout (%d ok, %d failed)", ok.Load(), failed.Load())
			e.bound(cores < 0.5, "gateway under half a core while the connections were held (%.2f cores)", cores)
		},
		metrics: []metricRef{
			{Label: "connections shed", Name: "mdgate_zmq_accept_shed_total", Labels: []string{"socket", "ingress"}},
			{Label: "ingress exhausted", Name: "mdgate_zmq_accept_exhausted", Labels: []string{"socket", "ingress"}, Gauge: true},
			{Label: "ingress peer disconnects", Name: "mdgate_zmq_peer_disconnects_total", Labels: []string{"socket", "ingress"}},
		},
		finish: func(e *attackEnv) {
			m := e.res.Metrics
			e.bound(delta(m[0], 1) >= 1, "the ingress listener shed connections (%.0f)", delta(m[0], 1))
			e.bound(m[1].Values[2] == 0, "the listener no longer exhausted after the connections went (%.0f)", m[1].Values[2])
		},
	}
}

// bigStalledSubAttack: a ZeroMQ SUB that never reads, 3,000 messages of
// 60 KiB, --egress-max-bytes 4 MiB as in proxy
// TestIsolationStalledSubscriberBoundedInBytes; a fast SUB of the same
// topic beside it.
func bigStalledSubAttack() attack {
	const msgs, size = 3000, 60 << 10
	var fast, held atomic.Int64
	var sentBulk atomic.Int64
	return attack{
		name: "bigsub", what: "a stalled ZeroMQ SUB (RCVHWM 1) and 3,000 messages of 60 KiB at 1,000/s, a fast SUB beside it, --egress-max-bytes 4 MiB (proxy TestIsolationStalledSubscriberBoundedInBytes)",
		args:   []string{"--egress-max-bytes", "4194304"},
		during: 4 * time.Second,
		start: func(e *attackEnv) (func(), error) {
			stopc, stalledGo := make(chan struct{}), make(chan struct{})
			var wg sync.WaitGroup
			ready := make(chan error, 2)
			sub := func(stalled bool) {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				hwm := 0
				if stalled {
					hwm = 1
				}
				s, err := attackpeer.SUB(e.g.egress, "bulk", hwm, 50*time.Millisecond)
				if err != nil {
					ready <- err
					return
				}
				defer s.Close()
				ready <- nil
				if stalled {
					select { // never reads until the attack ends
					case <-stalledGo:
					case <-stopc:
						return
					}
					s.SetRcvtimeo(time.Second)
					for n := 0; n < msgs; n++ {
						if _, err := s.RecvMessageBytes(0); err != nil {
							return
						}
						held.Add(1)
					}
					return
				}
				for fast.Load() < msgs {
					select {
					case <-stopc:
						return
					default:
					}
					if _, err := s.RecvMessageBytes(0); err == nil {
						fast.Add(1)
					}
				}
			}
			subs0 := e.metric("mdgate_zmq_subscription_events_total", "egress", "raw", "op", "subscribe")
			wg.Add(2)
			go sub(true)
			go sub(false)
			for range 2 {
				if err := <-ready; err != nil {
					close(stopc)
					wg.Wait()
					return nil, err
				}
			}
			if err := e.waitMetric(5*time.Second, subs0+2, "mdgate_zmq_subscription_events_total", "egress", "raw", "op", "subscribe"); err != nil {
				close(stopc)
				wg.Wait()
				return nil, err
			}
			wg.Add(1)
			go func() { // the bulk publisher, 1,000 a second
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				pub, err := openFeed(e.g.ingress)
				if err != nil {
					return
				}
				defer func() { <-stopc; pub.Close() }() // closing drops what is queued
				payload := make([]byte, size)
				start := time.Now()
				for i := range msgs {
					if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
						time.Sleep(d) // the bulk feed's pace
					}
					select {
					case <-stopc:
						return
					default:
					}
					if _, err := pub.SendMessage("bulk", payload); err != nil {
						return
					}
					sentBulk.Add(1)
				}
			}()
			return func() {
				// Let the fast subscriber finish (at most 5 s), then the
				// stalled one reads what the gateway held for it.
				for deadline := time.Now().Add(5 * time.Second); fast.Load() < sentBulk.Load() && time.Now().Before(deadline); {
					time.Sleep(20 * time.Millisecond)
				}
				close(stalledGo)
				time.Sleep(1500 * time.Millisecond) // the stalled reader's own 1 s timeout ends it
				close(stopc)
				wg.Wait()
			}, nil
		},
		metrics: []metricRef{
			{Label: "raw egress refusals", Name: "mdgate_zmq_egress_errors_total", Labels: []string{"egress", "raw"}},
			{Label: "stamped egress refusals", Name: "mdgate_zmq_egress_errors_total", Labels: []string{"egress", "stamped"}},
			{Label: "ingress dropped", Name: "mdgate_ingress_dropped_total"},
		},
		finish: func(e *attackEnv) {
			e.note("bulk sent %d of %d; fast subscriber got %d; the stalled subscriber read %d once it started reading", sentBulk.Load(), msgs, fast.Load(), held.Load())
			e.bound(fast.Load() == sentBulk.Load() && sentBulk.Load() == msgs, "the fast bulk subscriber got every message (%d of %d)", fast.Load(), sentBulk.Load())
			e.bound(held.Load() < 1000, "the stalled subscriber held < 1,000 of 3,000 (%d: egress HWM 64 + kernel buffers)", held.Load())
			grow := e.res.RSSMB[1] - e.res.RSSMB[0]
			e.bound(grow < 64, "gateway RSS growth bounded (%+.0f MB, bound 64 MB; unbounded it was +173 MiB)", grow)
		},
	}
}

// wsHugeSubscribeAttack: two WebSocket connections subscribing to "" every
// 5 ms over 100,000 cached topics, reading what they get (bridge
// TestHugeSubscribeDoesNotStallOthers, with its subscribe rate).
func wsHugeSubscribeAttack() attack {
	var snapValues, closed atomic.Int64
	return attack{
		name: "wshuge", what: "two WebSocket connections subscribing to \"\" every 5 ms over 100,000 cached topics (bridge TestHugeSubscribeDoesNotStallOthers)",
		args:    []string{"--ws-subscribe-rate", "1000", "--ws-subscribe-burst", "1000"},
		prepare: func(e *attackEnv) error { return e.fill("big.%07d", 100_000, []byte(`{"px":1}`)) },
		start: func(e *attackEnv) (func(), error) {
			stopc := make(chan struct{})
			var wg sync.WaitGroup
			u := url.URL{Scheme: "ws", Host: e.g.http, Path: "/ws"}
			var conns []*websocket.Conn
			for range 2 {
				ws, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
				if err != nil {
					close(stopc)
					for _, c := range conns {
						c.Close()
					}
					wg.Wait()
					return nil, err
				}
				conns = append(conns, ws)
				wg.Add(2)
				go func() { // reads everything
					defer wg.Done()
					for {
						_, b, err := ws.ReadMessage()
						if err != nil {
							select {
							case <-stopc:
							default:
								closed.Add(1)
							}
							return
						}
						snapValues.Add(int64(strings.Count(string(b), `"op":"snapshot"`)))
					}
				}()
				go func() {
					defer wg.Done()
					pace := time.NewTicker(5 * time.Millisecond) // the attack's pace
					defer pace.Stop()
					for {
						if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","prefixes":[""]}`)); err != nil {
							return
						}
						select {
						case <-stopc:
							return
						case <-pace.C:
						}
					}
				}()
			}
			return func() {
				close(stopc)
				for _, c := range conns {
					c.Close()
				}
				wg.Wait()
			}, nil
		},
		metrics: []metricRef{
			{Label: "snapshot values sent", Name: "mdgate_fanout_snapshot_values_total"},
			{Label: "subscribes refused snapshot_busy", Name: "mdgate_ws_errors_total", Labels: []string{"code", "snapshot_busy"}},
			{Label: "cut off (lag)", Name: "mdgate_fanout_disconnects_total", Labels: []string{"reason", "lag"}},
			{Label: "cut off (queue bytes)", Name: "mdgate_fanout_disconnects_total", Labels: []string{"reason", "queue_bytes"}},
		},
		finish: func(e *attackEnv) {
			e.note("snapshot values read by the attackers: %d; attacker connections closed by the gateway: %d", snapValues.Load(), closed.Load())
			e.bound(delta(e.res.Metrics[0], 1) > 100_000, "the attack ran: more than one whole snapshot sent (%.0f values)", delta(e.res.Metrics[0], 1))
		},
	}
}

// wsShutdownAttack: a WebSocket client that stops reading while the gateway
// writes to it (limits wide enough that only the shutdown ends it, as in
// bridge TestShutdownBoundedWithStalledClient), then SIGTERM: the time to
// exit against --shutdown-timeout.
func wsShutdownAttack() attack {
	const shutdown = 2 * time.Second
	var stalled *websocket.Conn
	return attack{
		name: "wsshutdown", what: "a stalled WebSocket client (8 KiB buffers, 4 KiB updates at 500/s), then SIGTERM: exit time against --shutdown-timeout 2s (bridge TestShutdownBoundedWithStalledClient)",
		args: []string{"--shutdown-timeout", shutdown.String(), "--slow-max-bytes", "67108864", "--slow-max-lag", "1h", "--ws-send-buffer", "8192",
			"--write-timeout", "1h"},
		noAfter: true,
		start: func(e *attackEnv) (func(), error) {
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
				nd := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
					var err error
					c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
					return err
				}}
				return nd.Dial(network, addr)
			}}
			u := url.URL{Scheme: "ws", Host: e.g.http, Path: "/ws"}
			ws, _, err := d.Dial(u.String(), nil)
			if err != nil {
				return nil, err
			}
			stalled = ws
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","prefixes":["bulk."],"snapshot":false}`))
			if _, b, err := ws.ReadMessage(); err != nil || !strings.Contains(string(b), `"op":"ack"`) {
				ws.Close()
				return nil, fmt.Errorf("stalled client: no ack (%v)", err)
			}
			stopc, done := make(chan struct{}), make(chan struct{})
			go func() { // the bulk feed, until the end of the window
				defer close(done)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				pub, err := openFeed(e.g.ingress)
				if err != nil {
					return
				}
				defer pub.Close()
				pad := `{"pad":"` + strings.Repeat("x", 4000) + `"}`
				pace := time.NewTicker(2 * time.Millisecond) // 500 a second
				defer pace.Stop()
				for {
					select {
					case <-stopc:
						return
					case <-pace.C:
					}
					pub.SendMessage("bulk.x", pad)
				}
			}()
			return func() { close(stopc); <-done }, nil
		},
		finish: func(e *attackEnv) {
			defer stalled.Close()
			t := time.Now()
			e.g.cmd.Process.Signal(syscall.SIGTERM)
			exited := make(chan error, 1)
			go func() { exited <- e.g.cmd.Wait() }()
			select {
			case err := <-exited:
				took := time.Since(t)
				e.note("SIGTERM with the client stalled: the gateway exited after %v (%v), --shutdown-timeout %v", took.Round(time.Millisecond), err, shutdown)
				e.bound(took <= shutdown+time.Second, "exit within --shutdown-timeout + 1 s (%v, bound %v)", took.Round(time.Millisecond), shutdown+time.Second)
			case <-time.After(30 * time.Second):
				e.g.cmd.Process.Kill()
				<-exited
				e.bound(false, "exit within --shutdown-timeout + 1 s (still running 30 s after SIGTERM: killed)")
			}
			e.g.cmd = nil // waited for: stop only cancels
		},
	}
}

// idleHTTPAttack: 1,000 HTTP keep-alive connections, one GET /healthz each,
// then idle: how many remain after --http-idle-timeout (gateway
// TestHTTPIdleConnectionsReaped).
func idleHTTPAttack() attack {
	const n, idle = 1000, 2 * time.Second
	var conns []net.Conn
	var opened time.Time
	var peak float64
	return attack{
		name: "idlehttp", what: "1,000 idle HTTP keep-alive connections after one GET /healthz each, --http-idle-timeout 2s (gateway TestHTTPIdleConnectionsReaped)",
		args:   []string{"--http-idle-timeout", idle.String()},
		during: idle + 1500*time.Millisecond,
		start: func(e *attackEnv) (func(), error) {
			closeAll := func() {
				for _, c := range conns {
					c.Close()
				}
			}
			for i := range n {
				c, err := net.DialTimeout("tcp", e.g.http, 2*time.Second)
				if err != nil {
					closeAll()
					return nil, fmt.Errorf("connection %d: %w", i, err)
				}
				conns = append(conns, c)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: loadtest\r\n\r\n"); err != nil {
					closeAll()
					return nil, err
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					closeAll()
					return nil, fmt.Errorf("connection %d: %w", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				c.SetDeadline(time.Time{})
			}
			opened = time.Now()
			peak = e.metric("mdgate_http_connections")
			return closeAll, nil
		},
		check: func(e *attackEnv) {
			var open atomic.Int64
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					var b [1]byte
					if _, err := c.Read(b[:]); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
						open.Add(1)
					}
				}()
			}
			wg.Wait()
			e.note("gateway's open HTTP connections with all %d open: %.0f; %v after the last request: %d of them still open (--http-idle-timeout %v)",
				n, peak, time.Since(opened).Round(time.Millisecond), open.Load(), idle)
			e.bound(open.Load() == 0, "no idle connection left after the idle timeout (%d of %d still open %v after)", open.Load(), n, time.Since(opened).Round(100*time.Millisecond))
		},
		metrics: []metricRef{
			{Label: "HTTP connections", Name: "mdgate_http_connections", Gauge: true},
			{Label: "refused (max conns)", Name: "mdgate_http_refused_total", Labels: []string{"reason", "max_conns"}},
		},
	}
}
