package proxy

// Regression tests for the "isolation" issue: one ZeroMQ peer (a
// subscriber re-sending subscribes, a stalled subscriber, a publisher of
// huge or churning topics) must not cost the well-behaved clients beside it.
// Each test measures the well-behaved clients with and without the attack
// in the same run and logs the figures; it asserts only what cannot depend
// on timing (losses, counts, bounds), with one generous deadline where the
// harm is a stalled loop.
//
// Lines marked "cfg:new" set fields that did not exist before commit
// 5a8a78c; removing them is the only change needed to run a test on the
// older proxy.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdgate/mdgate/internal/attackpeer"
	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/slowsub/slowsubzmq"
	"github.com/mdgate/mdgate/tick"
)

// TestIsolationSubscribeReplayAmplification: one peer re-sending a
// subscribe to "md." 50 times must not replay the cache 50 times onto every
// subscriber of "md.": repeats coalesce, and a steady recorder beside it
// loses no live message.
func TestIsolationSubscribeReplayAmplification(t *testing.T) {
	const cached, liveTopics, attacks = 3000, 10, 50
	const all = cached + liveTopics // topics under "md." once the live feed runs
	reg := prometheus.NewRegistry()
	c := testConfig()
	c.EgressHWM = 20_000 // holds two or three replays of the cache, not fifty
	p := startWith(t, c, Options{Registerer: reg, Cache: lvc.New(lvc.DefaultConfig(), reg)})
	ep := p.Endpoints()

	z := newZThread(t)
	pub := goPub(t, z, ep.Ingress[0])
	payload := bytes.Repeat([]byte("x"), 200)
	z.do(func() {
		for i := range cached {
			if _, err := pub.SendMessage(fmt.Sprintf("md.cached.%05d", i), payload); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
		}
	})
	waitMetric(t, reg, "the cache filled", "mdgate_lvc_topics", cached)

	rec := startRecorder(t, ep.Stamped[0], "md.")
	testpeer.Eventually(t, wait, "the recorder's own replay", func() bool { return rec.stats().replays >= cached })

	var live []string
	for i := range liveTopics {
		live = append(live, fmt.Sprintf("md.live.%d", i))
	}
	feed := startLive(t, ep.Ingress[0], live, time.Millisecond, payload)
	testpeer.Eventually(t, wait, "1000 live messages before the attack", func() bool { return rec.stats().live[0] >= 1000 })

	replayedBefore := metric(t, reg, "mdgate_lvc_replayed_total")
	subsBefore := metric(t, reg, "mdgate_zmq_subscription_events_total", "egress", "stamped", "op", "subscribe")
	rec.setPhase(1)
	attacker := pyXSub(t, ep.Stamped[0], attacks, "md.")
	testpeer.Eventually(t, wait, "the attacker's subscribes at the gateway, their replays done", func() bool {
		return metric(t, reg, "mdgate_zmq_subscription_events_total", "egress", "stamped", "op", "subscribe") >= subsBefore+attacks &&
			metric(t, reg, "mdgate_lvc_replayed_total") >= replayedBefore+all &&
			metric(t, reg, "mdgate_zmq_replay_pending") == 0
	})
	after := rec.stats().live[1]
	testpeer.Eventually(t, wait, "1000 live messages after the attack's replays", func() bool { return rec.stats().live[1] >= after+1000 })

	sent := feed.halt()
	testpeer.Eventually(t, wait, "every live topic's last message at the recorder", func() bool {
		s := rec.stats()
		for topic, n := range sent {
			if s.last[topic] != n {
				return false
			}
		}
		return true
	})
	st := rec.halt()
	attacker.leave(t)

	var total uint64
	for _, n := range sent {
		total += n
	}
	replayed := metric(t, reg, "mdgate_lvc_replayed_total")
	coalesced := metric(t, reg, "mdgate_zmq_replay_requests_total", "egress", "stamped", "outcome", "coalesced")
	longest := metric(t, reg, "mdgate_proxy_loop_longest_seconds")
	t.Logf("recorder without the attack: %d live, p99 %v, lost %d", st.live[0], st.p99(0), st.lost[0])
	t.Logf("recorder with the attack:    %d live, p99 %v, lost %d (replays received %d)", st.live[1], st.p99(1), st.lost[1], st.replays)
	t.Logf("live sent %d, received %d; cache %d topics replayed %.0f times by the attack (%.0f values), %.0f in all; coalesced %.0f; loop longest %.2fms",
		total, st.live[0]+st.live[1], all, (replayed-replayedBefore)/all, replayed-replayedBefore, replayed, coalesced, longest*1e3)

	if got := uint64(st.live[0] + st.live[1]); got != total || st.lost[0]+st.lost[1] != 0 {
		t.Errorf("recorder received %d of %d live messages (lost %d before, %d during the attack), want all", got, total, st.lost[0], st.lost[1])
	}
	if d := replayed - replayedBefore; d > 2*all {
		t.Errorf("values replayed for %d subscribes of one peer = %.0f, want at most %d (two replays of the cache)", attacks, d, 2*all)
	}
	if replayed > 3*all {
		t.Errorf("values replayed in all = %.0f, want at most %d", replayed, 3*all)
	}
	if coalesced < attacks-1 {
		t.Errorf("replay requests coalesced = %v, want at least %d (the repeats)", coalesced, attacks-1)
	}
}

