package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpeer"
)

// haMsg is what the failover test's clients read of each value.
type haMsg struct {
	Op, Topic, Epoch                               string
	Seq, Missed                                    uint64
	Term                                           uint16
	Replay, Recovered, Gap, Diverged, Stale, Error bool
}

// haClient is a WebSocket client that moves to the next gateway of its
// list when its connection ends, resumes there with every seq it holds,
// and checks each topic's sequence: each value must be the next seq, or
// carry a flag saying why not (gap, diverged). Its own goroutine reads.
type haClient struct {
	urls []string
	mu   sync.Mutex
	last map[string]haMsg // by topic
	bad  []string         // silent gaps, duplicates
	gaps, diverged, recovered int
	resumedAt                 time.Time // when the first value after a reconnect arrived
	lostAt                    time.Time
}

func (c *haClient) run(stop <-chan struct{}) {
	for i := 0; ; i++ {
		url := c.urls[i%len(c.urls)]
		var ws *websocket.Conn
		for ws == nil {
			select {
			case <-stop:
				return
			default:
			}
			conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
					time.Sleep(20 * time.Millisecond) // a standby: ask again (each ask is a vote); pacing, not synchronisation
					continue
				}
				url = c.urls[(i+1)%len(c.urls)] // dead: the other one
				i++
				time.Sleep(20 * time.Millisecond)
				continue
			}
			ws = conn
		}
		c.mu.Lock()
		resume := map[string]any{}
		for topic, m := range c.last {
			resume[topic] = map[string]any{"seq": m.Seq, "epoch": m.Epoch}
		}
		c.mu.Unlock()
		req, _ := json.Marshal(map[string]any{"op": "subscribe", "prefixes": []string{"ev."}, "resume": resume})
		ws.WriteMessage(websocket.TextMessage, req)
		done := make(chan struct{})
		go func() {
			select {
			case <-stop:
				ws.Close()
			case <-done:
			}
		}()
		first := true
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				break
			}
			for _, line := range strings.Split(string(b), "\n") {
				var m haMsg
				json.Unmarshal([]byte(line), &m)
				if m.Op != "update" && m.Op != "snapshot" {
					continue
				}
				if first && !c.lostAt.IsZero() {
					c.mu.Lock()
					c.resumedAt = time.Now()
					c.mu.Unlock()
				}
				first = false
				c.check(m)
			}
		}
		close(done)
		ws.Close()
		select {
		case <-stop:
			return
		default:
		}
		c.mu.Lock()
		if c.lostAt.IsZero() {
			c.lostAt = time.Now()
		}
		c.mu.Unlock()
	}
}

func (c *haClient) check(m haMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]haMsg{}
	}
	prev, ok := c.last[m.Topic]
	switch {
	case m.Gap:
		c.gaps++
	case m.Diverged:
		c.diverged++
	case !ok:
	case m.Epoch != prev.Epoch:
		c.bad = append(c.bad, fmt.Sprintf("%s: epoch %s after %s without a gap flag", m.Topic, m.Epoch, prev.Epoch))
	case m.Seq != prev.Seq+1:
		c.bad = append(c.bad, fmt.Sprintf("%s: seq %d (term %d) after %d (term %d), unflagged", m.Topic, m.Seq, m.Term, prev.Seq, prev.Term))
	case m.Term < prev.Term:
		c.bad = append(c.bad, fmt.Sprintf("%s: term %d after %d", m.Topic, m.Term, prev.Term))
	}
	if m.Recovered {
		c.recovered++
	}
	c.last[m.Topic] = m
}

