package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// cpuTicks is a process's user plus system time in clock ticks
// (/proc/PID/stat fields 14 and 15).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("gateway stat: %v", err)
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

const clockTicks = 100 // USER_HZ: what /proc/PID/stat counts in on Linux

type healthz struct {
	Status string
	Proxy  struct {
		AcceptExhausted []string `json:"accept_exhausted"`
		Endpoints       struct{ Egress []string }
	}
}

// getHealth GETs /healthz on a fresh connection with a 2 s bound.
func getHealth(addr string) (healthz, error) {
	var h healthz
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("status %s", resp.Status)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// TestAcceptFloodAtDescriptorLimit runs the binary with 256 descriptors and
// holds 300 idle TCP connections to its ingress: the ingress listener sheds
// what it cannot accept instead of spinning an I/O thread on failed accepts,
// a publisher connected before the flood gets every message through to a
// subscriber with no gap, /healthz keeps answering and names the listener,
// and once the connections go a new publisher reaches a subscriber.
func TestAcceptFloodAtDescriptorLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found: cannot run the gateway at a 256-descriptor limit")
	}
	testpeer.Require(t)
	httpAddr, ingress := freeAddr(t), "tcp://"+freeAddr(t)
	cmd := exec.Command(prlimit, "--nofile=256:256", binary, "--http", httpAddr, "--ingress-bind", ingress,
		"--egress-bind", "tcp://127.0.0.1:*", "--stamped-bind", "tcp://127.0.0.1:*", "--snapshot-bind", "", "--log-json")
	stderr := &testpeer.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("gateway log (last 4 KB):\n%s", tail(stderr.String(), 4096))
		}
	})
	var h healthz
	testpeer.Eventually(t, 10*time.Second, "/healthz", func() bool {
		h, err = getHealth(httpAddr)
		return err == nil
	})
	egress := h.Proxy.Endpoints.Egress[0]

	// A good publisher and subscriber, connected before the flood.
	good := startGoodStream(t, ingress, egress)

	// 300 idle connections, never a byte sent, held by an attacker that
	// dials again whenever the gateway drops one (shed, or past the
	// handshake timeout) or refuses it, every 100 ms per connection.
	stop := make(chan struct{})
	var attackers sync.WaitGroup
	var mu sync.Mutex
	var held, dials, refused int
	for range 300 {
		attackers.Add(1)
		go func() {
			defer attackers.Done()
			pace := time.NewTicker(100 * time.Millisecond)
			defer pace.Stop()
			for {
				c, err := net.DialTimeout("tcp", strings.TrimPrefix(ingress, "tcp://"), 2*time.Second)
				mu.Lock()
				dials++
				if err != nil {
					refused++
				} else {
					held++
				}
				mu.Unlock()
				if err == nil {
					go func() { <-stop; c.Close() }()
					io.Copy(io.Discard, c) // the gateway's greeting, then blocks until it drops us or stop closes c
					c.Close()
					mu.Lock()
					held--
					mu.Unlock()
				}
				select {
				case <-stop:
					return
				case <-pace.C:
				}
			}
		}()
	}
	stopAttack := sync.OnceFunc(func() { close(stop); attackers.Wait() })
	defer stopAttack()
	testpeer.Eventually(t, wait, "300 dials", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return dials >= 300
	})

	// A 2 s window while they are held: /healthz on a fresh connection
	// again and again, and the gateway's CPU time over the window.
	pid := cmd.Process.Pid
	start, t0 := cpuTicks(t, pid), time.Now()
	var ok, failed, reported int
	var lastErr error
	pace := time.NewTicker(20 * time.Millisecond) // pacing the probe, not synchronisation
	defer pace.Stop()
	for ; time.Since(t0) < 2*time.Second; <-pace.C {
		h, err := getHealth(httpAddr)
		switch {
		case err != nil:
			failed++
			lastErr = err
		default:
			ok++
			if slices.Contains(h.Proxy.AcceptExhausted, ingress) && h.Status == "degraded" {
				reported++
			}
		}
	}
	cpu := float64(cpuTicks(t, pid)-start) / clockTicks / time.Since(t0).Seconds()
	mu.Lock()
	t.Logf("attacker: %d dials, %d refused, %d connections held now", dials, refused, held)
	mu.Unlock()
	t.Logf("while held: /healthz answered %d, failed %d (last error %v), reported the exhausted ingress %d times; gateway CPU %.0f%% of a core",
		ok, failed, lastErr, reported, 100*cpu)
	if failed > 0 || ok == 0 {
		t.Errorf("/healthz failed %d of %d times while the idle connections were held (last: %v), want every answer within 2 s", failed, ok+failed, lastErr)
	}
	if reported == 0 {
		t.Errorf("/healthz never reported %s in accept_exhausted with status degraded", ingress)
	}
	if cpu >= 0.5 {
		t.Errorf("gateway CPU %.0f%% of a core while idle connections were held, want under 50%%", 100*cpu)
	}
	if f, err := promscrape.Scrape(context.Background(), "http://"+httpAddr+"/metrics"); err != nil {
		t.Errorf("/metrics while held: %v", err)
	} else {
		shed, _ := f.Value("mdgate_zmq_accept_shed_total", "socket", "ingress")
		episodes, _ := f.Value("mdgate_zmq_accept_exhausted_total", "socket", "ingress")
		now, _ := f.Value("mdgate_zmq_accept_exhausted", "socket", "ingress")
		t.Logf("metrics while held: %v connections shed, %v episodes, exhausted now %v", shed, episodes, now)
		if shed < 1 || episodes < 1 {
			t.Errorf("mdgate_zmq_accept_shed_total{socket=ingress} = %v, mdgate_zmq_accept_exhausted_total = %v, want at least 1 each", shed, episodes)
		}
	}

	// The connections go; the good publisher stops, and its subscriber has
	// every message it sent, in order.
	stopAttack()
	good.check(t)
	testpeer.Eventually(t, 15*time.Second, "/healthz with no exhausted listener", func() bool {
		h, err := getHealth(httpAddr)
		return err == nil && h.Status == "ok" && len(h.Proxy.AcceptExhausted) == 0
	})
	sub := testpeer.Start(t, "sub", map[string]any{"endpoint": egress, "prefixes": []string{"iso."}, "count": 1})
	sub.Next(t, wait) // ready
	testpeer.Start(t, "pub", map[string]any{"endpoint": ingress, "messages": [][]string{{"iso.x", "after the flood"}},
		"repeat": 100, "interval_ms": 20})
	got := sub.Until(t, "done", wait)
	if len(got) != 1 || got[0].Strings()[1] != "after the flood" {
		t.Fatalf("subscriber got %v after the listener came back, want one message", got)
	}
}