// TestIsolationSubscribeCost: subscribes that match nothing cost what they
// match, not a scan of the cache, and the prefixes tracked per egress are
// bounded.
func TestIsolationSubscribeCost(t *testing.T) {
	t.Run("no scan", func(t *testing.T) {
		const cached, subs = 100_000, 5000
		reg := prometheus.NewRegistry()
		cache := lvc.New(lvc.DefaultConfig(), reg)
		var msgs []*tick.Message
		for i := range cached {
			topic := fmt.Sprintf("md.cached.%06d", i)
			msgs = append(msgs, &tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), []byte("v")}, Stamp: tick.Stamp{Epoch: 1, Seq: 1}})
		}
		cache.Restore(msgs)
		p := startWith(t, testConfig(), Options{Registerer: reg, Cache: cache})
		ep := p.Endpoints()
		rec := startRecorder(t, ep.Stamped[0], "live.")
		subscribed(t, p, egressStamped, 1)
		z := newZThread(t)
		pub := goPub(t, z, ep.Ingress[0])
		send := func(v string) {
			z.do(func() {
				if _, err := pub.SendMessage("live.x", v); err != nil {
					t.Errorf("publish: %v", err)
				}
			})
		}
		send("warm-up")
		testpeer.Eventually(t, wait, "the warm-up message", func() bool { return rec.stats().live[0] == 1 })
		baseline := time.Now()
		send("baseline")
		testpeer.Eventually(t, wait, "the baseline message", func() bool { return rec.stats().live[0] == 2 })
		quiet := time.Since(baseline)

		// The subscribes, then at once a live message behind them.
		x := zSocket(t, z, zmq.XSUB)
		var start time.Time
		z.do(func() {
			if err := errors.Join(x.SetSndhwm(0), x.Connect(ep.Stamped[0])); err != nil {
				t.Errorf("attacker: %v", err)
				return
			}
			start = time.Now()
			for i := range subs {
				if _, err := x.SendBytes(fmt.Appendf([]byte{1}, "zz.nomatch.%05d", i), 0); err != nil {
					t.Errorf("subscribe: %v", err)
					return
				}
			}
			if _, err := pub.SendMessage("live.x", "behind the subscribes"); err != nil {
				t.Errorf("publish: %v", err)
			}
		})
		testpeer.Eventually(t, 30*time.Second, "the live message behind the subscribes", func() bool { return rec.stats().live[0] == 3 })
		behind := time.Since(start)
		t.Logf("cache %d topics, %d distinct subscribes matching nothing: a live message behind them arrived %v after the first (alone: %v)",
			cached, subs, behind.Round(time.Microsecond), quiet.Round(time.Microsecond))
		testpeer.Eventually(t, time.Minute, "every subscribe at the gateway", func() bool {
			return metric(t, reg, "mdgate_zmq_subscription_events_total", "egress", "stamped", "op", "subscribe") >= 1+subs
		})
		all := time.Since(start)
		replayed := metric(t, reg, "mdgate_lvc_replayed_total")
		longest := metric(t, reg, "mdgate_proxy_loop_longest_seconds")
		t.Logf("all subscribes handled after %v; replayed %.0f; loop longest %.2fms", all.Round(time.Millisecond), replayed, longest*1e3)
		if replayed != 0 {
			t.Errorf("values replayed for subscribes matching nothing = %v, want 0", replayed)
		}
		if behind > 2*time.Second {
			t.Errorf("live message behind %d subscribes arrived after %v, want well under 2s (the loop scanned the cache)", subs, behind)
		}
	})

	t.Run("subscription bound", func(t *testing.T) {
		const bound, subs = 100, 1000
		reg := prometheus.NewRegistry()
		c := testConfig()
		c.MaxSubscriptions = bound // cfg:new
		p := startWith(t, c, Options{Registerer: reg, Cache: lvc.New(lvc.DefaultConfig(), reg)})
		ep := p.Endpoints()
		peer := pyXSub(t, ep.Stamped[0], subs, "sub.%04d")
		subscribed(t, p, egressStamped, subs)
		gauge := metric(t, reg, "mdgate_zmq_subscriptions", "egress", "stamped")
		refused := metric(t, reg, "mdgate_zmq_replay_requests_total", "egress", "stamped", "outcome", "refused_subscription_limit")
		peer.leave(t)
		testpeer.Eventually(t, wait, "the departed peer's unsubscribes", func() bool {
			return metric(t, reg, "mdgate_zmq_subscription_events_total", "egress", "stamped", "op", "unsubscribe") >= subs
		})
		left := metric(t, reg, "mdgate_zmq_subscriptions", "egress", "stamped")
		t.Logf("%d distinct subscribes, bound %d: subscriptions gauge %v, refused %v; after the peer left %v", subs, bound, gauge, refused, left)
		if gauge != bound {
			t.Errorf("mdgate_zmq_subscriptions{egress=stamped} = %v, want %v", gauge, bound)
		}
		if refused != subs-bound {
			t.Errorf("replay requests refused_subscription_limit = %v, want %v", refused, subs-bound)
		}
		if left != 0 {
			t.Errorf("mdgate_zmq_subscriptions{egress=stamped} after the peer left = %v, want 0", left)
		}
	})
}

