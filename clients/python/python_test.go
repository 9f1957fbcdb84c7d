// Package pyclient_test tests the Python client (clients/python) with
// Debian's python3-zmq: its unit checks, and the client against a gateway
// run in process.
package pyclient_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testgw"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
)

const wait = 30 * time.Second

// python runs /usr/bin/python3 on a file of this directory (no .pyc files
// left behind), killed when the test ends.
func python(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	testpeer.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, testpeer.Python, append([]string{"-B"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH=")
	return cmd
}

// startPython starts python(t, args...) with its stdout piped to the test
// and its stderr kept, to show when the test fails.
func startPython(t *testing.T, args ...string) (cmd *exec.Cmd, stdout io.ReadCloser, stderr *testpeer.Buffer) {
	t.Helper()
	cmd = python(t, args...)
	stderr = &testpeer.Buffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr
}

// TestUnit runs the client's own checks (test_mdgate.py: the wire formats
// and the sequence rule, without a gateway).
func TestUnit(t *testing.T) {
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	out, err := python(t, "-m", "unittest", "discover", "-v", "-s", dir, "-p", "test_*.py").CombinedOutput()
	if err != nil {
		t.Fatalf("python unit checks: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out[bytes.LastIndex(out, []byte("-----")):]))
}

// TestFollowRepairsToPublishersSequence: a gateway keeping the history of
// py. topics; a Python client subscribed with a receive HWM of 10 that
// reads slowly, so the gateway's XPUB (HWM 100) drops most of a burst of
// 1 KB updates. The client starts from the snapshot (seq 1 of each topic),
// repairs every gap through SINCE, and ends with exactly the publisher's
// sequence of every topic, payloads included.
func TestFollowRepairsToPublishersSequence(t *testing.T) {
	const (
		topics = 4
		n      = 5000 // updates a topic in the burst
		size   = 1000 // payload bytes
	)
	testpeer.Require(t)
	c := testgw.Config("127.0.0.1:0")
	c.Proxy.EgressHWM = 100
	c.SnapshotBind = "tcp://127.0.0.1:*"
	c.Cache.History = []lvc.HistoryRule{{Prefix: "py.", MaxCount: 100_000, MaxBytes: 64 << 20}}
	g, _ := testgw.Start(t, c, 2*time.Second)
	ep := g.Proxy().Endpoints()

	pub := startPublisher(t, ep.Ingress[0], g.Cache(), topics, size)
	pub.warmUp(t) // seq 1 of every topic, cached

	cmd, stdout, stderr := startPython(t, "follow.py", "--json", "--snapshot", g.SnapshotEndpoint(), "--prefix", "py.t",
		"--rcvhwm", "10", "--slow-every", "100", "--slow-ms", "2",
		"--until-seq", fmt.Sprint(n), "--topics", fmt.Sprint(topics), ep.Stamped[0])
	exited := make(chan error, 1)
	lines := make(chan map[string]any, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err == nil {
				lines <- m
			}
		}
		exited <- cmd.Wait()
	}()
	next := func() map[string]any {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("follow.py exited (%v) early:\n%s", <-exited, stderr.String())
			}
			return m
		case <-time.After(wait):
			t.Fatalf("follow.py: nothing for %v:\n%s", wait, stderr.String())
		}
		return nil
	}

	// Every update the client hands out, checked as it comes.
	last := map[string]uint64{}
	sources := map[string]int{}
	var stats map[string]any
	check := func(m map[string]any) {
		topic, seq, src := m["t"].(string), uint64(m["s"].(float64)), m["src"].(string)
		if want := last[topic] + 1; seq != want || m["gap"].(bool) {
			t.Fatalf("%s: seq %d (%s, gap %v), want %d: not the publisher's sequence", topic, seq, src, m["gap"], want)
		}
		if want := fmt.Sprintf("%s:%d:", topic, seq); !strings.HasPrefix(m["v"].(string), want) {
			t.Fatalf("%s seq %d: value %q, want it to start %q", topic, seq, m["v"], want)
		}
		if seq == 1 && src != "snapshot" {
			t.Errorf("%s seq 1 came from %s, want the snapshot", topic, src)
		}
		last[topic] = seq
		sources[src]++
	}
	for started := false; !started; {
		m := next()
		if m["event"] == "started" {
			started = true
		} else if m["event"] == nil {
			check(m)
		}
	}
	begin := time.Now()
	pub.burst(n)
	for stats == nil {
		m := next()
		switch m["event"] {
		case nil:
			check(m)
		case "done":
			stats = m["stats"].(map[string]any)
		}
	}
	pub.stop()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("follow.py: %v\n%s", err, stderr.String())
		}
	case <-time.After(wait):
		t.Errorf("follow.py did not exit after done")
	}
	for i := range topics {
		if topic := fmt.Sprintf("py.t%d", i); last[topic] < n {
			t.Errorf("%s: the client ended at seq %d, want at least %d", topic, last[topic], n)
		}
	}
	t.Logf("%d topics x %d updates of %d bytes in %v, every one in sequence: by source %v; client stats %v",
		topics, n, size, time.Since(begin).Round(time.Millisecond), sources, stats)
	if sources["repair"] == 0 {
		t.Errorf("no update came from a repair (sources %v): nothing was dropped, the test proves nothing", sources)
	}
	if got := counter(t, g, "mdgate_snapshot_since_requests_total", "recovered"); got == 0 {
		t.Errorf("mdgate_snapshot_since_requests_total{result=recovered} = 0, want the client's repairs counted")
	}
}

