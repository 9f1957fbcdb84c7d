package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/lvc"
)

// The benchmark message: a 9-byte topic and a 64-byte payload.
var (
	benchTopic   = []byte("md.eq.ABC")
	benchPayload = make([]byte, 64)
)

// path is one way from a publisher's endpoint to a subscriber's.
type path struct {
	name  string
	start func(tb testing.TB) (in, out string, stop func())
}

// direct has no proxy at all: the machine's ceiling for this harness.
func directPath(tb testing.TB) (string, string, func()) {
	return "", "", func() {}
}

// zmqProxyPath runs libzmq's own zmq_proxy (the C loop) between XSUB and XPUB.
// One goroutine creates, runs and closes its sockets; a TERMINATE on the
// control socket stops it.
func zmqProxyPath(tb testing.TB) (string, string, func()) {
	type eps struct {
		in, out, ctl string
		err          error
	}
	ready := make(chan eps, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		xsub, _ := zmq.NewSocket(zmq.XSUB)
		xpub, _ := zmq.NewSocket(zmq.XPUB)
		ctl, _ := zmq.NewSocket(zmq.PAIR)
		for _, s := range []*zmq.Socket{xsub, xpub, ctl} {
			s.SetSndhwm(0)
			s.SetRcvhwm(0)
			s.SetLinger(0)
			defer s.Close()
		}
		var e eps
		var err1, err2, err3 error
		e.in, err1 = bind(xsub, "tcp://127.0.0.1:*")
		e.out, err2 = bind(xpub, "tcp://127.0.0.1:*")
		e.ctl = fmt.Sprintf("inproc://bench-ctl-%d", monitorSeq.Add(1))
		err3 = ctl.Bind(e.ctl)
		e.err = errors.Join(err1, err2, err3)
		ready <- e
		if e.err == nil {
			zmq.ProxySteerable(xsub, xpub, nil, ctl)
		}
	}()
	e := <-ready
	if e.err != nil {
		tb.Fatal(e.err)
	}
	return e.in, e.out, func() {
		c, _ := zmq.NewSocket(zmq.PAIR)
		defer c.Close()
		c.Connect(e.ctl)
		c.Send("TERMINATE", 0)
		<-done
	}
}

func mdgatePath(tb testing.TB) (string, string, func()) { return mdgateWith(tb, nil) }

// mdgateCachePath runs mdgate with the last-value cache on.
func mdgateCachePath(tb testing.TB) (string, string, func()) {
	return mdgateWith(tb, lvc.New(lvc.DefaultConfig(), nil))
}

// mdgateHistoryPath runs mdgate with the cache and a history of 1,000
// updates for every topic (full after the first 1,000: each update lets
// one go, the steady state).
func mdgateHistoryPath(tb testing.TB) (string, string, func()) {
	cfg := lvc.DefaultConfig()
	cfg.History = []lvc.HistoryRule{{Prefix: "", MaxCount: 1000, MaxBytes: 1 << 20}}
	return mdgateWith(tb, lvc.New(cfg, nil))
}

func mdgateWith(tb testing.TB, cache Cache) (string, string, func()) {
	c := testConfig()
	c.StampedBind = nil
	c.IngressHWM, c.EgressHWM, c.EgressMaxBytes = 0, 0, 0
	opts := Options{}
	if cache != nil {
		opts.Cache = cache
	}
	p, err := New(c, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-errc:
		tb.Fatal(err)
	}
	ep := p.Endpoints()
	return ep.Ingress[0], ep.Egress[0], func() { cancel(); <-errc }
}

var paths = []path{{"direct", directPath}, {"zmq_proxy", zmqProxyPath}, {"mdgate", mdgatePath}, {"mdgate_lvc", mdgateCachePath}, {"mdgate_history", mdgateHistoryPath}}