// goodStream is a publisher connected to a gateway's ingress and a
// subscriber on its egress (pebbe sockets, one goroutine each on a locked
// thread). Once the subscriber sees the publisher's sync messages, the
// publisher sends good.seq 0, 1, 2, ... every 5 ms until check.
type goodStream struct {
	stop, pubDone, subDone chan struct{}
	synced                 chan struct{}
	sent                   atomic.Int64
	mu                     sync.Mutex
	got                    []int
	errs                   chan error
	stopSub                chan struct{}
}

func startGoodStream(t *testing.T, ingress, egress string) *goodStream {
	t.Helper()
	g := &goodStream{stop: make(chan struct{}), pubDone: make(chan struct{}), subDone: make(chan struct{}),
		synced: make(chan struct{}), errs: make(chan error, 2), stopSub: make(chan struct{})}
	subReady := make(chan struct{})
	go func() { // the subscriber
		defer close(g.subDone)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		sub, err := zmq.NewSocket(zmq.SUB)
		if err != nil {
			g.errs <- err
			close(subReady)
			return
		}
		defer sub.Close()
		sub.SetLinger(0)
		sub.SetRcvtimeo(50 * time.Millisecond)
		if err := errors.Join(sub.SetSubscribe("good."), sub.Connect(egress)); err != nil {
			g.errs <- err
			close(subReady)
			return
		}
		close(subReady)
		synced := false
		for {
			select {
			case <-g.stopSub:
				return
			default:
			}
			msg, err := sub.RecvMessage(0)
			if err != nil || len(msg) != 2 {
				continue // the receive timeout: look at stopSub again
			}
			switch msg[0] {
			case "good.sync":
				if !synced {
					synced = true
					close(g.synced)
				}
			case "good.seq":
				n, _ := strconv.Atoi(msg[1])
				g.mu.Lock()
				g.got = append(g.got, n)
				g.mu.Unlock()
			}
		}
	}()
	<-subReady
	go func() { // the publisher
		defer close(g.pubDone)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		pub, err := zmq.NewSocket(zmq.PUB)
		if err != nil {
			g.errs <- err
			return
		}
		defer pub.Close()
		pub.SetLinger(5 * time.Second) // what is queued at the end still goes
		if err := pub.Connect(ingress); err != nil {
			g.errs <- err
			return
		}
		pace := time.NewTicker(5 * time.Millisecond) // the publisher's rate, not synchronisation
		defer pace.Stop()
		synced := g.synced
		for {
			select {
			case <-g.stop:
				return
			case <-synced:
				synced = nil // from now on numbered messages, one a tick
				continue
			case <-pace.C:
			}
			if synced != nil {
				pub.SendMessage("good.sync", "")
				continue
			}
			n := g.sent.Load()
			if _, err := pub.SendMessage("good.seq", strconv.FormatInt(n, 10)); err != nil {
				g.errs <- err
				return
			}
			g.sent.Add(1)
		}
	}()
	t.Cleanup(func() {
		g.stopOnce()
		close(g.stopSub)
		<-g.subDone
	})
	select {
	case <-g.synced:
	case err := <-g.errs:
		t.Fatalf("good stream: %v", err)
	case <-time.After(wait):
		t.Fatal("the good subscriber never saw the good publisher")
	}
	return g
}

