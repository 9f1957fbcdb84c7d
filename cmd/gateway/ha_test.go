package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/slowsub/slowsubzmq"
	"github.com/mdgate/mdgate/tick"
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
	urls                      []string
	mu                        sync.Mutex
	last                      map[string]haMsg // by topic
	bad                       []string         // silent gaps, duplicates
	gaps, diverged, recovered int
	conns                     int // connections made
	replayed                  int
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
			c.mu.Lock()
			c.conns++
			c.mu.Unlock()
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
	case m.Epoch == prev.Epoch && m.Term > prev.Term && m.Seq <= prev.Seq:
		c.diverged++ // the term rule: a new active continued below what this client saw
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
	if m.Replay {
		c.replayed++
	}
	c.last[m.Topic] = m
}

// TestFailoverKill9: a pair under load, the active killed with SIGKILL:
// the standby takes over when the clients ask it (their votes), every
// client resumes on it, and every topic's sequence at every client goes
// on with no silent gap: each break is flagged (recovered, gap or
// diverged). Reports takeover and resume times.
func TestFailoverKill9(t *testing.T) {
	st := failoverKill9(t, 20, 5, time.Millisecond, 4)
	t.Logf("takeover %v after kill -9 (seen by polling /healthz); resume after the kill p50 %v, max %v; recovered %d, gap %d, diverged %d topic breaks over 20 clients; 5 ZeroMQ clients: %d SINCE answered (term checks, repairs), %d updates recovered; published %.0f msgs/s (4,000 asked), this process %.2f cores",
		st.takeover.Round(time.Millisecond), st.resumeP50.Round(time.Millisecond), st.resumeMax.Round(time.Millisecond), st.recovered, st.gaps, st.diverged, st.zmqRepairs, st.zmqRecovered, st.published, st.harnessCores)
}

// BenchmarkFailover: the scenario, 200 WebSocket clients each
// reading all 10 topics and 20 ZeroMQ subscribers (slowsubzmq.Sub given
// both gateways), the active killed with SIGKILL (one kill per op), at
// 500 msgs/s asked. Reports the takeover time (kill to the backup
// reporting active on /healthz, polled), the clients' resume times after
// the kill (first value on the backup), the breaks they saw (a silent gap
// fails it), the rate the publisher reached and this process's cores.
//
// The issue asked 20,000 msgs/s: 4M deliveries a second to these clients,
// which this process, parsing each, cannot read on a 2-core machine. Until
// session 8 it asked that and reached 1,100-1,600 msgs/s (its ticker skips
// the ticks it is late for) with this process on 1.4-1.6 of the 2 cores,
// so the resume times (p99 1.7-32 s) were mostly this harness's own wait
// for a CPU. At 500 asked: about 350 reached, 0.9 cores here, p99 0.7-0.8 s.
func BenchmarkFailover(b *testing.B) {
	var takeover, p50, p99 time.Duration
	var recovered, gaps, diverged, repairs, zrecovered int
	var published, harness float64
	for range b.N {
		st := failoverKill9(b, 200, 20, 2*time.Millisecond, 1)
		takeover, p50, p99 = takeover+st.takeover, p50+st.resumeP50, p99+st.resumeP99
		recovered, gaps, diverged, repairs, zrecovered = recovered+st.recovered, gaps+st.gaps, diverged+st.diverged, repairs+st.zmqRepairs, zrecovered+st.zmqRecovered
		published, harness = published+st.published, harness+st.harnessCores
	}
	n := float64(b.N)
	b.ReportMetric(takeover.Seconds()*1000/n, "takeover_ms")
	b.ReportMetric(p50.Seconds()*1000/n, "resume_p50_ms")
	b.ReportMetric(p99.Seconds()*1000/n, "resume_p99_ms")
	b.ReportMetric(float64(recovered)/n, "recovered/op")
	b.ReportMetric(float64(gaps)/n, "gaps/op")
	b.ReportMetric(float64(diverged)/n, "diverged/op")
	b.ReportMetric(float64(repairs)/n, "zmq_since/op")
	b.ReportMetric(float64(zrecovered)/n, "zmq_recovered/op")
	b.ReportMetric(published/n, "published_msgs/s")
	b.ReportMetric(harness/n, "harness_cores")
	b.ReportMetric(0, "ns/op")
}

