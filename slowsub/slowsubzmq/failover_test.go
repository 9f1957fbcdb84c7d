package slowsubzmq_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testrelay"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/slowsub/slowsubzmq"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/tick"
)

// verbosePub is an XPUB seeing every subscribe, as the gateway's stamped
// egress does (a repeated subscribe is a vote).
func verbosePub(t *testing.T) *stampedPub {
	p := newPub(t)
	p.sock.SetXpubVerbose(1)
	return p
}

// subscriptions reads the subscribe frames that came within d.
func (p *stampedPub) subscriptions(d time.Duration) []string {
	p.sock.SetRcvtimeo(d)
	var subs []string
	for {
		b, err := p.sock.RecvBytes(0)
		if err != nil {
			return subs
		}
		if len(b) > 0 && b[0] == 1 {
			subs = append(subs, string(b[1:]))
		}
	}
}

// passiveRouter answers every request with ERR passive, as a failover
// pair's standby does; it counts them.
func passiveRouter(t *testing.T) (string, *atomic.Int64) {
	r, err := zmq.NewSocket(zmq.ROUTER)
	if err != nil {
		t.Fatal(err)
	}
	r.SetLinger(0)
	if err := r.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := r.GetLastEndpoint()
	var n atomic.Int64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		runtime.LockOSThread()
		defer r.Close()
		r.SetRcvtimeo(20 * time.Millisecond)
		for {
			select {
			case <-done:
				return
			default:
			}
			f, err := r.RecvMessageBytes(0)
			if err != nil || len(f) < 2 {
				continue
			}
			n.Add(1)
			r.SendMessage(f[0], snapshot.RepErr, snapshot.ErrPassive, "this gateway is the standby of a failover pair")
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return ep, &n
}

func termed(topic string, seq uint64, term uint16, flags uint8) tick.Stamp {
	return tick.Stamp{Epoch: 1, Seq: seq, Term: term, Flags: flags, Ingress: time.Now().UnixNano()}
}

// recvAll reads until EAGAIN (within d), noting each message as
// "topic:seq/term" with "~" for a *DivergedError; another error ends it
// with " | error".
func recvAll(t *testing.T, sub *slowsubzmq.Sub, d time.Duration) string {
	t.Helper()
	sub.SetTimeout(d)
	var got []string
	for {
		s, ok := recvOne(t, sub)
		if !ok {
			return strings.Join(got, " ")
		}
		got = append(got, s)
		if strings.HasPrefix(s, "| ") {
			return strings.Join(got, " ")
		}
	}
}

// recvN is the next n of sub's results, as recvAll writes them, failing
// the test if they do not come within 5 s.
func recvN(t *testing.T, sub *slowsubzmq.Sub, n int) string {
	t.Helper()
	sub.SetTimeout(50 * time.Millisecond)
	var got []string
	for deadline := time.Now().Add(5 * time.Second); len(got) < n; {
		if s, ok := recvOne(t, sub); ok {
			got = append(got, s)
		} else if time.Now().After(deadline) {
			t.Fatalf("Recv: %q after 5s, want %d results", got, n)
		}
	}
	return strings.Join(got, " ")
}

// recvOne is sub's next result: "topic:seq/term", "~" added for a
// divergence, or "| error"; false when Recv timed out.
func recvOne(t *testing.T, sub *slowsubzmq.Sub) (string, bool) {
	t.Helper()
	m, err := sub.Recv()
	if errors.Is(err, zmq.Errno(syscall.EAGAIN)) {
		return "", false
	}
	var div *slowsubzmq.DivergedError
	if err != nil && !errors.As(err, &div) {
		return "| " + err.Error(), true
	}
	s := fmt.Sprintf("%s:%d/%d", m.Topic, m.Stamp.Seq, m.Stamp.Term)
	if div != nil {
		if !errors.Is(err, slowsubzmq.ErrDiverged) || div.Topic != m.Topic || div.Got != m.Stamp.Seq || div.NewTerm != m.Stamp.Term {
			t.Errorf("diverged error %+v for %s", div, s)
		}
		s += "~"
	}
	return s, true
}

// TestFailoverCrafted: a Sub given two stamped publishers standing in for
// a failover pair (A active, B standby), the snapshot endpoint of A
// answering ERR passive once A is gone, and B's a snapshot server over
// B's history. It subscribes both to its prefix and to the heartbeat
// topic; heartbeats keep it from voting; once A goes silent it votes
// (a subscribe to the vote topic reaching B) after 3 beats and again every
// beat. B, active under term 2, stamps the seq the Sub holds again: a
// divergence (*DivergedError, the message taken); A's later update under
// term 1 is dropped; a gap under term 2 is repaired from B's history after
// A's snapshot endpoint answered passive; a higher term past the seq held
// is checked from the seq before it: under the term held the update there
// is the one held (clean), under another it is returned diverged.
func TestFailoverCrafted(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const beat = 50 * time.Millisecond
	a, b := verbosePub(t), verbosePub(t)
	aSnap, passives := passiveRouter(t)
	cache := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20})
	put := func(topic string, seq uint64, term uint16) {
		m := tickOf(topic, 1, seq)
		m.Stamp.Term = term
		cache.Update(m)
	}
	// B's history: t 1-4 under term 1 (mirrored), 5-7 under 2; c 1-5 under
	// 1 and 6-7 under 2; d 1-4 under 1, 5-7 under 2.
	for seq := uint64(1); seq <= 7; seq++ {
		put("t", seq, map[bool]uint16{true: 1, false: 2}[seq <= 4])
		put("c", seq, map[bool]uint16{true: 1, false: 2}[seq <= 5])
		put("d", seq, map[bool]uint16{true: 1, false: 2}[seq <= 4])
	}
	sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: a.ep, Endpoints: []string{b.ep}, Prefixes: []string{"t", "c", "d"},
		HeartbeatEvery: beat, Repair: aSnap, RepairEndpoints: []string{serveSnapshots(t, cache)}, RepairTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, p := range []*stampedPub{a, b} {
		subs := p.subscriptions(300 * time.Millisecond)
		slices.Sort(subs)
		if strings.Join(subs, ",") != tick.HeartbeatTopic+",c,d,t" {
			t.Fatalf("subscriptions %q, want t, c, d and the heartbeat topic", subs)
		}
	}

	// A active: updates under term 1, heartbeats between them.
	for seq := uint64(1); seq <= 3; seq++ {
		a.send("t", termed("t", seq, 1, 0))
	}
	for seq := uint64(1); seq <= 5; seq++ {
		a.send("c", termed("c", seq, 1, 0))
	}
	for seq := uint64(1); seq <= 4; seq++ {
		a.send("d", termed("d", seq, 1, 0))
	}
	if got, want := recvAll(t, sub, beat), "t:1/1 t:2/1 t:3/1 c:1/1 c:2/1 c:3/1 c:4/1 c:5/1 d:1/1 d:2/1 d:3/1 d:4/1"; got != want {
		t.Fatalf("from A: %q, want %q", got, want)
	}
	stopBeats := make(chan struct{})
	beatsDone := make(chan struct{})
	v0 := sub.FailoverStats().Votes
	go func() { // A's socket is this goroutine's until it ends
		defer close(beatsDone)
		runtime.LockOSThread()
		tk := time.NewTicker(beat)
		defer tk.Stop()
		for {
			select {
			case <-stopBeats:
				return
			case <-tk.C:
				a.send(tick.HeartbeatTopic, tick.Stamp{Epoch: 1, Term: 1, Flags: tick.FlagHeartbeat, Ingress: time.Now().UnixNano()})
			}
		}
	}()
	if got := recvAll(t, sub, 8*beat); got != "" {
		t.Errorf("heartbeats delivered as updates: %q", got)
	}
	if st := sub.FailoverStats(); st.Votes != v0 {
		t.Errorf("%d votes while A's heartbeats came", st.Votes-v0)
	}
	close(stopBeats)
	<-beatsDone
	b.subscriptions(time.Millisecond) // the votes before, if any
	v0 = sub.FailoverStats().Votes

	// A silent: the Sub votes after 3 beats, then every beat.
	start := time.Now()
	if got := recvAll(t, sub, 6*beat); got != "" {
		t.Errorf("during the silence: %q", got)
	}
	votes := 0
	for _, s := range b.subscriptions(10 * time.Millisecond) {
		if s == tick.VoteTopic {
			votes++
		}
	}
	st := sub.FailoverStats()
	if votes < 2 || st.Votes-v0 != votes {
		t.Errorf("B saw %d votes, the Sub counts %d, want at least 2 in %v of silence (3 beats, then every beat)", votes, st.Votes, time.Since(start))
	}

	// B active under term 2: the seq held again (diverged), then on; A's
	// stale update dropped; a gap repaired through B's snapshot endpoint
	// after A's answered passive.
	b.send("t", termed("t", 3, 2, 0))
	b.send("t", termed("t", 4, 2, 0))
	a.send("t", termed("t", 5, 1, 0))
	b.send("t", termed("t", 7, 2, 0))
	// c: held 5 under term 1, B's 5 is under term 1 too: a clean takeover,
	// checked through SINCE from 4.
	b.send("c", termed("c", 7, 2, 0))
	// d: held 4 under term 1, B's 4 under 1 and its 5-7 under 2: clean
	// too, the check (from 3) seeing 4 under term 1.
	b.send("d", termed("d", 7, 2, 0))
	want := "t:3/2~ t:4/2 t:5/2 t:6/2 t:7/2 c:6/2 c:7/2 d:5/2 d:6/2 d:7/2"
	if got := recvAll(t, sub, 500*time.Millisecond); got != want {
		t.Errorf("after the takeover: %q, want %q", got, want)
	}
	st = sub.FailoverStats()
	if st.Diverged != 1 || st.StaleTerm != 1 || st.Passive < 1 || st.Moves < 1 || passives.Load() < 1 {
		t.Errorf("FailoverStats %+v (passive answers sent %d), want 1 diverged, 1 stale, a passive answer and a move", st, passives.Load())
	}
	if rs := sub.RepairStats(); rs.Repairs != 3 {
		t.Errorf("RepairStats %+v, want 3 repairs", rs)
	}
}

