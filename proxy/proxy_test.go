package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/tick"
)

const wait = 10 * time.Second

// testConfig binds everything on loopback with kernel-chosen ports.
func testConfig() Config {
	c := DefaultConfig()
	c.IngressBind = []string{"tcp://127.0.0.1:*"}
	c.EgressBind = []string{"tcp://127.0.0.1:*"}
	c.StampedBind = []string{"tcp://127.0.0.1:*"}
	c.Linger = 0
	return c
}

// start runs a proxy until the test ends.
func start(t *testing.T, c Config, sinks ...Sink) *Proxy {
	t.Helper()
	return startWith(t, c, Options{Sinks: sinks})
}

// subscribed waits until n subscribe frames reached the egress.
func subscribed(t *testing.T, p *Proxy, e egress, n float64) {
	t.Helper()
	testpeer.Eventually(t, wait, "subscriptions at the gateway", func() bool {
		return testutil.ToFloat64(p.m.subscribes[e]) >= n
	})
}

func pySub(t *testing.T, endpoint string, count int, prefixes ...string) *testpeer.Proc {
	if prefixes == nil {
		prefixes = []string{""}
	}
	s := testpeer.Start(t, "sub", map[string]any{"endpoint": endpoint, "prefixes": prefixes, "count": count, "timeout_ms": 10000})
	if e := s.Next(t, wait); e.Event != "ready" {
		t.Fatalf("subscriber said %+v, want ready", e)
	}
	return s
}

// rawSub is a pySub on p's raw egress, returned once p has its
// subscription.
func rawSub(t *testing.T, p *Proxy, count int, prefixes ...string) *testpeer.Proc {
	t.Helper()
	s := pySub(t, p.Endpoints().Egress[0], count, prefixes...)
	subscribed(t, p, egressRaw, 1)
	return s
}

func pyPub(t *testing.T, endpoint string, spec map[string]any) *testpeer.Proc {
	spec["endpoint"] = endpoint
	return testpeer.Start(t, "pub", spec)
}

func TestMultiFrameIntactThroughLibzmqPeers(t *testing.T) {
	p := start(t, testConfig())
	ep := p.Endpoints()
	sub := rawSub(t, p, 3)
	binary := "AAECA/8=" // 00 01 02 03 ff
	pyPub(t, ep.Ingress[0], map[string]any{"b64": true, "messages": [][]string{
		{"bWQuZXEuQUFQTA==", "eyJweCI6MX0="},     // md.eq.AAPL {"px":1}
		{"bWQuZXEuTVNGVA==", binary, "", binary}, // 4 frames, one empty
		{"bWQuZnguRVVS"},                         // topic only
	}})
	got := sub.Until(t, "done", wait)
	want := [][]string{
		{"md.eq.AAPL", `{"px":1}`},
		{"md.eq.MSFT", "\x00\x01\x02\x03\xff", "", "\x00\x01\x02\x03\xff"},
		{"md.fx.EUR"},
	}
	if len(got) != len(want) {
		t.Fatalf("subscriber got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if g := got[i].Strings(); fmt.Sprintf("%q", g) != fmt.Sprintf("%q", want[i]) {
			t.Errorf("message %d = %q, want %q", i, g, want[i])
		}
	}
}

func TestStampedEgressSequencesPerTopic(t *testing.T) {
	p := start(t, testConfig())
	ep := p.Endpoints()
	sub := pySub(t, ep.Stamped[0], 5)
	subscribed(t, p, egressStamped, 1)
	before := time.Now().UnixNano()
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{
		{"a", "1"}, {"b", "1"}, {"a", "2"}, {"a", "3"}, {"b", "2"},
	}})
	got := sub.Until(t, "done", wait)
	wantSeq := map[string][]uint64{"a": {1, 2, 3}, "b": {1, 2}}
	seen := map[string][]uint64{}
	for _, e := range got {
		f := e.Bytes()
		if len(f) != 3 {
			t.Fatalf("stamped message has %d frames, want topic, payload, stamp", len(f))
		}
		st, err := tick.ParseStamp(f[2])
		if err != nil {
			t.Fatalf("ParseStamp: %v", err)
		}
		if st.Epoch != p.Epoch() || st.Ingress < before || st.Flags != 0 {
			t.Errorf("stamp %+v: want epoch %x, ingress after %d, no flags", st, p.Epoch(), before)
		}
		seen[string(f[0])] = append(seen[string(f[0])], st.Seq)
	}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeq) {
		t.Errorf("sequence numbers = %v, want %v", seen, wantSeq)
	}
}