// TestIsolationLibzmqSubscriptionMemory measures what 100,000 distinct
// subscriptions of one peer cost the gateway's process: the tracked
// prefixes are bounded (MaxSubscriptions), libzmq's own subscription trie
// in the XPUB is not. The figure is in docs/security.md.
func TestIsolationLibzmqSubscriptionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	const bound, subs = 100, 100_000
	reg := prometheus.NewRegistry()
	c := testConfig()
	c.MaxSubscriptions = bound // cfg:new
	p := startWith(t, c, Options{Registerer: reg})
	ep := p.Endpoints()
	before := settledRSS()
	peer := pyXSub(t, ep.Stamped[0], subs, "md.sub.%06d")
	subscribed(t, p, egressStamped, subs)
	during, tracked := settledRSS(), metric(t, reg, "mdgate_zmq_subscriptions", "egress", "stamped")
	peer.leave(t)
	testpeer.Eventually(t, 30*time.Second, "the departed peer's unsubscribes", func() bool {
		return metric(t, reg, "mdgate_zmq_subscription_events_total", "egress", "stamped", "op", "unsubscribe") >= subs
	})
	left := settledRSS()
	t.Logf("process RSS: %.1f MiB before, %.1f MiB with %d distinct subscriptions of one peer (+%.1f MiB; the gateway tracked %v), %.1f MiB after it left",
		mib(before), mib(during), subs, mib(during-before), tracked, mib(left))
	if left := metric(t, reg, "mdgate_zmq_subscriptions", "egress", "stamped"); left != 0 {
		t.Errorf("mdgate_zmq_subscriptions{egress=stamped} after the peer left = %v, want 0", left)
	}
}