// TestFailoverCheckFindsDivergence: the Sub holds t 5 under term 1; the
// new active (term 2) had only 4 of term 1 and stamped its own 5: its
// update past the seq held comes, the repair's check from 4 finds 5 under
// term 2, returned with a *DivergedError, and the topic goes on from it.
func TestFailoverCheckFindsDivergence(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a := verbosePub(t)
	cache := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20})
	for seq := uint64(1); seq <= 7; seq++ {
		m := tickOf("t", 1, seq)
		m.Stamp.Term = map[bool]uint16{true: 1, false: 2}[seq <= 4]
		cache.Update(m)
	}
	sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: a.ep, Repair: serveSnapshots(t, cache)})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	a.awaitSubscriber(t)
	for seq := uint64(1); seq <= 5; seq++ {
		a.send("t", termed("t", seq, 1, 0))
	}
	a.send("t", termed("t", 7, 2, 0))
	if got, want := recvAll(t, sub, 300*time.Millisecond), "t:1/1 t:2/1 t:3/1 t:4/1 t:5/1 t:5/2~ t:6/2 t:7/2"; got != want {
		t.Errorf("Recv: %q, want %q", got, want)
	}
}

// TestPassiveEverywhereEnds: every repair endpoint answers passive: the
// Sub asks them in turn (each a vote), with a backoff after each round,
// and ends with a *RepairError once RepairTimeout times their number has
// passed.
func TestPassiveEverywhereEnds(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a := newPub(t)
	s1, n1 := passiveRouter(t)
	s2, n2 := passiveRouter(t)
	sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: a.ep, Repair: s1, RepairEndpoints: []string{s2}, RepairTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	a.awaitSubscriber(t)
	a.send("t", termed("t", 1, 0, 0))
	a.send("t", termed("t", 3, 0, 0))
	got := recvAll(t, sub, 2*time.Second)
	if !strings.HasPrefix(got, "t:1/0 | gap in sequence: t want seq 2, got 3; repair failed: snapshot server: passive") {
		t.Errorf("Recv: %q, want t 1 then a repair error saying passive", got)
	}
	if n1.Load() < 2 || n2.Load() < 2 {
		t.Errorf("passive answers %d and %d, want both endpoints asked more than once", n1.Load(), n2.Load())
	}
	t.Logf("asked %d + %d times in 400ms; %+v", n1.Load(), n2.Load(), sub.FailoverStats())
}