// pump sends n 2-frame messages from a PUB to a SUB through the path and
// returns the time from first send to last receive, or an error when fewer
// than n arrived exactly as sent.
func pump(tb testing.TB, pa path, n int) (time.Duration, error) {
	in, out, stop := pa.start(tb)
	defer stop()
	pub, _ := zmq.NewSocket(zmq.PUB)
	sub, _ := zmq.NewSocket(zmq.SUB)
	defer pub.Close()
	defer sub.Close()
	for _, s := range []*zmq.Socket{pub, sub} {
		s.SetSndhwm(0)
		s.SetRcvhwm(0)
		s.SetLinger(0)
	}
	sub.SetSubscribe("")
	if in == "" { // direct
		ep, err := bind(pub, "tcp://127.0.0.1:*")
		if err != nil {
			tb.Fatal(err)
		}
		sub.Connect(ep)
	} else {
		pub.Connect(in)
		sub.Connect(out)
	}
	// Warm up until one message crosses: subscriptions have propagated.
	sub.SetRcvtimeo(10 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pub.SendBytes([]byte("warm"), 0)
		if _, err := sub.RecvBytes(0); err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: nothing crossed in 10s", pa.name)
		}
	}
	sub.SetRcvtimeo(-1)
	for { // drain warm-ups still in flight
		if _, err := sub.RecvBytes(zmq.DONTWAIT); err != nil {
			if ev, _ := sub.GetEvents(); ev&zmq.POLLIN == 0 {
				break
			}
		}
	}
	type result struct {
		d   time.Duration
		got int   // messages received intact
		err error // why the receiver stopped before n
	}
	received := make(chan result, 1)
	start := time.Now()
	go func() {
		runtime.LockOSThread()
		var r result
		for r.got < n {
			topic, err := sub.RecvBytes(0)
			if err != nil {
				r.err = err
				break
			}
			if more, _ := sub.GetRcvmore(); !more {
				continue // a late warm-up
			}
			payload, err := sub.RecvBytes(0)
			if err != nil {
				r.err = err
				break
			}
			if more, _ := sub.GetRcvmore(); more || !bytes.Equal(topic, benchTopic) || !bytes.Equal(payload, benchPayload) {
				r.err = fmt.Errorf("message %d is [%q %q] (more frames: %v), want [%q %q]", r.got+1, topic, payload, more, benchTopic, benchPayload)
				break
			}
			r.got++
		}
		r.d = time.Since(start)
		received <- r
	}()
	for range n {
		pub.SendBytes(benchTopic, zmq.SNDMORE)
		pub.SendBytes(benchPayload, 0)
	}
	select {
	case r := <-received:
		if r.got != n {
			return r.d, fmt.Errorf("%s: %d of %d messages received intact: %v", pa.name, r.got, n, r.err)
		}
		return r.d, nil
	case <-time.After(60 * time.Second):
		tb.Fatalf("%s: %d messages not received within 60s", pa.name, n)
		return 0, nil
	}
}

// BenchmarkIngressToEgress measures msgs/s through each path in the same run
// and reports mdgate's throughput as a ratio of libzmq's zmq_proxy, and the
// cost of the cache and of a history on top of it. A path that loses or
// alters a message fails the benchmark.
func BenchmarkIngressToEgress(b *testing.B) {
	const n = 300_000
	total := make([]time.Duration, len(paths))
	var ratios [3][]float64 // by round: mdgate/zmq_proxy, lvc on/off, history on/off
	for range b.N {
		round := make([]time.Duration, len(paths))
		for i, pa := range paths {
			d, err := pump(b, pa, n)
			if err != nil {
				b.Fatal(err)
			}
			round[i] = d
			total[i] += d
		}
		// A round's paths run one after another within seconds, so their
		// ratio is less moved by this machine's swings than the totals'.
		for k, pair := range [3][2]int{{2, 1}, {3, 2}, {4, 3}} {
			ratios[k] = append(ratios[k], float64(round[pair[1]])/float64(round[pair[0]]))
		}
	}
	rate := func(i int) float64 { return float64(n*b.N) / total[i].Seconds() }
	for i, pa := range paths {
		b.ReportMetric(rate(i), pa.name+"_msgs/s")
	}
	b.ReportMetric(median(ratios[0]), "mdgate/zmq_proxy")
	b.ReportMetric(median(ratios[1]), "lvc_on/off")
	b.ReportMetric(median(ratios[2]), "history_on/off")
	b.ReportMetric(0, "ns/op")
}

// median is the middle value of xs (the mean of the middle two when even).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TestPumpSmoke: every path of the benchmark delivers each message it is
// given, unchanged, so its figures measure delivery.
func TestPumpSmoke(t *testing.T) {
	for _, pa := range paths {
		if _, err := pump(t, pa, 1000); err != nil {
			t.Errorf("pump(%s, 1000): %v", pa.name, err)
		}
	}
}