// TestIsolationStalledSubscriberBoundedInBytes: a ZeroMQ subscriber that
// stops reading holds at most EgressMaxBytes in the gateway (the egress HWM
// is EgressMaxBytes / MaxMsgBytes), while a fast one beside it misses
// nothing.
func TestIsolationStalledSubscriberBoundedInBytes(t *testing.T) {
	const msgs, size, window = 3000, 60 << 10, 16
	c := testConfig()
	c.EgressMaxBytes = 4 << 20 // cfg:new
	c.MaxMsgBytes = 64 << 10   // cfg:new
	reg := prometheus.NewRegistry()
	p := startWith(t, c, Options{Registerer: reg})
	ep := p.Endpoints()

	zs := newZThread(t)
	stalled := zSocket(t, zs, zmq.SUB)
	zs.do(func() {
		if err := errors.Join(stalled.SetRcvhwm(1), stalled.SetSubscribe("bulk"), stalled.Connect(ep.Egress[0])); err != nil {
			t.Errorf("stalled subscriber: %v", err)
		}
	})
	// The fast subscriber grants the publisher credit: never more than
	// window messages in flight, so it cannot be the one that overflows.
	got := make(chan struct{}, msgs)
	fastDone := make(chan int, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		n := 0
		defer func() { fastDone <- n }()
		s, err := attackpeer.SUB(ep.Egress[0], "bulk", -1, wait)
		if err != nil {
			t.Errorf("fast subscriber: %v", err)
			return
		}
		defer s.Close()
		for n < msgs {
			if _, err := s.RecvMessageBytes(0); err != nil {
				return
			}
			n++
			got <- struct{}{}
		}
	}()
	subscribed(t, p, egressRaw, 2)

	zp := newZThread(t)
	pub := goPub(t, zp, ep.Ingress[0])
	payload := bytes.Repeat([]byte("x"), size)
	rssBefore := settledRSS()
	zp.do(func() {
		credit := window
		for i := range msgs {
			for credit == 0 {
				select {
				case <-got:
					credit++
				case <-time.After(wait):
					t.Errorf("fast subscriber: no message within %v after %d sent", wait, i)
					return
				}
			}
			if _, err := pub.SendMessage("bulk", payload); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			credit--
		}
	})
	fast := <-fastDone
	rssPeak := rss()

	slow := 0
	zs.do(func() {
		stalled.SetRcvtimeo(time.Second) // everything it can get is queued already
		for {
			if _, err := stalled.RecvMessageBytes(0); err != nil {
				return
			}
			slow++
		}
	})
	t.Logf("%d messages of %d KiB: fast subscriber got %d, stalled subscriber (RCVHWM 1) got %d afterwards; process RSS %.1f -> %.1f MiB (+%.1f) while it stalled; egress refusals %.0f",
		msgs, size>>10, fast, slow, mib(rssBefore), mib(rssPeak), mib(rssPeak-rssBefore), metric(t, reg, "mdgate_zmq_egress_errors_total", "egress", "raw"))
	if fast != msgs {
		t.Errorf("fast subscriber received %d messages, want %d", fast, msgs)
	}
	if slow >= 1000 {
		t.Errorf("stalled subscriber received %d messages, want < 1000 (egress HWM + kernel buffers)", slow)
	}
}

// TestIsolationIngressTopicBounds: topics and messages past their byte
// bounds are dropped, each with its reason.
func TestIsolationIngressTopicBounds(t *testing.T) {
	const maxTopic, maxMsg = 32, 1024
	reg := prometheus.NewRegistry()
	c := testConfig()
	c.MaxTopicBytes = maxTopic // cfg:new
	c.MaxMsgBytes = maxMsg     // cfg:new
	p := startWith(t, c, Options{Registerer: reg})
	z := newZThread(t)
	pub := goPub(t, z, p.Endpoints().Ingress[0])
	tests := []struct {
		name   string
		frames []string
		want   string // drop reason; "" accepted
	}{
		{"topic at the bound", []string{strings.Repeat("t", maxTopic), "v"}, ""},
		{"topic one byte over", []string{strings.Repeat("t", maxTopic+1), "v"}, "topic_too_long"},
		{"huge topic", []string{strings.Repeat("t", 60_000)}, "topic_too_long"},
		{"message at the bound", []string{"big", strings.Repeat("x", maxMsg-3)}, ""},
		{"message one byte over", []string{"big", strings.Repeat("x", maxMsg-2)}, "too_large"},
		{"over across frames", []string{"big", strings.Repeat("x", 400), strings.Repeat("x", 400), strings.Repeat("x", 400)}, "too_large"},
	}
	reasons := []string{"empty_topic", "too_many_frames", "topic_limit", "topic_too_long", "too_large"}
	drops := func() map[string]float64 {
		m := map[string]float64{}
		for _, r := range reasons {
			m[r] = metric(t, reg, "mdgate_ingress_dropped_total", "reason", r)
		}
		return m
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, before := p.ingressCount(), drops()
			z.do(func() {
				for _, m := range [][]string{tt.frames, {"marker", "m"}} {
					if _, err := pub.SendMessage(m); err != nil {
						t.Errorf("publish: %v", err)
					}
				}
			})
			testpeer.Eventually(t, wait, "the marker behind the message", func() bool {
				n := p.ingressCount() - in
				for r, v := range drops() {
					n += v - before[r]
				}
				return n >= 2
			})
			accepted, reason := p.ingressCount()-in-1, ""
			for r, v := range drops() {
				if v > before[r] {
					reason = r
				}
			}
			want := 0.0
			if tt.want == "" {
				want = 1
			}
			if accepted != want {
				t.Errorf("accepted = %v, want %v", accepted, want)
			}
			if reason != tt.want {
				t.Errorf("drop reason = %q, want %q", reason, tt.want)
			}
		})
	}
}