// counter reads a counter of the gateway's registry by its result label.
func counter(t *testing.T, g *gateway.Gateway, name, result string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{result=%q}", name, result)
	return 0
}

// publisher is a PUB into the gateway's ingress, in a goroutine that owns
// it. It never drops (SNDHWM 0), so the gateway's seq of each topic is the
// publisher's count, which each payload carries: "topic:seq:xxx...".
type publisher struct {
	topics  int
	cache   *lvc.Cache
	cmds    chan func(send func(i int))
	done    chan struct{}
	once    sync.Once
	trickle bool // owned by the goroutine: after the burst, one update a topic every millisecond
}

func startPublisher(t *testing.T, endpoint string, cache *lvc.Cache, topics, size int) *publisher {
	p := &publisher{topics: topics, cache: cache, cmds: make(chan func(func(int))), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(p.done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s, err := zmq.NewSocket(zmq.PUB)
		if err == nil {
			err = errors.Join(s.SetLinger(0), s.SetSndhwm(0), s.Connect(endpoint))
		}
		if err != nil {
			ready <- err
			return
		}
		defer s.Close()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		// The ingress takes nothing until its subscription reaches this PUB:
		// probe until the gateway has cached one.
		for deadline := time.Now().Add(wait); ; <-tick.C {
			if _, ok := cache.Get("probe"); ok {
				break
			}
			if time.Now().After(deadline) {
				ready <- errors.New("the gateway's ingress took no message")
				return
			}
			s.SendMessage("probe", "1")
		}
		ready <- nil
		tick.Reset(time.Millisecond)
		seqs := make([]int, topics)
		pad := strings.Repeat("x", size)
		send := func(i int) {
			seqs[i]++
			topic := fmt.Sprintf("py.t%d", i)
			v := fmt.Sprintf("%s:%d:", topic, seqs[i])
			if _, err := s.SendMessage(topic, v+pad[len(v):]); err != nil {
				t.Errorf("publish: %v", err)
			}
		}
		for {
			select {
			case cmd, ok := <-p.cmds:
				if !ok {
					return
				}
				cmd(send)
			case <-tick.C:
				if p.trickle {
					for i := range topics {
						send(i)
					}
				}
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

// warmUp publishes seq 1 of every topic and waits until they are cached.
func (p *publisher) warmUp(t *testing.T) {
	p.cmds <- func(send func(int)) {
		for i := range p.topics {
			send(i)
		}
	}
	testpeer.Eventually(t, wait, "seq 1 of every topic cached", func() bool {
		for i := range p.topics {
			if m, ok := p.cache.Get(fmt.Sprintf("py.t%d", i)); !ok || m.Stamp.Seq != 1 {
				return false
			}
		}
		return true
	})
}

// burst publishes seqs 2 to n of every topic at full speed, then trickles.
func (p *publisher) burst(n int) {
	p.cmds <- func(send func(int)) {
		for range n - 1 {
			for i := range p.topics {
				send(i)
			}
		}
		p.trickle = true
	}
}

func (p *publisher) stop() {
	p.once.Do(func() { close(p.cmds) })
	<-p.done
}
