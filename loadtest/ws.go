package main

import (
	"bytes"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// wsClient reads one connection and keeps its own histogram (no sharing on
// the hot path).
type wsClient struct {
	ws        *websocket.Conn
	lat       samples
	inWindow  atomic.Int64
	delivered atomic.Int64
}

func dialClients(g *gateway, plan [][]int) ([]*wsClient, error) {
	u := url.URL{Scheme: "ws", Host: g.http, Path: "/ws"}
	clients := make([]*wsClient, len(plan))
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	for i, topics := range plan {
		ws, _, err := d.Dial(u.String(), nil)
		if err != nil {
			closeAll(clients)
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		clients[i] = &wsClient{ws: ws}
		if err := subscribeWS(ws, topics); err != nil {
			closeAll(clients)
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
	}
	return clients, nil
}

// subscribeWS subscribes ws to topics (no snapshot) and waits up to 10 s
// for the ack.
func subscribeWS(ws *websocket.Conn, topics []int) error {
	req := fmt.Sprintf(`{"op":"subscribe","topics":["%s"],"snapshot":false}`, strings.Join(subjects(topics), `","`))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		return err
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, b, err := ws.ReadMessage(); err != nil || !bytes.Contains(b, []byte(`"op":"ack"`)) {
		return fmt.Errorf("no ack (%v): %.100s", err, b)
	}
	return nil
}

func closeAll(cs []*wsClient) {
	for _, c := range cs {
		if c != nil {
			c.ws.Close()
		}
	}
}

// read counts updates; those sent inside [from, to) give latency samples.
func (c *wsClient) read(from, to *atomic.Int64) {
	c.ws.SetReadDeadline(time.Time{})
	var frame bytes.Buffer // reused: the NATS client reads through a bufio.Reader, allocating nothing a message either
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		now := time.Now().UnixNano() // when the frame began to arrive, as for the NATS client
		frame.Reset()
		if _, err := frame.ReadFrom(r); err != nil {
			return
		}
		b := frame.Bytes()
		for len(b) > 0 {
			line := b
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				line, b = b[:i], b[i+1:]
			} else {
				b = nil
			}
			t, ok := sendTime(line)
			if !ok {
				continue
			}
			c.delivered.Add(1)
			if f := from.Load(); f != 0 && t >= f && t < to.Load() {
				c.lat.record(time.Duration(now - t))
				c.inWindow.Add(1)
			}
		}
	}
}

// countSubs is how many clients of plan subscribe to each of topics.
func countSubs(plan [][]int, topics int) []int64 {
	subs := make([]int64, topics)
	for _, ts := range plan {
		for _, t := range ts {
			subs[t]++
		}
	}
	return subs
}

// readAll runs each client's read in a goroutine of wg.
func readAll[C interface{ read(from, to *atomic.Int64) }](clients []C, from, to *atomic.Int64, wg *sync.WaitGroup) {
	for _, c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.read(from, to) }()
	}
}

// pubRate is the publisher's messages a second for rate deliveries a
// second: each message reaches the average number of subscribers of a
// topic.
func pubRate(o options, rate int) int {
	avgSubs := float64(o.clients*o.perClient) / float64(o.topics)
	return max(int(float64(rate)/avgSubs), 1)
}

// goErr runs f in a goroutine; the channel gets its error.
func goErr(f func() error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return done
}

// wsRun is one WebSocket fan-out run at a target rate of deliveries a
// second; stalled extra clients subscribe to every topic and never read.
func wsRun(g *gateway, o options, rate, stalled int) (result, error) {
	plan := assign(o.clients, o.perClient, o.topics, o.seed)
	subsPerTopic := countSubs(plan, o.topics)
	clients, err := dialClients(g, plan)
	if err != nil {
		return result{}, err
	}
	defer closeAll(clients)
	if stalled > 0 {
		all := make([]int, o.topics)
		for i := range all {
			all[i] = i
		}
		plan := make([][]int, stalled)
		for i := range plan {
			plan[i] = all
		}
		st, err := dialClients(g, plan)
		if err != nil {
			return result{}, err
		}
		defer closeAll(st) // never read
	}
	var from, to atomic.Int64
	var wg sync.WaitGroup
	readAll(clients, &from, &to, &wg)
	msgRate := pubRate(o, rate)

	var published, expected atomic.Int64
	stop := make(chan struct{})
	pubDone := goErr(func() error {
		return wsPublish(g.ingress, o, msgRate, subsPerTopic, &from, &to, &published, &expected, stop)
	})

	time.Sleep(o.warmup) // the warm-up is part of the scenario, not synchronisation
	disc0 := g.metric("mdgate_fanout_disconnects_total", "reason", "queue_bytes") + g.metric("mdgate_fanout_disconnects_total", "reason", "lag")
	conf0 := g.metric("mdgate_fanout_conflated_total")
	cpu0, _ := g.procStats()
	self0 := selfCPU()
	t0 := time.Now()
	to.Store(t0.Add(o.window).UnixNano())
	from.Store(t0.UnixNano())
	total := func() int64 {
		var n int64
		for _, c := range clients {
			n += c.delivered.Load()
		}
		return n
	}
	cum := sampleWindow(o, t0, "ws", rate, total)
	cpu1, rss := g.procStats()
	self1 := selfCPU()
	close(stop)
	if err := <-pubDone; err != nil {
		return result{}, fmt.Errorf("publisher: %w", err)
	}
	// Drain: until nothing more arrives for 500 ms (at most 10 s).
	last, quiet := int64(-1), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n := total(); n != last {
			last, quiet = n, time.Now()
		} else if time.Since(quiet) > 500*time.Millisecond {
			break
		}
	}
	closeAll(clients)
	wg.Wait()
	h, delivered := fanTotals(clients)
	r := fanResult(o, "mdgate", rate, published.Load(), expected.Load(), delivered, h, cpu1-cpu0, self1-self0, rss, cum)
	r.Stalled = stalled
	r.Disconnects = g.metric("mdgate_fanout_disconnects_total", "reason", "queue_bytes") + g.metric("mdgate_fanout_disconnects_total", "reason", "lag") - disc0
	r.Conflated = g.metric("mdgate_fanout_conflated_total") - conf0
	return r, nil
}

