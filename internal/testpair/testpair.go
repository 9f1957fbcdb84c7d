package testpair

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpeer"
)

// Build builds cmd/gateway into tb's temporary directory and returns its
// path.
func Build(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mdgate/mdgate/cmd/gateway").CombinedOutput(); err != nil {
		tb.Fatalf("go build cmd/gateway: %v\n%s", err, out)
	}
	return bin
}

var (
	givenMu sync.Mutex
	given   = map[string]bool{} // every address FreeAddr has returned in this process
)

// FreeAddr returns a free loopback host:port, never one it returned before
// in this process: the kernel can hand the port of a listener just closed
// to the next bind of port 0, and a gateway given the same port for two
// endpoints exits (make test saw a backup's state and stamped endpoints on
// one port). Another process may still take the port before it is bound:
// StartPair retries on that.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	givenMu.Lock()
	defer givenMu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !given[addr] {
			given[addr] = true
			return addr
		}
	}
}

// Node is one gateway process: its endpoints, how it was started, and the
// running command (Cmd is replaced by Restart).
type Node struct {
	HTTP, In, Stamped, Snapshot, State string // Snapshot "": no snapshot endpoint
	Bin                                string
	Args                               []string
	Cmd                                *exec.Cmd
	log                                *testpeer.Buffer
	exited                             chan struct{} // closed once Cmd has exited and is reaped
}

// NewNode picks free endpoints for a gateway (a snapshot endpoint too when
// snapshot is set).
func NewNode(tb testing.TB, bin string, snapshot bool) *Node {
	addr := func() string { return "tcp://" + FreeAddr(tb) }
	n := &Node{HTTP: FreeAddr(tb), In: addr(), Stamped: addr(), State: addr(), Bin: bin}
	if snapshot {
		n.Snapshot = addr()
	}
	return n
}

// PairArgs are the flags of one gateway of a pair whose peer's state
// endpoint is peerState and stamped egress peerStamped: history on ev.,
// --ha-heartbeat 250ms, the term file in dir.
func (n *Node) PairArgs(role, peerState, peerStamped, dir string) []string {
	return []string{"--http", n.HTTP, "--ingress-bind", n.In, "--egress-bind", "", "--stamped-bind", n.Stamped,
		"--snapshot-bind", n.Snapshot, "--history", "ev.=100000", "--log-json",
		"--ha-role", role, "--ha-bind", n.State, "--ha-peer", peerState, "--ha-mirror", peerStamped,
		"--ha-heartbeat", "250ms", "--ha-term-file", filepath.Join(dir, role+".term")}
}

// Start runs the gateway with args; it is killed and reaped when the test
// ends (continued first, should a test have stopped it), its log shown if
// the test failed.
func (n *Node) Start(tb testing.TB, args []string) {
	tb.Helper()
	n.Args = args
	n.Restart(tb)
}

// Restart runs the gateway again with the args it was started with.
func (n *Node) Restart(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command(n.Bin, n.Args...)
	log := new(testpeer.Buffer)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // the one Wait: Kill and the cleanup wait for exited
	n.Cmd, n.log, n.exited = cmd, log, exited
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-exited
		if tb.Failed() {
			tb.Logf("gateway %s's log:\n%s", n.HTTP, log.String())
		}
	})
}

// Kill sends the node's gateway SIGKILL (no shutdown code runs) and reaps
// it.
func (n *Node) Kill(tb testing.TB) {
	tb.Helper()
	if err := n.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatal(err)
	}
	<-n.exited
}

// lostPort reports whether the gateway has exited because one of its
// endpoints was taken: a free port picked by FreeAddr can be handed to
// another process before the gateway binds it.
func (n *Node) lostPort() bool {
	select {
	case <-n.exited:
		return strings.Contains(n.log.String(), "address already in use")
	default:
		return false
	}
}

// Takeover kills the active p (Kill) and waits, within 20 s, until b is
// active (what names that wait); it returns when p was killed and the
// time from then until b was seen active.
func Takeover(tb testing.TB, p, b *Node, what string) (killed time.Time, takeover time.Duration) {
	tb.Helper()
	killed = time.Now()
	p.Kill(tb)
	testpeer.Eventually(tb, 20*time.Second, what, func() bool { return b.Mode() == "active" })
	return killed, time.Since(killed)
}