func TestPrefixSubscriptionFilters(t *testing.T) {
	p := start(t, testConfig())
	ep := p.Endpoints()
	sub := rawSub(t, p, 2, "md.eq.")
	if n := testutil.ToFloat64(p.m.activeSubs[egressRaw]); n != 1 {
		t.Errorf("active subscriptions = %v, want 1", n)
	}
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{
		{"md.fx.EUR", "x"}, {"md.eq.AAPL", "1"}, {"md.eqx", "no"}, {"md.eq.IBM", "2"},
	}})
	got := sub.Until(t, "done", wait)
	var topics []string
	for _, e := range got {
		topics = append(topics, e.Strings()[0])
	}
	if strings.Join(topics, ",") != "md.eq.AAPL,md.eq.IBM" {
		t.Errorf("prefix subscriber got %v, want [md.eq.AAPL md.eq.IBM]", topics)
	}
	testpeer.Eventually(t, wait, "the unsubscribe of the exited subscriber", func() bool {
		return testutil.ToFloat64(p.m.activeSubs[egressRaw]) == 0
	})
}

func TestIngressFilterSubscribesUpstreamToPrefixesOnly(t *testing.T) {
	c := testConfig()
	c.IngressFilter = []string{"keep."}
	p := start(t, c)
	ep := p.Endpoints()
	sub := rawSub(t, p, 2)
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{
		{"drop.a", "x"}, {"keep.a", "1"}, {"drop.b", "y"}, {"keep.b", "2"},
	}})
	got := sub.Until(t, "done", wait)
	if len(got) != 2 || got[0].Strings()[0] != "keep.a" || got[1].Strings()[0] != "keep.b" {
		t.Errorf("with --ingress-filter keep. the subscriber got %d messages %v, want keep.a, keep.b", len(got), got)
	}
}

func TestBadInputDroppedAndCounted(t *testing.T) {
	c := testConfig()
	c.MaxFrames = 3
	p := start(t, c)
	ep := p.Endpoints()
	sub := rawSub(t, p, 2)
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{
		{"ok.1", "a"},
		{"", "empty topic"},
		{"too.many", "1", "2", "3"},
		{"far.too.many", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"},
		{"ok.2", "b", "c"},
	}})
	got := sub.Until(t, "done", wait)
	// ok.2 follows a message whose extra frames were not kept: its frames
	// must still be its own, whole.
	if len(got) != 2 || !slices.Equal(got[0].Strings(), []string{"ok.1", "a"}) || !slices.Equal(got[1].Strings(), []string{"ok.2", "b", "c"}) {
		t.Errorf("subscriber got %v, want only [ok.1 a] and [ok.2 b c]", got)
	}
	for r, want := range map[DropReason]float64{DropEmptyTopic: 1, DropTooManyFrames: 2, DropBadStamp: 0} {
		if got := testutil.ToFloat64(p.m.dropped[r]); got != want {
			t.Errorf("dropped{reason=%q} = %v, want %v", r, got, want)
		}
	}
}

func TestOversizedFrameDisconnectsOnlyThatPublisher(t *testing.T) {
	c := testConfig()
	c.MaxMsgSize = 1024
	p := start(t, c)
	ep := p.Endpoints()
	sub := rawSub(t, p, 1)
	big := strings.Repeat("x", 4096)
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{{"big", big}}}).Wait(t, wait)
	testpeer.Eventually(t, wait, "the oversized publisher's disconnect", func() bool {
		return testutil.ToFloat64(p.m.peerDisconnect[roleIngress]) >= 1
	})
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{{"small", "ok"}}})
	got := sub.Until(t, "done", wait)
	if len(got) != 1 || got[0].Strings()[0] != "small" {
		t.Errorf("subscriber got %v, want only the small message", got)
	}
}