// windowStep is how often a fan-out run samples what its clients received.
const windowStep = 250 * time.Millisecond

// sampleWindow samples total every windowStep from t0 until the measured
// window has passed, printing progress under label, and returns the
// cumulative counts (the first taken at once).
func sampleWindow(o options, t0 time.Time, label string, rate int, total func() int64) []int64 {
	cum := []int64{total()}
	for time.Since(t0) < o.window {
		time.Sleep(windowStep)
		cum = append(cum, total())
		if len(cum)%4 == 1 {
			fmt.Printf("\r  %s target %8d deliveries/s  %4.1fs of %v ", label, rate, time.Since(t0).Seconds(), o.window)
		}
	}
	return cum
}

// fanTotals merges the clients' latency histograms and adds up what they
// received inside the window.
func fanTotals[C interface {
	samples() *samples
	counts() (delivered, inWindow int64)
}](clients []C) (*hdrhistogram.Histogram, int64) {
	h := newHist()
	var delivered int64
	for _, c := range clients {
		c.samples().into(h)
		_, in := c.counts()
		delivered += in
	}
	return h, delivered
}

// fanResult is a WebSocket fan-out run's result at a target rate, from what
// the server (path) used in the window (cpu, rss) and the harness (load).
func fanResult(o options, path string, rate int, sent, expected, delivered int64, h *hdrhistogram.Histogram, cpu, load time.Duration, rss int64, cum []int64) result {
	r := result{Kind: "ws", Path: path, Target: rate, Clients: o.clients,
		Sent: sent, Expected: expected, Delivered: delivered,
		Rate: float64(delivered) / o.window.Seconds(), Latency: summarize(h),
		RSSMB:        float64(rss) / (1 << 20),
		GatewayCores: cpu.Seconds() / o.window.Seconds(),
		LoadCores:    load.Seconds() / o.window.Seconds(),
		Timeline:     timeline(cum, windowStep),
	}
	r.Lost = max(r.Expected-r.Delivered, 0)
	if delivered > 0 {
		r.CPUusPer = float64(cpu.Microseconds()) / float64(delivered)
	}
	return r
}

// wsPublish sends JSON ticks carrying their send time at msgRate a second,
// round-robin over the topics, until stop. One goroutine owns the socket.
func wsPublish(ingress string, o options, msgRate int, subsPerTopic []int64, from, to, published, expected *atomic.Int64, stop chan struct{}) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, err := openPub(ingress, false)
	if err != nil {
		return err
	}
	defer pub.Close()
	pad := strings.Repeat("x", max(o.payload-30, 1))
	topics := make([]string, o.topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("lt.t%03d", i)
	}
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		due := int(time.Since(start).Seconds() * float64(msgRate))
		for ; sent < due; sent++ {
			t := time.Now().UnixNano()
			topic := sent % o.topics
			pub.SendMessage(topics[topic], fmt.Sprintf(`{"t":%d,"pad":"%s"}`, t, pad))
			if f := from.Load(); f != 0 && t >= f && t < to.Load() {
				published.Add(1)
				expected.Add(subsPerTopic[topic])
			}
		}
	}
}

// idleMemory opens n idle connections and reports the gateway's RSS growth
// per connection.
func idleMemory(g *gateway, n int) (result, error) {
	_, rss0 := g.procStats()
	u := url.URL{Scheme: "ws", Host: g.http, Path: "/ws"}
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
		if err != nil {
			return result{}, fmt.Errorf("idle connection %d: %w (raise ulimit -n?)", i, err)
		}
		conns = append(conns, c)
	}
	for deadline := time.Now().Add(10 * time.Second); g.metric("mdgate_ws_connections") < float64(n); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("the gateway counts %v connections, want %d", g.metric("mdgate_ws_connections"), n)
		}
	}
	time.Sleep(time.Second) // let the heap settle before reading RSS; a measurement, not synchronisation
	_, rss1 := g.procStats()
	return result{Kind: "idle", Path: "mdgate", Clients: n, RSSMB: float64(rss1) / (1 << 20),
		KBPerConn: float64(rss1-rss0) / 1024 / float64(n)}, nil
}

// selfCPU is this process's CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