// Health is the failover part of a gateway's /healthz.
type Health struct {
	Role      string
	Mode      string
	Term      uint64
	PeerAlive bool `json:"peer_alive"`
}

// Health reads the node's /healthz (zero when it does not answer).
func (n *Node) Health() Health {
	resp, err := http.Get("http://" + n.HTTP + "/healthz")
	if err != nil {
		return Health{}
	}
	defer resp.Body.Close()
	var h struct{ Proxy struct{ HA Health } }
	json.NewDecoder(resp.Body).Decode(&h)
	return h.Proxy.HA
}

// Mode is the node's failover mode ("" when it does not answer).
func (n *Node) Mode() string { return n.Health().Mode }

// StartPair starts a primary and a backup of bin on free loopback ports
// (PairArgs; snapshot endpoints when snapshot is set) and waits until the
// primary is active and the backup passive.
//
// Each gateway must know the other's endpoints before either binds them,
// so they are picked in advance; when one was taken meanwhile (by another
// test package running in parallel) and a gateway exits on it, the pair is
// started again on new ports, three times at most.
func StartPair(tb testing.TB, bin string, snapshot bool) (p, b *Node) {
	tb.Helper()
	return StartPairVia(tb, bin, snapshot, nil)
}

// StartPairVia is StartPair with each gateway reaching its peer's state
// endpoint at via(peer's State) (nil: directly), e.g. through a relay the
// test can cut.
func StartPairVia(tb testing.TB, bin string, snapshot bool, via func(state string) string) (p, b *Node) {
	tb.Helper()
	if via == nil {
		via = func(state string) string { return state }
	}
	for attempt := 1; ; attempt++ {
		dir := tb.TempDir()
		p, b = NewNode(tb, bin, snapshot), NewNode(tb, bin, snapshot)
		p.Start(tb, p.PairArgs("primary", via(b.State), b.Stamped, dir))
		b.Start(tb, b.PairArgs("backup", via(p.State), p.Stamped, dir))
		lost := false
		testpeer.Eventually(tb, 20*time.Second, "primary active, backup passive", func() bool {
			lost = attempt < 3 && (p.lostPort() || b.lostPort())
			return lost || (p.Mode() == "active" && b.Mode() == "passive")
		})
		if !lost {
			return p, b
		}
		tb.Logf("attempt %d: a port picked for the pair was taken before the gateway bound it; starting again on new ports", attempt)
		p.Kill(tb)
		b.Kill(tb)
	}
}

// Publish runs one publisher connected to both nodes' ingresses (a PUB
// sends to each): every tick, perTick updates round-robin over topics
// ev.0 ... ev.<topics-1>, payload {"n":<tick>}, until the returned func.
// A tick the publisher's goroutine is too late for is skipped (time.Ticker),
// so on a busy machine it sends less than perTick/tick: Sent says how much.
func Publish(p, b *Node, topics int, tick time.Duration, perTick int) (stop func()) {
	return StartPublisher(p, b, topics, tick, perTick).Stop
}

// Publisher is Publish's publisher.
type Publisher struct {
	done chan struct{}
	wg   sync.WaitGroup
	sent atomic.Int64
}

// StartPublisher is Publish, returning the publisher.
func StartPublisher(p, b *Node, topics int, tick time.Duration, perTick int) *Publisher {
	pb := &Publisher{done: make(chan struct{})}
	pb.wg.Add(1)
	go func() {
		defer pb.wg.Done()
		runtime.LockOSThread()
		pub, _ := zmq.NewSocket(zmq.PUB)
		defer pub.Close()
		pub.SetLinger(0)
		pub.Connect(p.In)
		pub.Connect(b.In)
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-pb.done:
				return
			case <-t.C:
			}
			for j := range perTick {
				pub.SendMessage(fmt.Sprintf("ev.%d", (i*perTick+j)%topics), fmt.Sprintf(`{"n":%d}`, i))
			}
			pb.sent.Add(int64(perTick))
		}
	}()
	return pb
}

// Sent is how many updates the publisher has sent so far.
func (pb *Publisher) Sent() int64 { return pb.sent.Load() }

// Stop stops the publisher and waits for its goroutine.
func (pb *Publisher) Stop() { close(pb.done); pb.wg.Wait() }