func TestPublisherVanishingMidMessageLosesNothing(t *testing.T) {
	rec := recordSink{make(chan *tick.Message, 16)}
	p := start(t, testConfig(), rec)
	ep := p.Endpoints()
	sub := rawSub(t, p, 3)
	pub := pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{{"md.a", "1"}, {"md.b", "2"}}, "abort_mid_message": true})
	testpeer.Eventually(t, wait, "the first two messages at the gateway", func() bool {
		return testutil.ToFloat64(p.m.ingressMsgs) == 2
	})
	pub.CloseStdin()
	pub.Wait(t, wait)
	// A raw ZMTP peer that cuts its TCP connection after a MORE frame.
	rawPublishPartial(t, ep.Ingress[0])
	// A restarted publisher carries on; the sequence continues.
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{{"md.a", "3"}}})
	got := sub.Until(t, "done", wait)
	var all []string
	for _, e := range got {
		all = append(all, strings.Join(e.Strings(), "|"))
	}
	if strings.Join(all, " ") != "md.a|1 md.b|2 md.a|3" {
		t.Errorf("subscriber got %q, want md.a|1 md.b|2 md.a|3 (no partial message)", all)
	}
	var seqs []uint64
	for range 3 {
		m := <-rec.ch
		seqs = append(seqs, m.Stamp.Seq)
	}
	if fmt.Sprint(seqs) != "[1 1 2]" {
		t.Errorf("seqs after restart = %v, want [1 1 2]", seqs)
	}
}

func TestPlainPubSlowJoinerThenFlows(t *testing.T) {
	// A plain PUB (no XPUB sync) loses what it sends before the gateway's
	// subscription arrives, as with any libzmq PUB; once joined it flows.
	p := start(t, testConfig())
	ep := p.Endpoints()
	sub := rawSub(t, p, 1, "plain")
	pyPub(t, ep.Ingress[0], map[string]any{"socket": "pub", "messages": [][]string{{"plain", "x"}}, "repeat": 2000, "interval_ms": 1})
	if got := sub.Until(t, "done", wait); len(got) != 1 {
		t.Errorf("plain PUB: subscriber got %d messages, want 1", len(got))
	}
}

// A subscriber with heartbeats: libzmq peers that send ZMTP PINGs are fine.
func TestGoPebbeSubscriberWithHeartbeats(t *testing.T) {
	c := testConfig()
	c.HeartbeatIvl = 50 * time.Millisecond
	c.HeartbeatTimeout = time.Second
	p := start(t, c)
	ep := p.Endpoints()
	sub, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sub.SetLinger(0)
	sub.SetHeartbeatIvl(50 * time.Millisecond)
	sub.SetSubscribe("hb")
	sub.SetRcvtimeo(wait)
	if err := sub.Connect(ep.Egress[0]); err != nil {
		t.Fatal(err)
	}
	subscribed(t, p, egressRaw, 1)
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{{"hb", "1"}}})
	got, err := sub.RecvMessage(0)
	if err != nil || len(got) != 2 || got[1] != "1" {
		t.Fatalf("RecvMessage = %q, %v, want [hb 1]", got, err)
	}
}

type recordSink struct{ ch chan *tick.Message }

func (r recordSink) Publish(m *tick.Message) {
	select {
	case r.ch <- m:
	default:
	}
}

func TestChainedGatewayKeepsUpstreamStamp(t *testing.T) {
	core := start(t, testConfig())
	edgeCfg := testConfig()
	edgeCfg.IngressBind = nil
	edgeCfg.IngressConnect = []string{core.Endpoints().Stamped[0]}
	edgeCfg.IngressStamped = true
	rec := recordSink{make(chan *tick.Message, 16)}
	edge := start(t, edgeCfg, rec)
	subscribed(t, core, egressStamped, 1) // the edge's XSUB
	sub := pySub(t, edge.Endpoints().Stamped[0], 3)
	subscribed(t, edge, egressStamped, 1)
	pyPub(t, core.Endpoints().Ingress[0], map[string]any{"messages": [][]string{{"x", "1"}, {"y", "1"}, {"x", "2"}}})
	got := sub.Until(t, "done", wait)
	if len(got) != 3 {
		t.Fatalf("edge subscriber got %d messages, want 3", len(got))
	}
	wantSeq := []uint64{1, 1, 2}
	for i, e := range got {
		f := e.Bytes()
		if len(f) != 3 {
			t.Fatalf("edge message %d has %d frames, want 3 (one stamp, not two)", i, len(f))
		}
		st, _ := tick.ParseStamp(f[2])
		if st.Epoch != core.Epoch() || st.Seq != wantSeq[i] {
			t.Errorf("edge message %d stamp epoch %x seq %d, want core's epoch %x seq %d", i, st.Epoch, st.Seq, core.Epoch(), wantSeq[i])
		}
	}
	if m := <-rec.ch; m.Stamp.Epoch != core.Epoch() || len(m.Frames) != 2 {
		t.Errorf("edge sink got epoch %x frames %d, want core epoch and 2 frames", m.Stamp.Epoch, len(m.Frames))
	}
}