type failoverStats struct {
	takeover, resumeP50, resumeP99, resumeMax time.Duration
	recovered, gaps, diverged                 int
	zmqRepairs, zmqRecovered                  int     // the ZeroMQ clients' SINCE answered, updates they recovered
	published                                 float64 // msgs/s the publisher reached, start to end
	harnessCores                              float64 // this process's CPU over the same time
}

// processCPU is this process's user and system CPU so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func failoverKill9(t testing.TB, clients, zmqClients int, tick time.Duration, perTick int) failoverStats {
	const topics = 10
	p, b := testpair.StartPair(t, binary, true) // snapshot endpoints: the ZeroMQ clients repair through them
	pub := testpair.StartPublisher(p, b, topics, tick, perTick)
	defer pub.Stop()
	t0, cpu0 := time.Now(), processCPU()
	zs := startZMQClients(t, p, b, zmqClients)

	cs := startHAClients(t, clients, "ws://"+p.HTTP+"/ws", "ws://"+b.HTTP+"/ws")
	testpeer.Eventually(t, 20*time.Second, "every client reading every topic", everyClient(cs, func(_ int, c *haClient) bool { return len(c.last) >= topics }))

	killed, takeover := testpair.Takeover(t, p, b, "the backup active")
	testpeer.Eventually(t, 20*time.Second, "every client resumed on the backup", everyClient(cs, func(_ int, c *haClient) bool { return !c.resumedAt.IsZero() }))
	// After the resume, each client must see every topic move on under the new term.
	marks := seqMarks(cs)
	zmarks := zs.marks()
	var behind string // what was still missing, logged should the wait fail
	defer func() {
		if t.Failed() && behind != "" {
			t.Logf("ZeroMQ clients at the deadline: %s", behind)
		}
	}()
	testpeer.Eventually(t, 20*time.Second, "every topic moving at every ZeroMQ client after the takeover", func() bool {
		behind = zs.behind(zmarks, topics)
		return behind == "" || zs.ended()
	})
	zs.stop()
	for _, bad := range zs.bad {
		t.Errorf("ZeroMQ client: %s", bad)
	}
	if t.Failed() {
		t.FailNow()
	}
	testpeer.Eventually(t, 20*time.Second, "every topic moving at every client after the takeover", everyClient(cs, func(i int, c *haClient) bool {
		for topic, m := range c.last {
			if m.Seq <= marks[i][topic]+5 || m.Term < 2 {
				return false
			}
		}
		return true
	}))
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
	el := time.Since(t0)
	return failoverStats{takeover: takeover, resumeP50: resumes[len(resumes)/2], resumeP99: resumes[len(resumes)*99/100],
		resumeMax: resumes[len(resumes)-1], recovered: recovered, gaps: gaps, diverged: diverged, zmqRepairs: zs.repairs, zmqRecovered: zs.recovered,
		published: float64(pub.Sent()) / el.Seconds(), harnessCores: float64(processCPU()-cpu0) / float64(el)}
}

// startPair starts a primary and a backup of the binary built for these
// tests (testpair.StartPair, no snapshot endpoints).
func startPair(t testing.TB) (p, b *testpair.Node) { return testpair.StartPair(t, binary, false) }

// publishPair feeds both gateways perMs updates a millisecond, round-robin
// over topics ev.0... (testpair.Publish), until the returned func.
func publishPair(p, b *testpair.Node, topics, perMs int) (stop func()) {
	return testpair.Publish(p, b, topics, time.Millisecond, perMs)
}