// TestIsolationTopicChurnFreesSlots: deleted topics give their --max-topics
// slot back; a topic deleted and created again continues above the seqs it
// had, and slowsubzmq.Sub, which saw the delete, takes the new seq as the
// topic's start, not as a gap.
func TestIsolationTopicChurnFreesSlots(t *testing.T) {
	const slots = 10
	reg := prometheus.NewRegistry()
	c := testConfig()
	c.MaxTopics = slots
	p := startWith(t, c, Options{Registerer: reg})
	ep := p.Endpoints()

	type recv struct {
		topic string
		st    tick.Stamp
		err   error
	}
	out := make(chan recv, 64)
	stop := make(chan struct{})
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: ep.Stamped[0], Prefixes: []string{"t.", "n."}})
		if err != nil {
			out <- recv{err: err}
			return
		}
		defer s.Close()
		s.SetTimeout(20 * time.Millisecond)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, err := s.Recv()
			if errors.Is(err, zmq.Errno(syscall.EAGAIN)) {
				continue // EAGAIN: nothing within the timeout
			}
			r := recv{err: err}
			if m != nil {
				r.topic, r.st = m.Topic, m.Stamp
			}
			out <- r
		}
	}()
	t.Cleanup(func() { close(stop); <-subDone })
	subscribed(t, p, egressStamped, 2)

	z := newZThread(t)
	pub := goPub(t, z, ep.Ingress[0])
	var script [][]string
	for i := range slots {
		script = append(script, []string{fmt.Sprintf("t.%d", i), "v1"})
	}
	for i := range slots {
		script = append(script, []string{fmt.Sprintf("t.%d", i), ""}) // delete
	}
	for i := range slots {
		script = append(script, []string{fmt.Sprintf("n.%d", i), "v1"})
	}
	script = append(script, []string{"n.0", ""}, []string{"t.0", "v2"}, []string{"t.0", "v3"})
	z.do(func() {
		for _, m := range script {
			if _, err := pub.SendMessage(m); err != nil {
				t.Errorf("publish: %v", err)
			}
		}
	})
	testpeer.Eventually(t, wait, "every message accepted or dropped", func() bool {
		return p.ingressCount()+metric(t, reg, "mdgate_ingress_dropped_total") >= float64(len(script))
	})
	accepted := int(p.ingressCount())
	var got []recv
	for len(got) < accepted {
		select {
		case r := <-out:
			got = append(got, r)
		case <-time.After(wait):
			t.Fatalf("subscriber got %d messages, want %d", len(got), accepted)
		}
	}
	var t0 []string
	var oldMax, newMin uint64
	deleted := false
	for _, r := range got {
		if r.err != nil {
			t.Errorf("slowsubzmq.Sub Recv(%s seq %d flags %d) = %v, want no error", r.topic, r.st.Seq, r.st.Flags, r.err)
		}
		if r.topic != "t.0" {
			continue
		}
		t0 = append(t0, fmt.Sprintf("%d/%d", r.st.Seq, r.st.Flags))
		switch {
		case !deleted:
			oldMax = max(oldMax, r.st.Seq)
			deleted = r.st.Flags&tick.FlagDelete != 0
		case newMin == 0:
			newMin = r.st.Seq
		}
	}
	limit := metric(t, reg, "mdgate_ingress_dropped_total", "reason", "topic_limit")
	t.Logf("max topics %d: %d of %d messages accepted, %v dropped as topic_limit; t.0 seq/flags %v", slots, accepted, len(script), limit, t0)
	if accepted != len(script) || limit != 0 {
		t.Errorf("accepted %d of %d messages, %v dropped as topic_limit, want all accepted", accepted, len(script), limit)
	}
	if newMin <= oldMax {
		t.Errorf("t.0 created again: first seq %d, want above %d (its seqs before the delete)", newMin, oldMax)
	}
}