func TestStampedIngressDropsUnstampedAndDuplicates(t *testing.T) {
	c := testConfig()
	c.IngressStamped = true
	p := start(t, c)
	ep := p.Endpoints()
	sub := rawSub(t, p, 1)
	st := string(tick.AppendStamp(nil, tick.Stamp{Epoch: 9, Seq: 5, Ingress: 1}))
	old := string(tick.AppendStamp(nil, tick.Stamp{Epoch: 9, Seq: 4, Ingress: 1}))
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{
		{"t", "no stamp"}, {"t", "v", st}, {"t", "dup", st}, {"t", "old", old},
	}})
	got := sub.Until(t, "done", wait)
	if len(got) != 1 || !slices.Equal(got[0].Strings(), []string{"t", "v"}) {
		t.Errorf("subscriber got %v, want only the stamped v, as [t v] (its stamp frame taken off)", got)
	}
	for r, want := range map[DropReason]float64{DropBadStamp: 1, DropDuplicate: 2} {
		testpeer.Eventually(t, wait, fmt.Sprintf("dropped{reason=%q} = %v", r, want), func() bool {
			return testutil.ToFloat64(p.m.dropped[r]) == want
		})
	}
}

func TestTopicLimit(t *testing.T) {
	c := testConfig()
	c.MaxTopics = 2
	p := start(t, c)
	ep := p.Endpoints()
	sub := rawSub(t, p, 3)
	pyPub(t, ep.Ingress[0], map[string]any{"messages": [][]string{{"a", "1"}, {"b", "1"}, {"c", "1"}, {"a", "2"}}})
	got := sub.Until(t, "done", wait)
	if len(got) != 3 || got[2].Strings()[0] != "a" {
		t.Errorf("subscriber got %v, want a, b, a", got)
	}
	if got := testutil.ToFloat64(p.m.dropped[DropTopicLimit]); got != 1 {
		t.Errorf("dropped{reason=topic_limit} = %v, want 1", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"no ingress", func(c *Config) { c.IngressBind = nil }, "no ingress"},
		{"bad endpoint", func(c *Config) { c.EgressBind = []string{"http://x"} }, `endpoint "http://x"`},
		{"frames", func(c *Config) { c.MaxFrames = 0 }, "max frames 0"},
		{"size", func(c *Config) { c.MaxMsgSize = 0 }, "max message size 0"},
		{"multicast rate too high", func(c *Config) { c.MulticastRate = 1_000_000 }, "multicast rate 1000000 kbit/s: want 1 to 500000"},
		{"multicast rate zero", func(c *Config) { c.MulticastRate = 0 }, "multicast rate 0"},
		{"multicast hops", func(c *Config) { c.MulticastHops = 0 }, "multicast hops 0"},
		{"multicast recovery", func(c *Config) { c.MulticastRecovery = 0 }, "multicast recovery interval 0s"},
		{"curve without clients", func(c *Config) { c.CurveSecret = strings.Repeat("A", 40) }, "no client key is allowed"},
		{"curve bad key", func(c *Config) { c.CurveSecret = "short" }, "CURVE secret key: want 40 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("Validate(%s) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

// rawPublishPartial speaks ZMTP 3.0 by hand as a PUB, sends the first frame of
// a message with the MORE flag, and closes the TCP connection.
func rawPublishPartial(t *testing.T, endpoint string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xff, 0x7f, 3
	copy(greeting[12:], "NULL")
	ready := []byte{0x04, 0, 5, 'R', 'E', 'A', 'D', 'Y', 11}
	ready = append(ready, "Socket-Type"...)
	ready = append(ready, 0, 0, 0, 3, 'P', 'U', 'B')
	ready[1] = byte(len(ready) - 2)
	if _, err := conn.Write(append(greeting, ready...)); err != nil {
		t.Fatal(err)
	}
	peer := make([]byte, 64)
	if _, err := io.ReadFull(conn, peer); err != nil {
		t.Fatalf("ZMTP greeting from gateway: %v", err)
	}
	if _, err := conn.Write([]byte{0x01, 10, 'm', 'd', '.', 'p', 'a', 'r', 't', 'i', 'a', 'l'}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckHandleMatchesPebbe(t *testing.T) {
	for _, typ := range []zmq.Type{zmq.XSUB, zmq.XPUB, zmq.PUB, zmq.PAIR} {
		s, err := zmq.NewSocket(typ)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkHandle(s); err != nil {
			t.Errorf("checkHandle(%v) = %v, want nil", typ, err)
		}
		s.Close()
	}
}

// TestStopWithPeersConnectedLeavesContextUsable stops gateways while many
// peers are leaving, then checks that libzmq's shared I/O thread
// still moves traffic. Closing a monitor's reader before its socket once
// left that thread blocked in a monitor event send, and every later socket
// of the process dead.
func TestStopWithPeersConnectedLeavesContextUsable(t *testing.T) {
	for round := range 5 {
		p, err := New(testConfig(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- p.Run(ctx) }()
		<-p.Ready()
		ep := p.Endpoints()
		var peers []*zmq.Socket
		for i := range 20 {
			s, _ := zmq.NewSocket(zmq.SUB)
			s.SetLinger(0)
			s.SetSubscribe("")
			target := ep.Egress[0]
			if i%2 == 1 {
				s.Close()
				s, _ = zmq.NewSocket(zmq.PUB)
				s.SetLinger(0)
				target = ep.Ingress[0]
			}
			if err := s.Connect(target); err != nil {
				t.Fatal(err)
			}
			peers = append(peers, s)
		}
		testpeer.Eventually(t, wait, "peers at the gateway", func() bool {
			h := p.Health()
			return h.IngressPeers >= 10 && h.EgressPeers >= 10
		})
		// The peers leave as the gateway stops: their disconnect events
		// race the gateway's shutdown in libzmq's I/O thread.
		for _, s := range peers {
			s.Close()
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("round %d: Run: %v", round, err)
		}
		// A fresh pair over tcp must still connect and carry a message.
		pub, _ := zmq.NewSocket(zmq.PUB)
		sub, _ := zmq.NewSocket(zmq.SUB)
		pub.SetLinger(0)
		sub.SetLinger(0)
		sub.SetSubscribe("")
		sub.SetRcvtimeo(10 * time.Millisecond)
		in, err := bind(pub, "tcp://127.0.0.1:*")
		if err != nil {
			t.Fatal(err)
		}
		sub.Connect(in)
		testpeer.Eventually(t, wait, fmt.Sprintf("round %d: a message over a fresh tcp pair", round), func() bool {
			pub.Send("ping", 0)
			_, err := sub.Recv(0)
			return err == nil
		})
		pub.Close()
		sub.Close()
	}
}

func TestSubscriptionsReported(t *testing.T) {
	tests := []struct {
		endpoints []string
		want      bool
	}{
		{nil, true},
		{[]string{"tcp://*:5559"}, true},
		{[]string{"tcp://*:5559", "ipc:///tmp/md", "inproc://md"}, true},
		{[]string{"tcp://*:5559", "epgm://127.0.0.1;239.192.1.2:5561"}, false},
		{[]string{"pgm://eth0;239.192.1.1:5555"}, false},
		{[]string{"norm://239.192.1.1:5555"}, false},
		{[]string{"udp://239.192.1.1:5555"}, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.endpoints, ","), func(t *testing.T) {
			if got := subscriptionsReported(tt.endpoints); got != tt.want {
				t.Errorf("subscriptionsReported(%q) = %v, want %v", tt.endpoints, got, tt.want)
			}
		})
	}
}