// TestFailoverStopCont: the active is stopped (SIGSTOP) long enough for
// the standby to take over on a client's vote, then continued: it yields
// to the higher term and stamps nothing under its stale one, and the
// clients that moved see no silent gap.
func TestFailoverStopCont(t *testing.T) {
	const topics = 10
	p, b := startPair(t)
	defer publishPair(p, b, topics, 4)()

	// A ZeroMQ subscriber on the old active's stamped egress, throughout.
	type stamped struct {
		term    uint16
		ingress int64
	}
	var smu sync.Mutex
	var seen []stamped
	subDone := make(chan struct{})
	subStop := make(chan struct{})
	go func() {
		defer close(subDone)
		runtime.LockOSThread()
		sub, _ := zmq.NewSocket(zmq.SUB)
		defer sub.Close()
		sub.SetLinger(0)
		sub.SetRcvtimeo(50 * time.Millisecond)
		sub.SetSubscribe("ev.")
		sub.Connect(p.Stamped)
		for {
			select {
			case <-subStop:
				return
			default:
			}
			frames, err := sub.RecvMessageBytes(0)
			if err != nil || len(frames) < 3 {
				continue
			}
			st, err := tick.ParseStamp(frames[len(frames)-1])
			if err != nil {
				continue
			}
			smu.Lock()
			seen = append(seen, stamped{st.Term, st.Ingress})
			smu.Unlock()
		}
	}()
	defer func() { close(subStop); <-subDone }()

	stop := make(chan struct{})
	c := &haClient{urls: []string{"ws://" + p.HTTP + "/ws", "ws://" + b.HTTP + "/ws"}}
	cdone := make(chan struct{})
	go func() { defer close(cdone); c.run(stop) }()
	defer func() { close(stop); <-cdone }()
	testpeer.Eventually(t, 20*time.Second, "the client and the subscriber reading", func() bool {
		c.mu.Lock()
		n := len(c.last)
		c.mu.Unlock()
		smu.Lock()
		m := len(seen)
		smu.Unlock()
		return n == topics && m > 0
	})

	if err := p.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The client's connection to the stopped gateway stays open but silent:
	// it moves when its own reads time out. Here a second client asks the
	// backup outright, as a client starting now would: its vote.
	var voter *websocket.Conn
	testpeer.Eventually(t, 20*time.Second, "the backup taking over on a vote", func() bool {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.HTTP+"/ws", nil)
		if err == nil {
			voter = ws
		}
		return err == nil
	})
	voter.Close()
	tookOver := time.Now().UnixNano() // the backup is active by now: the old term must not stamp from here on
	if got := b.Mode(); got != "active" {
		t.Fatalf("backup mode %q after accepting a client, want active", got)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 20*time.Second, "the old active yielding to the higher term", func() bool { return p.Mode() == "passive" })
	// It closed its WebSocket client (1012 standby), which resumed on the backup.
	testpeer.Eventually(t, 20*time.Second, "the client moving on under the new term", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, m := range c.last {
			if m.Term < 2 {
				return false
			}
		}
		return true
	})
	smu.Lock()
	defer smu.Unlock()
	stale := 0
	for _, m := range seen {
		if m.term < 2 && m.ingress > tookOver {
			stale++
		}
	}
	if stale > 0 {
		t.Errorf("the old active stamped %d messages under its stale term after the backup took over", stale)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, bad := range c.bad {
		t.Errorf("client: %s", bad)
	}
	t.Logf("subscriber saw %d messages from the old active; the client: %d recovered, %d gaps, %d diverged", len(seen), c.recovered, c.gaps, c.diverged)
}

// TestFailoverEdges: a core pair feeding two edges (each --ingress-stamped
// from both cores, --ingress-resubscribe), WebSocket clients on the edges.
// The active core is killed: the edges hear its heartbeats stop, subscribe
// again, which votes the standby in, and their clients' streams go on
// under the new term with nothing but flagged breaks. Then an edge is
// killed: its clients resume on the other edge from its history.
func TestFailoverEdges(t *testing.T) {
	const clients, topics = 10, 10
	p, b := startPair(t)
	type edge struct {
		HTTP string
		Cmd  *exec.Cmd
	}
	startEdge := func() *edge {
		e := &edge{HTTP: freeAddr(t)}
		e.Cmd = exec.Command(binary, "--http", e.HTTP, "--ingress-bind", "", "--ingress-connect", p.Stamped, "--ingress-connect", b.Stamped,
			"--ingress-stamped", "--ingress-resubscribe", "750ms", "--egress-bind", "", "--stamped-bind", "tcp://127.0.0.1:*",
			"--snapshot-bind", "", "--history", "ev.=100000", "--log-json")
		e.Cmd.Stderr = new(strings.Builder)
		if err := e.Cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Cmd.Process.Kill(); e.Cmd.Wait() })
		return e
	}
	e1, e2 := startEdge(), startEdge()
	defer publishPair(p, b, topics, 4)()

	cs := startHAClients(t, clients, "ws://"+e1.HTTP+"/ws", "ws://"+e2.HTTP+"/ws")
	// movedOn: every client holds every topic at a term of at least term
	// and a seq past its mark.
	movedOn := func(term uint16) func() bool {
		marks := seqMarks(cs)
		return everyClient(cs, func(i int, c *haClient) bool {
			for topic, m := range c.last {
				if m.Term < term || m.Seq <= marks[i][topic] {
					return false
				}
			}
			return len(c.last) == topics
		})
	}
	testpeer.Eventually(t, 20*time.Second, "every client reading every topic from the edges", movedOn(1))

	killed, takeover := testpair.Takeover(t, p, b, "the backup voted in by the edges")
	testpeer.Eventually(t, 20*time.Second, "every client's topics moving on under the new term", movedOn(2))
	flowing := time.Since(killed)

	e1.Cmd.Process.Kill()
	e1.Cmd.Wait()
	testpeer.Eventually(t, 20*time.Second, "every client moving on after an edge died", movedOn(2))
	recovered, gaps, diverged, replayed := 0, 0, 0, 0
	for i, c := range cs {
		c.mu.Lock()
		for _, bad := range c.bad {
			t.Errorf("client %d: %s", i, bad)
		}
		recovered, gaps, diverged, replayed = recovered+c.recovered, gaps+c.gaps, diverged+c.diverged, replayed+c.replayed
		c.mu.Unlock()
	}
	t.Logf("core takeover %v after kill -9 (edges' votes; seen by polling /healthz), every client flowing under the new term %v after it; then an edge killed; breaks: recovered %d, gap %d, diverged %d; %d updates replayed",
		takeover.Round(time.Millisecond), flowing.Round(time.Millisecond), recovered, gaps, diverged, replayed)
}