// startWith runs a proxy with opts until the test ends.
func startWith(t *testing.T, c Config, opts Options) *Proxy {
	t.Helper()
	p, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	testpeer.Serve(t, p, wait)
	return p
}

// metric reads a sample from reg by name (summed over the label matches);
// a metric that does not exist reads 0.
func metric(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	f := promscrape.Families{}
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	v, _ := f.Value(name, labels...)
	return v
}

func waitMetric(t testing.TB, reg prometheus.Gatherer, what, name string, want float64, labels ...string) {
	t.Helper()
	testpeer.Eventually(t, wait, what, func() bool { return metric(t, reg, name, labels...) >= want })
}

// zthread runs functions on one goroutine locked to its OS thread: the
// libzmq sockets of a test peer are created, used and closed there.
type zthread struct {
	ops  chan func()
	done chan struct{}
}

func newZThread(t testing.TB) *zthread {
	z := &zthread{ops: make(chan func()), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(z.done)
		for fn := range z.ops {
			fn()
		}
	}()
	t.Cleanup(func() { close(z.ops); <-z.done })
	return z
}

// do runs fn on z's thread and waits for it.
func (z *zthread) do(fn func()) {
	ran := make(chan struct{})
	z.ops <- func() { defer close(ran); fn() }
	<-ran
}

// zSocket makes a socket on z's thread, closed there when the test ends.
func zSocket(t testing.TB, z *zthread, typ zmq.Type) *zmq.Socket {
	t.Helper()
	var s *zmq.Socket
	var err error
	z.do(func() {
		if s, err = zmq.NewSocket(typ); err == nil {
			err = s.SetLinger(0)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.do(func() { s.Close() }) })
	return s
}

// goPub connects an XPUB to the gateway's ingress and waits for the
// gateway's subscription, so nothing is lost to the slow joiner.
func goPub(t testing.TB, z *zthread, ingress string) *zmq.Socket {
	t.Helper()
	s := zSocket(t, z, zmq.XPUB)
	var err error
	z.do(func() {
		if err = errors.Join(s.SetSndhwm(0), s.SetRcvtimeo(wait), s.Connect(ingress)); err == nil {
			_, err = s.RecvBytes(0)
		}
	})
	if err != nil {
		t.Fatalf("publisher: no subscription from the gateway: %v", err)
	}
	return s
}

// recorder is a well-behaved SUB on the stamped egress. It checks each
// topic's live seqs for continuity (replays, flag FlagReplay, are counted
// and otherwise ignored) and records live latencies, by phase.
type recorder struct {
	mu    sync.Mutex
	st    recStats
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	phase int
}

type recStats struct {
	live    [2]int
	lost    [2]uint64
	lat     [2][]time.Duration
	replays int
	last    map[string]uint64
}

func (s recStats) p99(phase int) time.Duration {
	l := slices.Clone(s.lat[phase])
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[len(l)*99/100].Round(time.Microsecond)
}

func startRecorder(t testing.TB, endpoint, prefix string) *recorder {
	t.Helper()
	r := &recorder{st: recStats{last: map[string]uint64{}}, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(r.done)
		attackpeer.Read(endpoint, prefix, -1, 20*time.Millisecond, ready, r.stop, func(f [][]byte) {
			now := time.Now().UnixNano()
			st, err := tick.ParseStamp(f[len(f)-1])
			if err != nil {
				return
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if st.Flags&tick.FlagReplay != 0 {
				r.st.replays++
				return
			}
			ph, topic := r.phase, string(f[0])
			if prev, ok := r.st.last[topic]; ok && st.Seq > prev+1 {
				r.st.lost[ph] += st.Seq - prev - 1
			}
			r.st.last[topic] = max(r.st.last[topic], st.Seq)
			r.st.live[ph]++
			r.st.lat[ph] = append(r.st.lat[ph], time.Duration(now-st.Ingress))
		})
	}()
	if err := <-ready; err != nil {
		t.Fatalf("recorder: %v", err)
	}
	t.Cleanup(func() { r.halt() })
	return r
}

func (r *recorder) setPhase(ph int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase = ph
}

// stats returns a copy of the counts (latencies not included).
func (r *recorder) stats() recStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	s.lat = [2][]time.Duration{}
	s.last = map[string]uint64{}
	for k, v := range r.st.last {
		s.last[k] = v
	}
	return s
}

// halt stops the recorder and returns everything it recorded.
func (r *recorder) halt() recStats {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// livePub publishes to its topics in turn, one message every interval,
// until halted.
type livePub struct {
	stop chan struct{}
	done chan map[string]uint64
	once sync.Once
	sent map[string]uint64
}

func startLive(t testing.TB, ingress string, topics []string, every time.Duration, payload []byte) *livePub {
	t.Helper()
	l := &livePub{stop: make(chan struct{}), done: make(chan map[string]uint64, 1)}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		sent := map[string]uint64{}
		defer func() { l.done <- sent }()
		s, err := attackpeer.Feed(ingress, wait)
		if err != nil {
			ready <- err
			return
		}
		defer s.Close()
		ready <- nil
		tk := time.NewTicker(every) // the feed's pace, not synchronisation
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tk.C:
			}
			topic := topics[i%len(topics)]
			if _, err := s.SendMessage(topic, payload); err != nil {
				return
			}
			sent[topic]++
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("live publisher: %v", err)
	}
	t.Cleanup(func() { l.halt() })
	return l
}