// TestTermRuleWithoutRepair: a Sub without repair connected to two
// publishers applies the term rule too: a higher term at or below the seq
// held is returned with a *DivergedError and taken, a lower term is
// dropped, a repeat from the other publisher is dropped; silence votes on
// both; a gap still ends it with ErrGap.
func TestTermRuleWithoutRepair(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a, b := verbosePub(t), verbosePub(t)
	sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: a.ep, Endpoints: []string{b.ep}, HeartbeatEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	a.awaitSubscriber(t)
	b.awaitSubscriber(t)
	// Each step's results are read before the next step's sends: the two
	// publishers' connections are not ordered with each other.
	a.send("t", termed("t", 1, 1, 0))
	a.send("t", termed("t", 2, 1, 0))
	b.send("t", termed("t", 2, 1, 0)) // the same, from the other: a repeat (b's next comes after it on b's connection)
	got := recvN(t, sub, 2)
	b.send("t", termed("t", 2, 2, 0))
	got += " " + recvN(t, sub, 1)
	a.send("t", termed("t", 3, 1, 0)) // a lower term, before or after b's 3/2: dropped either way
	b.send("t", termed("t", 3, 2, 0))
	got += " " + recvN(t, sub, 1)
	if rest := recvAll(t, sub, 200*time.Millisecond); rest != "" { // and 200ms of silence: votes
		got += " " + rest
	}
	if want := "t:1/1 t:2/1 t:2/2~ t:3/2"; got != want {
		t.Errorf("Recv: %q, want %q", got, want)
	}
	st := sub.FailoverStats()
	if st.Diverged != 1 || st.StaleTerm != 1 || st.Votes < 2 {
		t.Errorf("FailoverStats %+v, want 1 diverged, 1 stale, votes in 200ms of silence", st)
	}
	for _, p := range []*stampedPub{a, b} {
		if !slices.Contains(p.subscriptions(10*time.Millisecond), tick.VoteTopic) {
			t.Errorf("no vote reached %s", p.ep)
		}
	}
	b.send("t", termed("t", 5, 2, 0))
	if got := recvAll(t, sub, time.Second); !strings.HasSuffix(got, "| gap in sequence: t want seq 4, got 5") {
		t.Errorf("Recv after a gap: %q, want ErrGap", got)
	}
}

