package slowsubzmq_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/slowsub/slowsubzmq"
)

// pairNode is one gateway of a failover pair run as a process (as
// cmd/gateway/ha_test.go starts them, with a snapshot endpoint).
type pairNode struct {
	http, in, stamped, snapshot, state string
	cmd                                *exec.Cmd
	log                                *strings.Builder
}

func (n *pairNode) mode() string {
	resp, err := http.Get("http://" + n.http + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct {
		Proxy struct{ HA struct{ Mode string } }
	}
	json.NewDecoder(resp.Body).Decode(&h)
	return h.Proxy.HA.Mode
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startGatewayPair builds cmd/gateway and starts a primary and a backup on
// loopback (history of ev., --ha-heartbeat 250ms), settled.
func startGatewayPair(t *testing.T) (p, b *pairNode) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/gateway").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/gateway: %v\n%s", err, out)
	}
	addr := func() string { return "tcp://" + freeAddr(t) }
	p = &pairNode{http: freeAddr(t), in: addr(), stamped: addr(), snapshot: addr(), state: addr()}
	b = &pairNode{http: freeAddr(t), in: addr(), stamped: addr(), snapshot: addr(), state: addr()}
	start := func(n, peer *pairNode, role string) {
		n.cmd = exec.Command(bin, "--http", n.http, "--ingress-bind", n.in, "--egress-bind", "", "--stamped-bind", n.stamped,
			"--snapshot-bind", n.snapshot, "--history", "ev.=100000", "--log-json",
			"--ha-role", role, "--ha-bind", n.state, "--ha-peer", peer.state, "--ha-mirror", peer.stamped,
			"--ha-heartbeat", "250ms", "--ha-term-file", filepath.Join(dir, role+".term"))
		n.log = new(strings.Builder)
		n.cmd.Stderr = n.log
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			n.cmd.Process.Kill()
			n.cmd.Wait()
			if t.Failed() {
				t.Logf("%s's log:\n%s", role, n.log.String())
			}
		})
	}
	start(p, b, "primary")
	start(b, p, "backup")
	testpeer.Eventually(t, 20*time.Second, "primary active, backup passive", func() bool {
		return p.mode() == "active" && b.mode() == "passive"
	})
	return p, b
}

// TestPairKill9: a Sub given both gateways of a real pair (both stamped
// egresses, both snapshot endpoints, HeartbeatEvery 250ms) under a
// publisher feeding both. The active is killed with SIGKILL: the Sub hears
// no heartbeat for 3 beats and votes, which makes the standby active
// (nothing else asks it); it goes on there with the stamps it holds,
// repairing the gap from the standby's history. Every topic's sequence is
// intact: each update is the next seq, or comes with a *DivergedError;
// no other error; and every topic moves on under the new term.
func TestPairKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	const topics = 4
	p, b := startGatewayPair(t)
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
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			case <-tk.C:
			}
			for j := range topics {
				pub.SendMessage(fmt.Sprintf("ev.%d", j), fmt.Sprintf(`{"n":%d}`, i))
			}
		}
	}()
	defer func() { close(stopPub); pwg.Wait() }()

	type held struct {
		seq  uint64
		term uint16
	}
	var (
		mu       sync.Mutex
		last     = map[string]held{}
		bad      []string
		diverged int
		stats    slowsubzmq.FailoverStats
		repairs  slowsubzmq.RepairStats
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: p.stamped, Endpoints: []string{b.stamped}, Prefixes: []string{"ev."},
			HeartbeatEvery: 250 * time.Millisecond, Repair: p.snapshot, RepairEndpoints: []string{b.snapshot}, RepairTimeout: time.Second})
		if err != nil {
			t.Error(err)
			return
		}
		defer sub.Close()
		sub.SetTimeout(50 * time.Millisecond)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, err := sub.Recv()
			var div *slowsubzmq.DivergedError
			mu.Lock()
			stats, repairs = sub.FailoverStats(), sub.RepairStats()
			switch {
			case errors.Is(err, zmq.Errno(syscall.EAGAIN)):
			case errors.As(err, &div):
				diverged++
				last[m.Topic] = held{m.Stamp.Seq, m.Stamp.Term}
			case err != nil:
				bad = append(bad, err.Error())
				mu.Unlock()
				return
			default:
				prev, ok := last[m.Topic]
				if ok && (m.Stamp.Seq != prev.seq+1 || m.Stamp.Term < prev.term) {
					bad = append(bad, fmt.Sprintf("%s: %d/%d after %d/%d", m.Topic, m.Stamp.Seq, m.Stamp.Term, prev.seq, prev.term))
				}
				last[m.Topic] = held{m.Stamp.Seq, m.Stamp.Term}
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stop); <-done }()
	marks := func() map[string]held {
		mu.Lock()
		defer mu.Unlock()
		c := map[string]held{}
		for k, v := range last {
			c[k] = v
		}
		return c
	}
	testpeer.Eventually(t, 20*time.Second, "the Sub reading every topic", func() bool {
		m := marks()
		for _, h := range m {
			if h.seq < 50 {
				return false
			}
		}
		return len(m) == topics
	})
	var oldTerm uint16
	for _, h := range marks() {
		oldTerm = max(oldTerm, h.term)
	}
	killed := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	testpeer.Eventually(t, 20*time.Second, "the backup voted in", func() bool { return b.mode() == "active" })
	takeover := time.Since(killed)
	before := marks()
	testpeer.Eventually(t, 20*time.Second, "every topic moving on under the new term", func() bool {
		for topic, h := range marks() {
			if h.term <= oldTerm || h.seq <= before[topic].seq+20 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, s := range bad {
		t.Error(s)
	}
	if stats.Votes == 0 {
		t.Errorf("FailoverStats %+v: no vote", stats)
	}
	t.Logf("takeover %v after kill -9 (polling /healthz); %d diverged; %+v; %+v", takeover.Round(time.Millisecond), diverged, stats, repairs)
}