// halt stops the feed and returns the messages sent per topic.
func (l *livePub) halt() map[string]uint64 {
	l.once.Do(func() { close(l.stop); l.sent = <-l.done })
	return l.sent
}

// pyPeer is a python3-zmq XSUB that sends n subscribe frames (the prefix
// formatted with the frame's index when it holds a %) and stays connected
// until it leaves.
type pyPeer struct{ *attackpeer.XSub }

// pyXSub starts a pyPeer on endpoint; it is killed, if still there, when
// the test ends.
func pyXSub(t testing.TB, endpoint string, n int, prefix string) pyPeer {
	t.Helper()
	testpeer.Require(t)
	x, err := attackpeer.StartXSub(endpoint, n, prefix, wait)
	if err != nil {
		t.Fatal(err)
	}
	pp := pyPeer{x}
	t.Cleanup(func() {
		x.Kill()
		pp.leave(t)
	})
	return pp
}

// leave closes the peer's stdin, so it closes its socket and exits.
func (pp pyPeer) leave(t testing.TB) {
	t.Helper()
	if err := pp.Leave(wait); err != nil {
		t.Error(err)
	}
}

// rss is the process's resident set in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// settledRSS is rss after Go has returned what it can to the kernel.
func settledRSS() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	return rss()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// TestStampedIngressDeleteThenLateDuplicate: with --ingress-stamped fed by
// two paths from the same upstream (the failover case keep() is for), a
// delete frees the topic's slot; the other path's copy of the value before
// the delete, arriving late, must still be dropped as a duplicate, not
// bring the deleted value back.
func TestStampedIngressDeleteThenLateDuplicate(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testConfig()
	c.IngressStamped = true
	p := startWith(t, c, Options{Registerer: reg})
	z := newZThread(t)
	pub := goPub(t, z, p.Endpoints().Ingress[0])
	stamp := func(seq uint64, flags uint8) []byte {
		return tick.AppendStamp(nil, tick.Stamp{Epoch: 9, Seq: seq, Ingress: 1, Flags: flags})
	}
	z.do(func() {
		for _, m := range [][][]byte{
			{[]byte("t"), []byte("v5"), stamp(5, 0)},     // path 1
			{[]byte("t"), {}, stamp(6, tick.FlagDelete)}, // path 1: deleted
			{[]byte("t"), []byte("v5"), stamp(5, 0)},     // path 2, late
			{[]byte("t"), {}, stamp(6, tick.FlagDelete)}, // path 2, late
			{[]byte("t"), []byte("v9"), stamp(9, 0)},     // created again upstream
		} {
			if _, err := pub.SendMessage(m); err != nil {
				t.Errorf("publish: %v", err)
			}
		}
	})
	testpeer.Eventually(t, wait, "every message accepted or dropped", func() bool {
		return p.ingressCount()+metric(t, reg, "mdgate_ingress_dropped_total") >= 5
	})
	if got, dup := p.ingressCount(), metric(t, reg, "mdgate_ingress_dropped_total", "reason", "duplicate"); got != 3 || dup != 2 {
		t.Errorf("accepted %v, dropped as duplicate %v, want 3 (v5, the delete, v9) and 2 (the late copies)", got, dup)
	}
}