// deadEndpoint is a loopback TCP endpoint nothing listens on: a failover
// pair's gateway that was killed.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "tcp://" + ln.Addr().String()
	ln.Close()
	return ep
}

// TestRepairSkipsDeadEndpoint: the first repair endpoint's gateway is
// down, as the killed active's is after a takeover. The SINCE goes to the
// next endpoint after RepairConnectWait instead of waiting RepairTimeout
// (30 s here, past recvN's 5 s) in libzmq's queue for a reconnect: every
// ZeroMQ subscriber of a pair held its topics that long after a failover
// (BenchmarkFailover: one gave up when the second endpoint was slow too).
func TestRepairSkipsDeadEndpoint(t *testing.T) {
	st := repairedThrough(t, 30*time.Second, func(srv string) (string, []string) {
		return deadEndpoint(t), []string{"tcp://" + srv}
	})
	if st.Moves != 1 {
		t.Errorf("FailoverStats %+v, want 1 move", st)
	}
}

// repairedThrough makes a gap in t (2 and 3 missing, of a history of 1-5)
// and checks that the Sub repairs it within recvN's 5 s, its repair
// endpoints given by eps from the snapshot server's host:port; it returns
// the Sub's FailoverStats.
func repairedThrough(t *testing.T, timeout time.Duration, eps func(srv string) (string, []string)) slowsubzmq.FailoverStats {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a := newPub(t)
	cache := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20})
	for seq := uint64(1); seq <= 5; seq++ {
		cache.Update(tickOf("t", 1, seq))
	}
	repair, more := eps(strings.TrimPrefix(serveSnapshots(t, cache), "tcp://"))
	sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: a.ep, Repair: repair, RepairEndpoints: more, RepairTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	a.awaitSubscriber(t)
	a.send("t", termed("t", 1, 0, 0))
	a.send("t", termed("t", 4, 0, 0))
	if got, want := recvN(t, sub, 5), "t:1/0 t:2/0 t:3/0 t:4/0 t:5/0"; got != want {
		t.Errorf("Recv: %q, want %q", got, want)
	}
	return sub.FailoverStats()
}

// TestRepairSlowConnectionNotCutShort: both repair endpoints sit behind a
// 250 ms hop each way, so a ZMTP handshake takes longer than
// RepairConnectWait. A gap right after Dial waits on the first, moves to
// the second, and back; the connections, made at Dial and kept across the
// moves, complete meanwhile and the repair is answered. (Had a move opened
// a new connection, no handshake would ever finish.)
func TestRepairSlowConnectionNotCutShort(t *testing.T) {
	st := repairedThrough(t, 10*time.Second, func(srv string) (string, []string) {
		hop := func() string { return "tcp://" + testrelay.NewDelayed(t, srv, 250*time.Millisecond).Addr() }
		return hop(), []string{hop()}
	})
	t.Logf("%+v", st)
}