// zmqClients are slowsubzmq.Subs given both gateways of a pair (their
// stamped egresses; a vote after 3 silent heartbeats), each on its own
// goroutine and OS thread. Each update must be the next seq of its topic
// or come with a *DivergedError; anything else is recorded as bad. A gap
// is repaired through SINCE from the pair's snapshot endpoints: a kill -9
// can cut the active after it sent an update to the standby's mirror and
// before it reached its subscribers, and the new active goes on past it.
// A SINCE sent to the killed gateway is answered by none: the Sub moves to
// the other after RepairTimeout (2 s) and gives up after twice that, time
// enough for the takeover under BenchmarkFailover's load (1 s was not).
type zmqClients struct {
	mu   sync.Mutex
	last []map[string]tick.Stamp
	bad  []string
	// SINCE answered (a term check at each topic's first update of the new
	// active, or a gap's repair) and the updates they recovered, every
	// client together, counted as each ends.
	repairs, recovered int
	done               chan struct{}
	wg                 sync.WaitGroup
}

func startZMQClients(t testing.TB, p, b *testpair.Node, n int) *zmqClients {
	z := &zmqClients{done: make(chan struct{}), last: make([]map[string]tick.Stamp, n)}
	for i := range z.last { // every map made before any client runs: a client writes z.last[i] under z.mu, the test goroutine does not lock to build it
		z.last[i] = map[string]tick.Stamp{}
	}
	ready := make(chan error, n)
	for i := range n {
		z.wg.Add(1)
		go func() {
			defer z.wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: p.Stamped, Endpoints: []string{b.Stamped},
				Prefixes: []string{"ev."}, HeartbeatEvery: 250 * time.Millisecond,
				Repair: p.Snapshot, RepairEndpoints: []string{b.Snapshot}, RepairTimeout: 2 * time.Second})
			ready <- err
			if err != nil {
				return
			}
			defer sub.Close()
			defer func() {
				z.mu.Lock()
				st := sub.RepairStats()
				z.repairs, z.recovered = z.repairs+st.Repairs, z.recovered+st.Updates
				z.mu.Unlock()
			}()
			sub.SetTimeout(50 * time.Millisecond)
			for {
				select {
				case <-z.done:
					return
				default:
				}
				m, err := sub.Recv()
				var div *slowsubzmq.DivergedError
				switch {
				case err == nil, errors.As(err, &div):
				case errors.Is(err, zmq.Errno(syscall.EAGAIN)):
					continue
				default:
					z.mu.Lock()
					z.bad = append(z.bad, fmt.Sprintf("client %d: %v", i, err))
					z.mu.Unlock()
					return
				}
				z.mu.Lock()
				z.last[i][m.Topic] = m.Stamp
				z.mu.Unlock()
			}
		}()
	}
	for range n {
		if err := <-ready; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(z.stop)
	return z
}

