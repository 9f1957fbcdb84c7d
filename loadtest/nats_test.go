package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mdgate/mdgate/internal/testpeer"
)

// natsBinary installs (or finds) nats-server with scripts/ensure-nats, or
// skips the test.
func natsBinary(t *testing.T) string {
	testpeer.RequireIntegration(t, "nats-server")
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/ensure-nats")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("nats-server unavailable: scripts/ensure-nats failed (%v): %s", err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func startTestNATS(t *testing.T) *natsServer {
	t.Helper()
	s, err := startNATS(natsBinary(t), false, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

func TestNATSReader(t *testing.T) {
	stream := "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n" +
		"MSG lt.t001 1 5\r\nhello\r\n" +
		"PING\r\n" +
		"MSG lt.t002 22 _INBOX.x 4\r\nab\r\n\r\n" + // the payload holds a CRLF
		"msg lt.t003 3 0\r\n\r\n" +
		"+OK\r\n" +
		"PONG\r\n" +
		"-ERR 'Unknown Protocol Operation'\r\n"
	want := []string{"INFO", "MSG lt.t001 hello", "PING", "MSG lt.t002 ab\r\n", "MSG lt.t003 ", "+OK", "PONG", "-ERR 'Unknown Protocol Operation'"}
	// One byte a read: every operation split across reads, as across
	// WebSocket messages.
	rd := newNATSReader(iotest.OneByteReader(strings.NewReader(stream)))
	for i, w := range want {
		op, err := rd.next()
		if err != nil {
			t.Fatalf("operation %d: %v", i, err)
		}
		got := op.kind
		switch op.kind {
		case "MSG":
			got += " " + string(op.subject) + " " + string(op.payload)
		case "-ERR":
			got += " " + string(op.arg)
		}
		if got != w {
			t.Errorf("operation %d = %q, want %q", i, got, w)
		}
	}
	if _, err := rd.next(); err != io.EOF {
		t.Errorf("after the stream: %v, want EOF", err)
	}
	for _, bad := range []string{"MSG a 1\r\nx\r\n", "MSG a 1 x\r\n", "MSG a 1 3\r\nabcd\r\n"} {
		if _, err := newNATSReader(strings.NewReader(bad)).next(); err == nil || err == io.EOF {
			t.Errorf("next(%q) = %v, want an error", bad, err)
		}
	}
}

func TestSearchPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   func(rate int) bool
		want string
	}{
		{"clean to the max", func(int) bool { return true }, "[100 200 400 800]"},
		{"fails at 400k", func(r int) bool { return r < 300 }, "[100 200 400 300 250]"},
		{"fails at 100k", func(r int) bool { return r < 40 }, "[100 50 25 37 43]"},
		{"fails everywhere", func(int) bool { return false }, "[100 50 25]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSearch(100, 800, 2, false)
			var steps []int
			for r := s.next(); r > 0 && len(steps) < 20; r = s.next() {
				steps = append(steps, r)
				s.record(r, tc.ok(r))
			}
			if got := fmt.Sprint(steps); got != tc.want {
				t.Errorf("steps = %s, want %s", got, tc.want)
			}
		})
	}
}

