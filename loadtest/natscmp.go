package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/mdgate/mdgate/internal/promscrape"
)

// The nats scenario: mdgate and nats-server, one after the other in one
// run, under the same WebSocket fan-out load (the ws scenario's clients,
// topics, subscriptions, payload and send-time latency), pinned (server on
// CPU 0 by taskset, this process on CPU 1) and shared. For each target and
// mode: server CPU per delivery and p99 at -rate, the saturation rate (a
// short stepped search for the highest rate with p99 <= -p99 and nothing
// lost or cut off) and, in the first mode, RSS per subscribed idle
// connection.

// fanTarget is a server under comparison.
type fanTarget interface {
	name() string
	pid() int
	// dial opens one measured client per plan entry, subscribed to its topics.
	dial(plan [][]int) ([]fanClient, error)
	// dialIdle opens subscribed connections that are never read.
	dialIdle(plan [][]int) ([]io.Closer, error)
	publish(o options, msgRate int, subsPerTopic []int64, from, to, published, expected *atomic.Int64, stop chan struct{}) error
	connections() (float64, error)
	dropped() float64 // slow clients cut off since start
	stop()
}

// fanClient is a measured client: wsClient for mdgate, natsClient for NATS.
type fanClient interface {
	read(from, to *atomic.Int64)
	counts() (delivered, inWindow int64)
	samples() *samples
	close()
}

func (c *wsClient) counts() (int64, int64) { return c.delivered.Load(), c.inWindow.Load() }
func (c *wsClient) samples() *samples      { return &c.lat }
func (c *wsClient) close()                 { c.ws.Close() }

func (c *natsClient) counts() (int64, int64) { return c.delivered.Load(), c.inWindow.Load() }
func (c *natsClient) samples() *samples      { return &c.lat }
func (c *natsClient) close()                 { c.ws.Close() }

const dialWorkers = 8