func (g *goodStream) stopOnce() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.pubDone
}

// check stops the publisher and asserts the subscriber got 0..sent-1, each
// once, in order.
func (g *goodStream) check(t *testing.T) {
	t.Helper()
	g.stopOnce()
	sent := int(g.sent.Load())
	// Poll until it has them all or wait runs out (then report the gaps).
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); <-poll.C {
		g.mu.Lock()
		n := len(g.got)
		g.mu.Unlock()
		if n >= sent {
			break
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var gaps []string
	for i, n := range g.got {
		if n != i {
			gaps = append(gaps, fmt.Sprintf("#%d is %d", i, n))
			if len(gaps) == 5 {
				break
			}
		}
	}
	t.Logf("good publisher connected before the flood: sent %d, subscriber got %d", sent, len(g.got))
	if len(g.got) != sent || len(gaps) > 0 {
		t.Errorf("good subscriber got %d of %d messages, want every one in order (first misplaced: %v)", len(g.got), sent, gaps)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestOpenFileLimitRaisedAndLogged: started with a soft limit of 256 under
// a hard one of 1024, the gateway runs with (about) 1024 and says so at
// start.
func TestOpenFileLimitRaisedAndLogged(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found: cannot start the gateway with a low soft limit")
	}
	cmd := exec.Command(prlimit, "--nofile=256:1024", binary, "--http", freeAddr(t), "--ingress-bind", "tcp://127.0.0.1:*",
		"--egress-bind", "tcp://127.0.0.1:*", "--stamped-bind", "tcp://127.0.0.1:*", "--snapshot-bind", "", "--log-json")
	stderr := &testpeer.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var line struct {
		Message    string
		Soft, Hard uint64
	}
	testpeer.Eventually(t, wait, "the open-file limit logged", func() bool {
		for _, l := range strings.Split(stderr.String(), "\n") {
			if json.Unmarshal([]byte(l), &line) == nil && strings.HasPrefix(line.Message, "open-file limit") {
				return true
			}
		}
		return false
	})
	// Go's runtime raises it to the hard limit minus one (go.dev/issue/46279).
	if line.Soft < 1023 || line.Hard != 1024 {
		t.Errorf("logged open-file limit soft %d hard %d, want at least 1023 and 1024", line.Soft, line.Hard)
	}
	testpeer.Eventually(t, wait, "the running gateway's limit", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); strings.HasPrefix(l, "Max open files") && len(f) >= 5 {
				soft, _ := strconv.Atoi(f[3])
				return soft >= 1023
			}
		}
		return false
	})
}