// TestFailoverKill9: a pair under load, the active killed with SIGKILL:
// the standby takes over when the clients ask it (their votes), every
// client resumes on it, and every topic's sequence at every client goes
// on with no silent gap: each break is flagged (recovered, gap or
// diverged). Reports takeover and resume times.
func TestFailoverKill9(t *testing.T) {
	const clients, topics = 20, 10
	dir := t.TempDir()
	addr := func() string { return "tcp://" + freeAddr(t) }
	type node struct {
		http, in, stamped, state string
		cmd                      *exec.Cmd
	}
	p := &node{http: freeAddr(t), in: addr(), stamped: addr(), state: addr()}
	b := &node{http: freeAddr(t), in: addr(), stamped: addr(), state: addr()}
	start := func(n, peer *node, role string) {
		n.cmd = exec.Command(binary, "--http", n.http, "--ingress-bind", n.in, "--egress-bind", "", "--stamped-bind", n.stamped,
			"--snapshot-bind", "", "--history", "ev.=100000", "--log-json",
			"--ha-role", role, "--ha-bind", n.state, "--ha-peer", peer.state, "--ha-mirror", peer.stamped,
			"--ha-heartbeat", "250ms", "--ha-term-file", filepath.Join(dir, role+".term"))
		n.cmd.Stderr = new(strings.Builder)
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.cmd.Process.Kill(); n.cmd.Wait() })
	}
	start(p, b, "primary")
	start(b, p, "backup")
	mode := func(n *node) string {
		resp, err := http.Get("http://" + n.http + "/healthz")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		var h struct{ Proxy struct{ HA struct{ Mode string } } }
		json.NewDecoder(resp.Body).Decode(&h)
		return h.Proxy.HA.Mode
	}
	testpeer.Eventually(t, 20*time.Second, "primary active, backup passive", func() bool {
		return mode(p) == "active" && mode(b) == "passive"
	})

	// The publisher: one PUB connected to both gateways, about 4k msgs/s.
	stopPub := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		runtime.LockOSThread()
		pub, _ := zmq.NewSocket(zmq.PUB)
		defer pub.Close()
		pub.SetLinger(0)
		pub.Connect(p.in)
		pub.Connect(b.in)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			case <-tick.C:
			}
			for j := range 4 {
				pub.SendMessage(fmt.Sprintf("ev.%d", (i*4+j)%topics), fmt.Sprintf(`{"n":%d}`, i))
			}
		}
	}()
	defer func() { close(stopPub); pwg.Wait() }()

	stop := make(chan struct{})
	var cwg sync.WaitGroup
	cs := make([]*haClient, clients)
	for i := range cs {
		cs[i] = &haClient{urls: []string{"ws://" + p.http + "/ws", "ws://" + b.http + "/ws"}}
		cwg.Add(1)
		go func() { defer cwg.Done(); cs[i].run(stop) }()
	}
	defer func() { close(stop); cwg.Wait() }()
	testpeer.Eventually(t, 20*time.Second, "every client reading every topic", func() bool {
		for _, c := range cs {
			c.mu.Lock()
			n := len(c.last)
			c.mu.Unlock()
			if n < topics {
				return false
			}
		}
		return true
	})

	killed := time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	testpeer.Eventually(t, 20*time.Second, "the backup active", func() bool { return mode(b) == "active" })
	takeover := time.Since(killed)
	testpeer.Eventually(t, 20*time.Second, "every client resumed on the backup", func() bool {
		for _, c := range cs {
			c.mu.Lock()
			ok := !c.resumedAt.IsZero()
			c.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})
	// After the resume, each client must see every topic move on under the new term.
	marks := make([]map[string]uint64, len(cs))
	for i, c := range cs {
		c.mu.Lock()
		marks[i] = map[string]uint64{}
		for topic, m := range c.last {
			marks[i][topic] = m.Seq
		}
		c.mu.Unlock()
	}
	testpeer.Eventually(t, 20*time.Second, "every topic moving at every client after the takeover", func() bool {
		for i, c := range cs {
			c.mu.Lock()
			for topic, m := range c.last {
				if m.Seq <= marks[i][topic]+5 || m.Term < 2 {
					c.mu.Unlock()
					return false
				}
			}
			c.mu.Unlock()
		}
		return true
	})
	var resumes []time.Duration
	recovered, gaps, diverged := 0, 0, 0
	for i, c := range cs {
		c.mu.Lock()
		for _, bad := range c.bad {
			t.Errorf("client %d: %s", i, bad)
		}
		resumes = append(resumes, c.resumedAt.Sub(killed))
		recovered, gaps, diverged = recovered+c.recovered, gaps+c.gaps, diverged+c.diverged
		c.mu.Unlock()
	}
	slices.Sort(resumes)
	t.Logf("takeover %v after kill -9 (seen by polling /healthz); resume after the kill p50 %v, max %v; recovered %d, gap %d, diverged %d topic breaks over %d clients",
		takeover.Round(time.Millisecond), resumes[len(resumes)/2].Round(time.Millisecond), resumes[len(resumes)-1].Round(time.Millisecond),
		recovered, gaps, diverged, clients)
}