func (z *zmqClients) stop() {
	select {
	case <-z.done:
	default:
		close(z.done)
	}
	z.wg.Wait()
}

// marks are each client's seqs now.
func (z *zmqClients) marks() []map[string]uint64 {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make([]map[string]uint64, len(z.last))
	for i, l := range z.last {
		out[i] = map[string]uint64{}
		for topic, st := range l {
			out[i][topic] = st.Seq
		}
	}
	return out
}

// ended: a client has ended (what ended it is in z.bad).
func (z *zmqClients) ended() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return len(z.bad) > 0
}

// behind names the clients that do not yet hold every topic under term 2
// or more past its mark, and what they hold ("" once every one does).
func (z *zmqClients) behind(marks []map[string]uint64, topics int) string {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := slices.Clone(z.bad) // a client that ended moves no more
	for i, l := range z.last {
		if len(l) != topics {
			out = append(out, fmt.Sprintf("client %d holds %d topics", i, len(l)))
			continue
		}
		for topic, st := range l {
			if st.Term < 2 || st.Seq <= marks[i][topic] {
				out = append(out, fmt.Sprintf("client %d %s: seq %d term %d, mark %d", i, topic, st.Seq, st.Term, marks[i][topic]))
			}
		}
	}
	return strings.Join(out, "; ")
}

// TestFailoverOldPrimaryRestarts: after a takeover the old primary is
// started again (its term file kept): it comes up passive, the new active
// stays active throughout (never two actives), and no client of the new
// active is disconnected.
func TestFailoverOldPrimaryRestarts(t *testing.T) {
	const clients, topics = 10, 10
	p, b := startPair(t)
	defer publishPair(p, b, topics, 4)()
	cs := startHAClients(t, clients, "ws://"+p.HTTP+"/ws", "ws://"+b.HTTP+"/ws")
	onBackup := everyClient(cs, func(_ int, c *haClient) bool { return !c.resumedAt.IsZero() && len(c.last) == topics })
	testpeer.Eventually(t, 20*time.Second, "every client reading", everyClient(cs, func(_ int, c *haClient) bool { return len(c.last) >= topics }))
	p.Kill(t)
	testpeer.Eventually(t, 20*time.Second, "every client on the new active", func() bool { return b.Mode() == "active" && onBackup() })
	conns := make([]int, clients)
	for i, c := range cs {
		c.mu.Lock()
		conns[i] = c.conns
		c.mu.Unlock()
	}

	p.Restart(t)
	testpeer.Eventually(t, 20*time.Second, "the old primary up again, passive", func() bool {
		pm, bm := p.Mode(), b.Mode()
		if pm == "active" && bm == "active" {
			t.Fatalf("two actives after the old primary's restart")
		}
		return pm == "passive" && bm == "active"
	})
	for i, c := range cs {
		c.mu.Lock()
		if c.conns != conns[i] {
			t.Errorf("client %d connected %d times after the restart, want no new connection", i, c.conns-conns[i])
		}
		for _, bad := range c.bad {
			t.Errorf("client %d: %s", i, bad)
		}
		c.mu.Unlock()
	}
}

// everyClient is a condition that holds when ok holds for every client
// (its index and itself, read under its lock).
func everyClient(cs []*haClient, ok func(i int, c *haClient) bool) func() bool {
	return func() bool {
		for i, c := range cs {
			c.mu.Lock()
			held := ok(i, c)
			c.mu.Unlock()
			if !held {
				return false
			}
		}
		return true
	}
}

// seqMarks is the seq each client last saw on each topic.
func seqMarks(cs []*haClient) []map[string]uint64 {
	marks := make([]map[string]uint64, len(cs))
	for i, c := range cs {
		c.mu.Lock()
		marks[i] = map[string]uint64{}
		for topic, m := range c.last {
			marks[i][topic] = m.Seq
		}
		c.mu.Unlock()
	}
	return marks
}

// startHAClients runs n haClients listing urls, each on its own goroutine,
// until the test ends.
func startHAClients(t testing.TB, n int, urls ...string) []*haClient {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	cs := make([]*haClient, n)
	for i := range cs {
		cs[i] = &haClient{urls: urls}
		wg.Add(1)
		go func() { defer wg.Done(); cs[i].run(stop) }()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	return cs
}