// dialParallel runs dial over [0, n) in dialWorkers slices at once.
func dialParallel(n int, dial func(lo, hi int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, dialWorkers)
	for w := range dialWorkers {
		lo, hi := n*w/dialWorkers, n*(w+1)/dialWorkers
		wg.Add(1)
		go func() { defer wg.Done(); errs[w] = dial(lo, hi) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// dialFan dials n fan-out clients in parallel slices (dialParallel), each
// slice's dial filling out[lo:hi]; on an error it closes those made.
func dialFan(n int, dial func(out []fanClient, lo, hi int) error) ([]fanClient, error) {
	out := make([]fanClient, n)
	if err := dialParallel(n, func(lo, hi int) error { return dial(out, lo, hi) }); err != nil {
		for _, c := range out {
			if c != nil {
				c.close()
			}
		}
		return nil, err
	}
	return out, nil
}

// dialIdle dials n idle connections in parallel slices, each slice with
// a dialer of small buffers; dial makes the i-th (a connection it returns
// beside an error is closed too). On an error it closes those made.
func dialIdle(n int, dial func(d *websocket.Dialer, i int) (io.Closer, error)) ([]io.Closer, error) {
	out := make([]io.Closer, n)
	err := dialParallel(n, func(lo, hi int) error {
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
		for i := lo; i < hi; i++ {
			c, err := dial(&d, i)
			if c != nil {
				out[i] = c
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		closeConns(out)
		return nil, err
	}
	return out, nil
}

func closeFan[T interface{ close() }](cs []T) {
	for _, c := range cs {
		c.close()
	}
}

func closeConns(cs []io.Closer) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// mdgateTarget is the gateway under test.
type mdgateTarget struct{ g *gateway }

func (m mdgateTarget) name() string { return "mdgate" }
func (m mdgateTarget) pid() int     { return m.g.cmd.Process.Pid }
func (m mdgateTarget) stop()        { m.g.stop() }

func (m mdgateTarget) dial(plan [][]int) ([]fanClient, error) {
	return dialFan(len(plan), func(out []fanClient, lo, hi int) error {
		cs, err := dialClients(m.g, plan[lo:hi])
		for i, c := range cs {
			out[lo+i] = c
		}
		return err
	})
}

// dialIdle subscribes like dialClients, with no histogram (10,000 of them
// would take 1.5 GB here).
func (m mdgateTarget) dialIdle(plan [][]int) ([]io.Closer, error) {
	u := url.URL{Scheme: "ws", Host: m.g.http, Path: "/ws"}
	return dialIdle(len(plan), func(d *websocket.Dialer, i int) (io.Closer, error) {
		ws, _, err := d.Dial(u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("idle connection %d: %w (raise ulimit -n?)", i, err)
		}
		if err := subscribeWS(ws, plan[i]); err != nil {
			return ws, fmt.Errorf("idle connection %d: %w", i, err)
		}
		return ws, nil
	})
}

func (m mdgateTarget) publish(o options, msgRate int, subsPerTopic []int64, from, to, published, expected *atomic.Int64, stop chan struct{}) error {
	return wsPublish(m.g.ingress, o, msgRate, subsPerTopic, from, to, published, expected, stop)
}

func (m mdgateTarget) connections() (float64, error) {
	f, err := promscrape.Scrape(m.g.ctx, "http://"+m.g.http+"/metrics")
	if err != nil {
		return 0, err
	}
	v, _ := f.Value("mdgate_ws_connections")
	return v, nil
}

func (m mdgateTarget) dropped() float64 {
	return m.g.metric("mdgate_fanout_disconnects_total", "reason", "queue_bytes") + m.g.metric("mdgate_fanout_disconnects_total", "reason", "lag")
}

// natsTarget is nats-server.
type natsTarget struct{ s *natsServer }

func (n natsTarget) name() string { return "nats" }
func (n natsTarget) pid() int     { return n.s.pid() }
func (n natsTarget) stop()        { n.s.stop() }

func subjects(topics []int) []string {
	out := make([]string, len(topics))
	for i, t := range topics {
		out[i] = topicName(t)
	}
	return out
}

func (n natsTarget) dial(plan [][]int) ([]fanClient, error) {
	return dialFan(len(plan), func(out []fanClient, lo, hi int) error {
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
		for i := lo; i < hi; i++ {
			ws, st, rd, err := dialNATS(&d, n.s.ws, subjects(plan[i]))
			if err != nil {
				return fmt.Errorf("nats client %d: %w", i, err)
			}
			out[i] = &natsClient{ws: ws, st: st, rd: rd}
		}
		return nil
	})
}

func (n natsTarget) dialIdle(plan [][]int) ([]io.Closer, error) {
	return dialIdle(len(plan), func(d *websocket.Dialer, i int) (io.Closer, error) {
		ws, _, _, err := dialNATS(d, n.s.ws, subjects(plan[i]))
		if err != nil {
			return nil, fmt.Errorf("idle nats connection %d: %w (raise ulimit -n?)", i, err)
		}
		return ws, nil
	})
}

func (n natsTarget) publish(o options, msgRate int, subsPerTopic []int64, from, to, published, expected *atomic.Int64, stop chan struct{}) error {
	return natsPublish(n.s.client, o, msgRate, subsPerTopic, from, to, published, expected, stop)
}

func (n natsTarget) connections() (float64, error) {
	v, err := n.s.varz()
	return v.Connections, err
}

func (n natsTarget) dropped() float64 {
	v, _ := n.s.varz()
	return v.SlowConsumers
}

// fanStep is one measured run of t at rate deliveries a second: wsRun's
// measurement for any target. Connections are opened before and closed
// after each step.
func fanStep(t fanTarget, o options, rate int) (result, error) {
	plan := assign(o.clients, o.perClient, o.topics, o.seed)
	subsPerTopic := countSubs(plan, o.topics)
	clients, err := t.dial(plan)
	if err != nil {
		return result{}, err
	}
	defer closeFan(clients)
	var from, to atomic.Int64
	var wg sync.WaitGroup
	readAll(clients, &from, &to, &wg)
	msgRate := pubRate(o, rate)

	var published, expected atomic.Int64
	stop := make(chan struct{})
	pubDone := goErr(func() error {
		return t.publish(o, msgRate, subsPerTopic, &from, &to, &published, &expected, stop)
	})
	fail := func(err error) (result, error) {
		closeFan(clients)
		wg.Wait()
		return result{}, err
	}
	select { // the warm-up is part of the scenario, not synchronisation
	case err := <-pubDone:
		return fail(fmt.Errorf("publisher: %v", err))
	case <-time.After(o.warmup):
	}
	drop0 := t.dropped()
	cpu0, _ := pidStats(t.pid())
	self0 := selfCPU()
	t0 := time.Now()
	to.Store(t0.Add(o.window).UnixNano())
	from.Store(t0.UnixNano())
	total := func() (all, in int64) {
		for _, c := range clients {
			a, i := c.counts()
			all, in = all+a, in+i
		}
		return all, in
	}
	cum := sampleWindow(o, t0, t.name(), rate, func() int64 { n, _ := total(); return n })
	cpu1, rss := pidStats(t.pid())
	self1 := selfCPU()
	close(stop)
	if err := <-pubDone; err != nil {
		return fail(fmt.Errorf("publisher: %w", err))
	}
	// Drain: until every expected delivery is in, nothing more arrives for
	// 500 ms, or -drain has passed (what is still missing then is lost).
	want := expected.Load()
	last, quiet := int64(-1), time.Now()
	for deadline := time.Now().Add(o.drain); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n, in := total()
		if in >= want {
			break
		}
		if n != last {
			last, quiet = n, time.Now()
		} else if time.Since(quiet) > 500*time.Millisecond {
			break
		}
	}
	closeFan(clients)
	wg.Wait()
	h, delivered := fanTotals(clients)
	r := fanResult(o, t.name(), rate, published.Load(), want, delivered, h, cpu1-cpu0, self1-self0, rss, cum)
	r.Disconnects = t.dropped() - drop0
	return r, nil
}

// clean says whether a step is within the bound: p99 <= bound, nothing
// lost, nobody cut off, something delivered.
func clean(r result, bound time.Duration) bool {
	return r.Delivered > 0 && r.Lost == 0 && r.Disconnects == 0 && r.Latency.P99 <= float64(bound.Microseconds())/1000
}

func whyNotClean(r result, bound time.Duration) string {
	var why []string
	if r.Delivered == 0 {
		why = append(why, "nothing delivered")
	}
	if r.Latency.P99 > float64(bound.Microseconds())/1000 {
		why = append(why, fmt.Sprintf("p99 %.1f ms > %v", r.Latency.P99, bound))
	}
	if r.Lost > 0 {
		why = append(why, fmt.Sprintf("%d lost", r.Lost))
	}
	if r.Disconnects > 0 {
		why = append(why, fmt.Sprintf("%.0f cut off", r.Disconnects))
	}
	return strings.Join(why, ", ")
}

// searchPlan is the saturation search: from the first step's rate, double
// while clean (up to max), or halve while not (down to a quarter); then
// refine times bisect between the last clean and the first failing rate.
// With confirm, a rate fails only when a second step at it fails too: one
// window spoilt by the machine (a shared VM's stolen CPU) must not end
// the search lower than the server can go. next returns the rate of the
// next step, or 0 when done.
type searchPlan struct {
	max, refine  int
	good, bad    int // highest clean and lowest failing target so far (0: none)
	bisected     int
	first, floor int
	confirm      bool
	again        int          // a rate that failed once, to step again (0: none)
	failedOnce   map[int]bool // rates that failed once
}

func newSearch(first, maxRate, refine int, confirm bool) *searchPlan {
	return &searchPlan{max: maxRate, refine: refine, first: first, floor: max(first/4, 1), confirm: confirm, failedOnce: map[int]bool{}}
}

// record takes a step's outcome; it reports whether the rate is now
// counted as failing (false for a first failure awaiting its repeat).
func (s *searchPlan) record(rate int, ok bool) (failed bool) {
	if ok && rate > s.good {
		s.good = rate
	}
	if !ok && s.confirm && !s.failedOnce[rate] {
		s.failedOnce[rate] = true
		s.again = rate
		return false
	}
	if !ok && (s.bad == 0 || rate < s.bad) {
		s.bad = rate
	}
	return !ok
}

func (s *searchPlan) next() int {
	if r := s.again; r > 0 {
		s.again = 0
		return r
	}
	switch {
	case s.good == 0 && s.bad == 0:
		return s.first
	case s.bad == 0: // every step clean: go up
		if s.good >= s.max {
			return 0
		}
		return min(s.good*2, s.max)
	case s.good == 0: // every step failed: go down
		if r := s.bad / 2; r >= s.floor {
			return r
		}
		return 0
	}
	if s.bisected >= s.refine || s.bad-s.good <= s.good/10 {
		return 0
	}
	s.bisected++
	mid := (s.good + s.bad) / 2
	if mid > 10_000 {
		mid = mid / 1000 * 1000
	}
	return mid
}

// idleResult is one target's RSS per subscribed idle connection.
type idleResult struct {
	Target    string  `json:"target"`
	Mode      string  `json:"mode"`
	Conns     int     `json:"connections"`
	RSS0MB    float64 `json:"rss_mb_none"`
	RSS1MB    float64 `json:"rss_mb_connected"`
	KBPerConn float64 `json:"kb_per_connection"`
	Note      string  `json:"note,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// waitConns waits up to d for the target to count a number of connections
// that ok accepts.
func waitConns(t fanTarget, d time.Duration, ok func(float64) bool) (float64, error) {
	var v float64
	var err error
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if v, err = t.connections(); err == nil && ok(v) {
			return v, nil
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("%s counts %v connections after %v (%v)", t.name(), v, d, err)
		}
	}
}

// rssPerConn: the server's RSS with none of these connections, then with n
// of them open and subscribed (each to -subs of -topics, nothing
// published), over n; then closes them and waits until the server counts
// none.
func rssPerConn(t fanTarget, o options, n int) (idleResult, error) {
	r := idleResult{Target: t.name(), Conns: n}
	if _, err := waitConns(t, 20*time.Second, func(v float64) bool { return v == 0 }); err != nil {
		return r, err
	}
	_, rss0 := pidStats(t.pid())
	fmt.Printf("  %s: %d subscribed idle connections\n", t.name(), n)
	conns, err := t.dialIdle(assign(n, o.perClient, o.topics, o.seed+1))
	if err != nil {
		return r, err
	}
	defer closeConns(conns)
	if _, err := waitConns(t, 20*time.Second, func(v float64) bool { return v >= float64(n) }); err != nil {
		return r, err
	}
	time.Sleep(time.Second) // let the heap settle before reading RSS; a measurement, not synchronisation
	_, rss1 := pidStats(t.pid())
	closeConns(conns)
	if _, err := waitConns(t, 30*time.Second, func(v float64) bool { return v == 0 }); err != nil {
		return r, err
	}
	r.RSS0MB, r.RSS1MB = float64(rss0)/(1<<20), float64(rss1)/(1<<20)
	r.KBPerConn = float64(rss1-rss0) / 1024 / float64(n)
	return r, nil
}

// cmpSummary is one target in one mode.
type cmpSummary struct {
	Target string `json:"target"`
	Mode   string `json:"mode"`
	Error  string `json:"error,omitempty"`
	// at -rate
	Rate         int     `json:"rate_target_per_s"`
	CPUusPer     float64 `json:"server_cpu_us_per_delivery"`
	ServerCores  float64 `json:"server_cores"`
	P99          float64 `json:"p99_ms"`
	Lost         int64   `json:"lost"`
	HarnessCores float64 `json:"harness_cores"`
	Clean        bool    `json:"clean"`
	// the saturation search
	SatTarget       int     `json:"saturation_target_per_s"` // 0: no clean step
	SatRate         float64 `json:"saturation_delivered_per_s"`
	SatP99          float64 `json:"saturation_p99_ms"`
	SatServerCores  float64 `json:"saturation_server_cores"`
	SatHarnessCores float64 `json:"saturation_harness_cores"`
	SatAtMax        bool    `json:"saturation_at_search_max,omitempty"` // never failed up to -search-max
	FailTarget      int     `json:"lowest_failing_target_per_s,omitempty"`
	FailWhy         string  `json:"lowest_failing_why,omitempty"`
	FailHarness     float64 `json:"lowest_failing_harness_cores,omitempty"`
	HarnessCPUs     int     `json:"harness_cpus"` // CPUs the harness may use
	Steps           int     `json:"steps"`
	Repeated        int     `json:"failed_once_then_repeated,omitempty"` // steps that failed and were run again (-confirm)
	SatEach         []int   `json:"saturation_target_per_s_each_search"` // every search's, the first's first (-searches)
	// at -below's rates
	Below []belowStep `json:"below_saturation,omitempty"`
	// at the baseline's (nats') saturation target rate
	AtTarget int     `json:"at_nats_saturation_target_per_s,omitempty"`
	AtP99    float64 `json:"at_nats_saturation_p99_ms,omitempty"`
	AtClean  bool    `json:"at_nats_saturation_clean,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// belowStep is one step at a rate of -below.
type belowStep struct {
	Rate         int     `json:"rate_target_per_s"`
	CPUusPer     float64 `json:"server_cpu_us_per_delivery"`
	ServerCores  float64 `json:"server_cores"`
	P99          float64 `json:"p99_ms"`
	P999         float64 `json:"p999_ms"`
	Lost         int64   `json:"lost"`
	HarnessCores float64 `json:"harness_cores"`
	Clean        bool    `json:"clean"`
}

// natsReport is -json's content for the nats scenario.
type natsReport struct {
	Generated   string       `json:"generated"`
	Host        string       `json:"host"`
	CPUs        int          `json:"cpus"`
	Go          string       `json:"go"`
	NATSVersion string       `json:"nats_server_version"`
	NATSConfig  string       `json:"nats_server_config"`
	Settings    cmpSettings  `json:"settings"`
	Summary     []cmpSummary `json:"summary"`
	Idle        []idleResult `json:"rss_per_connection"`
	Runs        []result     `json:"runs"`
	Seconds     float64      `json:"seconds"`
}

type cmpSettings struct {
	Clients   int      `json:"clients"`
	Subs      int      `json:"subs_per_client"`
	Topics    int      `json:"topics"`
	Payload   int      `json:"payload_bytes"`
	Rate      int      `json:"rate_per_s"`
	Warmup    string   `json:"warmup"`
	Window    string   `json:"window"`
	Drain     string   `json:"drain_max"`
	P99Bound  float64  `json:"p99_bound_ms"`
	SearchMax int      `json:"search_max_per_s"`
	Refine    int      `json:"refine_steps"`
	Confirm   bool     `json:"confirm_failures"`
	Searches  int      `json:"searches"`
	Below     []int    `json:"below_saturation_rates,omitempty"`
	Idle      int      `json:"idle_connections"`
	Targets   []string `json:"targets"`
	Modes     []string `json:"modes"`
	Seed      uint64   `json:"seed"`
}

// setAffinityAll sets every thread of this process to set (threads started
// later inherit it from the one that starts them); twice, for threads
// started meanwhile.
func setAffinityAll(set *unix.CPUSet) error {
	for range 2 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("sched_setaffinity(%d): %w", tid, err)
			}
		}
	}
	return nil
}

// raiseNofile raises this process's descriptor limit (inherited by the
// servers it starts) to at least want if it can, and returns the soft limit.
func raiseNofile(want uint64) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur >= want {
		return l.Cur
	}
	if l.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			return want
		}
	}
	l.Cur = l.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func startTarget(name string, o options, natsBin string, pin bool) (fanTarget, error) {
	switch name {
	case "mdgate":
		o.pin = pin
		g, err := startGateway(o)
		if err != nil {
			return nil, err
		}
		return mdgateTarget{g}, nil
	case "nats":
		s, err := startNATS(natsBin, pin, "")
		if err != nil {
			return nil, err
		}
		fmt.Printf("nats-server %s: client %s, websocket ws://%s, monitor http://%s\n", s.version, s.client, s.ws, s.monitor)
		return natsTarget{s}, nil
	}
	return nil, fmt.Errorf("unknown target %q (mdgate, nats)", name)
}

// natsScenario runs the comparison and writes -json, -md and -html.
func natsScenario(o options) error {
	if o.attachHTTP != "" {
		return errors.New("-scenario nats starts its own servers: -http is not supported")
	}
	if o.searches < 1 {
		return fmt.Errorf("-searches %d: want at least 1", o.searches)
	}
	below, err := parseRates(o.below)
	if err != nil {
		return fmt.Errorf("-below: %w", err)
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["warmup"] {
		o.warmup = time.Second
	}
	if !set["window"] {
		o.window = 3 * time.Second
	}
	targets, modes := splitList(o.targets), splitList(o.modes)
	for _, t := range targets {
		if t != "mdgate" && t != "nats" {
			return fmt.Errorf("-targets: unknown target %q (mdgate, nats)", t)
		}
	}
	for _, m := range modes {
		if m != "pinned" && m != "shared" {
			return fmt.Errorf("-modes: unknown mode %q (pinned, shared)", m)
		}
	}
	if len(targets) == 0 || len(modes) == 0 {
		return errors.New("-targets and -modes must name at least one each")
	}
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return err
	}
	if slices.Contains(modes, "pinned") && (!orig.IsSet(0) || !orig.IsSet(1)) {
		return errors.New("pinned mode needs CPUs 0 and 1 (-modes shared to skip it)")
	}
	natsBin := ""
	if slices.Contains(targets, "nats") {
		var err error
		if natsBin, err = findNATS(o.natsServer, "scripts/ensure-nats"); err != nil {
			return err
		}
	}
	t0 := time.Now()
	host, _ := os.Hostname()
	rep := natsReport{Generated: t0.UTC().Format(time.RFC3339), Host: host, CPUs: runtime.NumCPU(), Go: runtime.Version(),
		NATSConfig: natsConfig(""),
		Settings: cmpSettings{Clients: o.clients, Subs: o.perClient, Topics: o.topics, Payload: o.payload, Rate: o.rate,
			Warmup: o.warmup.String(), Window: o.window.String(), Drain: o.drain.String(), P99Bound: float64(o.p99Bound.Microseconds()) / 1000,
			SearchMax: o.searchMax, Refine: o.refine, Confirm: o.confirm, Searches: o.searches, Below: below, Idle: o.idle, Targets: targets, Modes: modes, Seed: o.seed}}
	idle := o.idle
	if idle > 0 {
		limit := raiseNofile(uint64(idle + o.clients + 1024))
		if limit < uint64(idle+o.clients+1024) {
			idle = max(int(limit)-o.clients-1024, 0)
			fmt.Printf("descriptor limit %d: %d idle connections instead of %d\n", limit, idle, o.idle)
		}
	}
	defer setAffinityAll(&orig)
	for mi, mode := range modes {
		if mode == "pinned" {
			var one unix.CPUSet
			one.Set(1)
			if err := setAffinityAll(&one); err != nil {
				return fmt.Errorf("pin the harness to CPU 1: %w", err)
			}
		} else if err := setAffinityAll(&orig); err != nil {
			return err
		}
		var harnessSet unix.CPUSet
		unix.SchedGetaffinity(0, &harnessSet)
		// Every target is started, then their searches take a step each in
		// turn: a swing in this machine's speed (2-3x within a session here)
		// lands on all of them instead of on whichever ran during it.
		var cmps []*comparison
		for _, name := range targets {
			c := &comparison{name: name, sum: cmpSummary{Target: name, Mode: mode, Rate: o.rate, HarnessCPUs: harnessSet.Count()}}
			fmt.Printf("%s, %s: start\n", name, mode)
			if err := c.start(mode, o, natsBin, mi == 0 && idle > 0, idle, &rep.NATSVersion); err != nil {
				c.fail(err)
			}
			if c.idle != nil {
				c.idle.Mode = mode
				rep.Idle = append(rep.Idle, *c.idle)
			}
			cmps = append(cmps, c)
		}
		search := func() {
			for stepped := true; stepped; {
				stepped = false
				for _, c := range cmps {
					stepped = c.step(mode, o) || stepped
				}
			}
		}
		search()
		// The p99 of each target at the baseline's saturation rate (the
		// issue's "p99 at NATS's saturation rate"), a fresh step each.
		for _, base := range cmps {
			if base.name != "nats" || base.sum.SatTarget == 0 {
				continue
			}
			for _, c := range cmps {
				c.atRate(mode, o, base.sum.SatTarget)
			}
		}
		for _, rate := range below {
			for _, c := range cmps {
				c.belowStep(mode, o, rate)
			}
		}
		for n := 2; n <= o.searches; n++ {
			fmt.Printf("%s: saturation search %d of %d\n", mode, n, o.searches)
			for _, c := range cmps {
				c.again(o, n)
			}
			search()
		}
		for _, c := range cmps {
			c.stop()
			rep.Runs = append(rep.Runs, c.runs...)
			rep.Summary = append(rep.Summary, c.sum)
		}
	}
	setAffinityAll(&orig)
	rep.Seconds = time.Since(t0).Seconds()
	fmt.Println()
	fmt.Print(natsTable(rep))
	if err := writeReport(o, rep, natsBeginMark, natsEndMark, "mdgate beside NATS (latest run)",
		func() string { return natsMarkdown(rep, o) }); err != nil {
		return err
	}
	if o.htmlOut != "" {
		if err := replaceHTMLSection(o.htmlOut, natsHTML(rep)); err != nil {
			return err
		}
	}
	var failed []string
	for _, s := range rep.Summary {
		if s.Error != "" {
			failed = append(failed, s.Target+" "+s.Mode)
		}
	}
	for _, r := range rep.Idle {
		if r.Error != "" {
			failed = append(failed, r.Target+" idle")
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("runs that failed: %s (see the errors above and in the report)", strings.Join(failed, ", "))
	}
	return nil
}

// comparison is one target in one mode: its server, its RSS per
// connection when asked, and its saturation searches, run a step at a time.
type comparison struct {
	name   string
	t      fanTarget   // nil once stopped or when it failed to start
	search *searchPlan // nil between searches
	nth    int         // the search under way, from 1: only the first's steps fill the summary's figures
	sum    cmpSummary
	idle   *idleResult
	runs   []result
}

// again starts search n (from 2) on the running server.
func (c *comparison) again(o options, n int) {
	if c.t != nil {
		c.search, c.nth = newSearch(o.rate, o.searchMax, o.refine, o.confirm), n
	}
}

// start starts the target and measures RSS per connection when asked.
func (c *comparison) start(mode string, o options, natsBin string, measureIdle bool, idle int, natsVersion *string) error {
	st := time.Now()
	defer func() { c.sum.Seconds += time.Since(st).Seconds() }()
	t, err := startTarget(c.name, o, natsBin, mode == "pinned")
	if err != nil {
		return err
	}
	c.t, c.search, c.nth = t, newSearch(o.rate, o.searchMax, o.refine, o.confirm), 1
	if n, ok := t.(natsTarget); ok {
		*natsVersion = n.s.version
	}
	if measureIdle {
		r, err := rssPerConn(t, o, idle)
		if err != nil {
			r.Error = err.Error()
			fmt.Printf("  %s idle: error: %v\n", c.name, err)
		} else {
			fmt.Printf("  %s: RSS %.0f MB -> %.0f MB with %d subscribed idle connections, %.1f KB a connection\n", c.name, r.RSS0MB, r.RSS1MB, r.Conns, r.KBPerConn)
		}
		if idle < o.idle {
			r.Note = fmt.Sprintf("%d connections instead of %d: descriptor limit", idle, o.idle)
		}
		c.idle = &r
	}
	return nil
}

// step runs the search's next step, if any, and reports whether it ran one.
func (c *comparison) step(mode string, o options) bool {
	if c.t == nil || c.search == nil {
		return false
	}
	rate := c.search.next()
	if rate <= 0 {
		if c.nth == 1 {
			c.sum.SatAtMax = c.sum.FailTarget == 0 && c.sum.SatTarget > 0
		}
		c.sum.SatEach = append(c.sum.SatEach, c.search.good)
		c.search = nil
		return false // the server runs on, idle, for a step at the baseline's saturation rate (atRate), or another search
	}
	r, ok := c.run(mode, o, rate)
	if !ok {
		return true
	}
	ok = clean(r, o.p99Bound)
	failed := c.search.record(rate, ok)
	if c.nth > 1 {
		return true
	}
	s := &c.sum
	s.Steps++
	if rate == o.rate && s.Steps == 1 { // the first step; a repeat of it only decides the search
		s.CPUusPer, s.ServerCores, s.P99, s.Lost, s.HarnessCores, s.Clean = r.CPUusPer, r.GatewayCores, r.Latency.P99, r.Lost, r.LoadCores, ok
	}
	if ok && rate >= s.SatTarget {
		s.SatTarget, s.SatRate, s.SatP99, s.SatServerCores, s.SatHarnessCores = rate, r.Rate, r.Latency.P99, r.GatewayCores, r.LoadCores
	}
	if !ok && !failed {
		s.Repeated++
	}
	if failed && (s.FailTarget == 0 || rate < s.FailTarget) {
		s.FailTarget, s.FailWhy, s.FailHarness = rate, whyNotClean(r, o.p99Bound), r.LoadCores
	}
	return true
}

// run takes one step at rate and records it; false when the server has
// stopped, or the step failed (the comparison is then stopped, its error
// recorded).
func (c *comparison) run(mode string, o options, rate int) (result, bool) {
	if c.t == nil {
		return result{}, false
	}
	st := time.Now()
	defer func() { c.sum.Seconds += time.Since(st).Seconds() }()
	r, err := fanStep(c.t, o, rate)
	if err != nil {
		c.fail(fmt.Errorf("at %d deliveries/s: %w", rate, err))
		return result{}, false
	}
	r.Mode = mode
	r.Label = fmt.Sprintf("%s %s %d/s", c.name, mode, rate)
	if c.nth > 1 {
		r.Label += fmt.Sprintf(" (search %d)", c.nth)
	}
	printResult(r)
	c.runs = append(c.runs, r)
	return r, true
}

// atRate takes a fresh step at rate, the baseline's saturation rate, and
// records its p99; every target takes one, in turn. The search's own steps
// at that rate are not used: the baseline's saturation rate is the highest
// at which one of its steps came out clean, so that step's p99 was picked
// for being under the bound (in session 9's second run, NATS's first step
// at 100k had p99 89.9 ms and its second 41.6 ms, and 41.6 was reported
// beside mdgate's one step there). A new step for each is drawn alike.
func (c *comparison) atRate(mode string, o options, rate int) {
	r, ok := c.run(mode, o, rate)
	if !ok {
		return
	}
	c.runs[len(c.runs)-1].Label += " (at NATS's saturation rate)"
	c.sum.AtTarget, c.sum.AtP99, c.sum.AtClean = rate, r.Latency.P99, clean(r, o.p99Bound)
}

// belowStep takes a step at rate, one of -below's.
func (c *comparison) belowStep(mode string, o options, rate int) {
	r, ok := c.run(mode, o, rate)
	if !ok {
		return
	}
	c.sum.Below = append(c.sum.Below, belowStep{Rate: rate, CPUusPer: r.CPUusPer, ServerCores: r.GatewayCores,
		P99: r.Latency.P99, P999: r.Latency.P999, Lost: r.Lost, HarnessCores: r.LoadCores, Clean: clean(r, o.p99Bound)})
}

// parseRates parses a comma-separated list of positive rates.
func parseRates(s string) ([]int, error) {
	var rates []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("rate %q: want a positive whole number of deliveries a second", f)
		}
		rates = append(rates, n)
	}
	return rates, nil
}

// fail records why the comparison ended early and stops its server.
func (c *comparison) fail(err error) {
	c.sum.Error = err.Error()
	fmt.Printf("\r  %s %s: error: %v\n", c.sum.Target, c.sum.Mode, err)
	c.stop()
}

// stop stops the server, once.
func (c *comparison) stop() {
	if c.t != nil {
		c.t.stop()
		c.t = nil
	}
}