// With confirm, a failing rate is stepped again and fails only if the
// repeat fails too; a rate that fails once then passes counts as clean.
func TestSearchPlanConfirm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outcome func(rate, attempt int) bool
		want    string
	}{
		{"fails at 400k, twice", func(r, _ int) bool { return r < 300 }, "[100 200 400 400 300 300 250]"},
		{"400k fails once, then passes", func(r, n int) bool { return r != 400 || n > 1 }, "[100 200 400 400 800]"},
		{"fails everywhere", func(int, int) bool { return false }, "[100 100 50 50 25 25]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSearch(100, 800, 2, true)
			var steps []int
			tries := map[int]int{}
			for r := s.next(); r > 0 && len(steps) < 20; r = s.next() {
				steps = append(steps, r)
				tries[r]++
				s.record(r, tc.outcome(r, tries[r]))
			}
			if got := fmt.Sprint(steps); got != tc.want {
				t.Errorf("steps = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCommas(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := commas(in); got != want {
			t.Errorf("commas(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestNATSWebSocketClientsReceive: WebSocket clients of a real nats-server,
// each subscribed to two of three subjects, get every message the TCP
// publisher sends on them, with its send time.
func TestNATSWebSocketClientsReceive(t *testing.T) {
	s := startTestNATS(t)
	target := natsTarget{s}
	plan := [][]int{{0, 1}, {1, 2}, {2, 0}}
	fcs, err := target.dial(plan)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFan(fcs)
	if v, err := target.connections(); err != nil || v != float64(len(plan)) {
		t.Errorf("/varz connections = %v (%v), want %d", v, err, len(plan))
	}
	var from, to atomic.Int64
	from.Store(1)
	to.Store(math.MaxInt64)
	var wg sync.WaitGroup
	clients := make([]*natsClient, len(fcs))
	for i, fc := range fcs {
		c := fc.(*natsClient)
		c.pongs = make(chan struct{}, 1)
		clients[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); c.read(&from, &to) }()
	}
	pub, err := openNATSPub(s.client)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.close()
	const perTopic = 200
	for i := range perTopic {
		for topic := range 3 {
			pub.pub(topicName(topic), fmt.Appendf(nil, `{"t":%d,"pad":"%s"}`, time.Now().UnixNano(), strings.Repeat("x", i%50)))
		}
	}
	pub.pub("lt.other", []byte(`{"t":1}`)) // no subscriber
	// Once the publisher's PING is answered the server has queued every
	// message for the clients; a client's PONG then follows them.
	if err := pub.sync(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if err := c.ping(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.pongs:
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d: no PONG in 10s", i)
		}
	}
	closeFan(fcs)
	wg.Wait()
	for i, c := range clients {
		delivered, in := c.counts()
		want := int64(perTopic * len(plan[i]))
		h := newHist()
		c.lat.into(h)
		if delivered != want || in != want || h.TotalCount() != want {
			t.Errorf("client %d (topics %v): delivered %d, in window %d, latency samples %d; want %d each", i, plan[i], delivered, in, h.TotalCount(), want)
		}
		if max := time.Duration(h.Max()) * time.Microsecond; max <= 0 || max > 30*time.Second {
			t.Errorf("client %d: largest latency %v", i, max)
		}
	}
}

// TestNATSFanStep runs the benchmark's own step (paced publisher, readers,
// window, drain) against nats-server, briefly and slowly.
func TestNATSFanStep(t *testing.T) {
	s := startTestNATS(t)
	o := options{clients: 8, perClient: 2, topics: 4, payload: 100, seed: 1,
		warmup: 100 * time.Millisecond, window: 500 * time.Millisecond, drain: 5 * time.Second}
	r, err := fanStep(natsTarget{s}, o, 2000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Sent == 0 || r.Expected == 0 {
		t.Errorf("sent %d messages in the window, expected %d deliveries: want some", r.Sent, r.Expected)
	}
	if r.Lost != 0 || r.Delivered != r.Expected || r.Latency.Count != r.Delivered {
		t.Errorf("delivered %d of %d (lost %d), latency samples %d", r.Delivered, r.Expected, r.Lost, r.Latency.Count)
	}
	if r.Disconnects != 0 {
		t.Errorf("slow consumers: %v", r.Disconnects)
	}
}

func TestNATSMarkdownRatios(t *testing.T) {
	rep := natsReport{Settings: cmpSettings{Rate: 100_000, Modes: []string{"pinned", "shared"}, P99Bound: 50, Idle: 10_000, SearchMax: 3_200_000},
		Summary: []cmpSummary{
			{Target: "mdgate", Mode: "pinned", Steps: 5, CPUusPer: 8, P99: 4, Clean: true, SatTarget: 300_000, SatRate: 300_000, HarnessCPUs: 1},
			{Target: "nats", Mode: "pinned", Steps: 5, CPUusPer: 2, P99: 8, Clean: true, SatTarget: 1_200_000, SatRate: 1_200_000, FailTarget: 1_600_000, FailWhy: "p99 80 ms > 50ms", FailHarness: 0.97, HarnessCPUs: 1},
			{Target: "mdgate", Mode: "shared", Error: "boom"},
		},
		Idle: []idleResult{{Target: "mdgate", Conns: 10_000, KBPerConn: 15}, {Target: "nats", Conns: 10_000, KBPerConn: 45}},
	}
	md := natsMarkdown(rep, options{})
	containsAll(t, "natsMarkdown", md,
		"| server CPU per delivery at 100,000/s, pinned | 8.00 µs (0.00 cores) | 2.00 µs (0.00 cores) | **4.00** |",
		"| p99 at 100,000/s, pinned | 4.00 ms | 8.00 ms | **0.50** |",
		"| saturation, pinned (deliveries/s) | 300,000 (target 300,000, p99 0.0 ms) | 1,200,000 (target 1,200,000, p99 0.0 ms) | **0.25** |",
		"| RSS per subscribed idle connection | 15.0 KB",
		"| **0.33** |",
		"mdgate shared: **error**: boom.",
		"the harness used 0.97 of its 1 CPUs there",
	)
}

// containsAll fails t for each of wants that s, what made, lacks.
func containsAll(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, s)
		}
	}
}

func TestReplaceHTMLSection(t *testing.T) {
	path := t.TempDir() + "/r.html"
	os.WriteFile(path, []byte("<!doctype html><h1>standard</h1>"), 0o644)
	for _, f := range []func() error{
		func() error { return replaceHTMLSection(path, "one") },
		func() error { return replaceHTMLSection(path, "two") },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := os.ReadFile(path)
	b := string(raw)
	if strings.Count(b, natsHTMLBeginMark) != 1 || strings.Contains(b, "one") || !strings.Contains(b, "two") || !strings.HasPrefix(b, "<!doctype html><h1>standard</h1>\n") {
		t.Fatalf("after two updates:\n%s", b)
	}
}

func TestPairedRatios(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []int
		want string
	}{
		{"odd", []int{150_000, 200_000, 125_000}, []int{125_000, 125_000, 125_000}, "1.20 (1.00-1.60)"},
		{"even", []int{100_000, 200_000}, []int{100_000, 100_000}, "1.50 (1.00-2.00)"},
		{"no clean step left out", []int{0, 100_000}, []int{100_000, 50_000}, "2.00 (2.00-2.00)"},
		{"unequal lengths paired by index", []int{100_000, 100_000, 100_000}, []int{50_000}, "2.00 (2.00-2.00)"},
		{"none", []int{0}, []int{100_000}, "–"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pairedRatios(tc.a, tc.b); got != tc.want {
				t.Errorf("pairedRatios(%v, %v) = %q, want %q", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// TestSearchesRow: with -searches above 1 the table lists every search's
// saturation and the median of the paired ratios; with one it has no
// such row.
func TestSearchesRow(t *testing.T) {
	rep := natsReport{Settings: cmpSettings{Rate: 100_000, Modes: []string{"pinned"}, Searches: 3}, Summary: []cmpSummary{
		{Target: "mdgate", Mode: "pinned", Steps: 9, SatTarget: 150_000, SatEach: []int{150_000, 200_000, 125_000}},
		{Target: "nats", Mode: "pinned", Steps: 6, SatTarget: 125_000, SatEach: []int{125_000, 125_000, 125_000}},
	}}
	find := func(rows []cmpRow) *cmpRow {
		for i := range rows {
			if strings.HasPrefix(rows[i].what, "saturation, each of") {
				return &rows[i]
			}
		}
		return nil
	}
	r := find(cmpRows(rep))
	if r == nil {
		t.Fatal("no row for the searches")
	}
	if want := "150,000, 200,000, 125,000"; r.mdgate != want {
		t.Errorf("mdgate cell = %q, want %q", r.mdgate, want)
	}
	if want := "1.20 (1.00-1.60)"; r.ratio != want {
		t.Errorf("ratio cell = %q, want %q", r.ratio, want)
	}
	rep.Settings.Searches = 1
	if r := find(cmpRows(rep)); r != nil {
		t.Errorf("one search: row %+v, want none", *r)
	}
}

func TestBelowRows(t *testing.T) {
	rep := natsReport{Settings: cmpSettings{Rate: 100_000, Modes: []string{"pinned"}, Searches: 1, Below: []int{10_000, 40_000}}, Summary: []cmpSummary{
		{Target: "mdgate", Mode: "pinned", Steps: 3, Below: []belowStep{{Rate: 10_000, CPUusPer: 30, ServerCores: 0.3, P99: 3, P999: 5, Clean: true}, {Rate: 40_000, CPUusPer: 20, ServerCores: 0.8, P99: 10, P999: 20, Clean: true}}},
		{Target: "nats", Mode: "pinned", Steps: 3, Below: []belowStep{{Rate: 10_000, CPUusPer: 32, ServerCores: 0.32, P99: 2, P999: 3, Clean: true}}},
	}}
	rows := map[string]cmpRow{}
	for _, r := range cmpRows(rep) {
		rows[r.what] = r
	}
	for _, tc := range []struct{ what, mdgate, nat, ratio string }{
		{"server CPU per delivery at 10,000/s (below saturation), pinned", "30.00 µs (0.30 cores)", "32.00 µs (0.32 cores)", "0.94"},
		{"p99 at 10,000/s (below saturation), pinned", "3.00 ms (p99.9 5.00)", "2.00 ms (p99.9 3.00)", "1.50"},
		{"server CPU per delivery at 40,000/s (below saturation), pinned", "20.00 µs (0.80 cores)", "–", "–"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			r, ok := rows[tc.what]
			if !ok {
				t.Fatalf("no row %q", tc.what)
			}
			if got := [3]string{r.mdgate, r.nat, r.ratio}; got != [3]string{tc.mdgate, tc.nat, tc.ratio} {
				t.Errorf("row(%q) = %q, want %q", tc.what, got, [3]string{tc.mdgate, tc.nat, tc.ratio})
			}
		})
	}
}

func TestParseRates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{"10000,40000", []int{10000, 40000}, false},
		{" 5000 , ", []int{5000}, false},
		{"", nil, false},
		{"10k", nil, true},
		{"0", nil, true},
	} {
		got, err := parseRates(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("parseRates(%q) = %v, %v, want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
