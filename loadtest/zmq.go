package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	zmq "github.com/pebbe/zmq4"
)

// The ZeroMQ scenario's payload: send time (ns), publisher, sequence (0 is a
// warm-up message), then padding.
const zmqHeader = 20

// zmqProxyChild runs libzmq's own zmq_proxy (the C loop) between an XSUB on
// in and an XPUB on out, for the baseline; the parent kills it.
func zmqProxyChild(in, out string) error {
	runtime.LockOSThread()
	xsub, _ := zmq.NewSocket(zmq.XSUB)
	xpub, _ := zmq.NewSocket(zmq.XPUB)
	for _, s := range []*zmq.Socket{xsub, xpub} {
		s.SetSndhwm(0)
		s.SetRcvhwm(0)
	}
	if err := xsub.Bind(in); err != nil {
		return err
	}
	if err := xpub.Bind(out); err != nil {
		return err
	}
	fmt.Println("ready")
	return zmq.Proxy(xsub, xpub, nil)
}

// startZMQProxy starts the baseline proxy as its own process, like the
// gateway, so both are measured the same way.
func startZMQProxy(o options) (in, out string, stop func(), err error) {
	a, err1 := freePort()
	b, err2 := freePort()
	if err1 != nil || err2 != nil {
		return "", "", nil, fmt.Errorf("free ports: %v %v", err1, err2)
	}
	self, err := os.Executable()
	if err != nil {
		return "", "", nil, err
	}
	in, out = "tcp://"+a, "tcp://"+b
	name, args := self, []string{"-zmq-proxy-child", in + "," + out}
	if o.pin {
		name, args = "taskset", append([]string{"-c", "0", self}, args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		cancel()
		return "", "", nil, err
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	stop = func() { cancel(); cmd.Wait() }
	if strings.TrimSpace(line) != "ready" {
		stop()
		return "", "", nil, fmt.Errorf("zmq_proxy child: %q", line)
	}
	return in, out, stop, nil
}

type zmqSub struct {
	hist        *hdrhistogram.Histogram
	got, warm   atomic.Int64
	first, last atomic.Int64 // ns of the first and last measured message
}

// zmqRun sends o.zmqCount messages from each of o.zmqPubs publishers at
// o.zmqRate messages a second in all (0: flat out) to o.zmqSubs subscribers
// through one path: "direct" (no proxy), "zmq_proxy" or "mdgate".
func zmqRun(path string, g *gateway, o options) (result, error) {
	var in string
	var outs []string
	pubBind := path == "direct"
	switch path {
	case "mdgate":
		in, outs = g.ingress, []string{g.egress}
	case "zmq_proxy":
		i, out, stop, err := startZMQProxy(o)
		if err != nil {
			return result{}, err
		}
		defer stop()
		in, outs = i, []string{out}
	case "direct":
		for range o.zmqPubs {
			p, err := freePort()
			if err != nil {
				return result{}, err
			}
			outs = append(outs, "tcp://"+p)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]*zmqSub, o.zmqSubs)
	var wg sync.WaitGroup
	errc := make(chan error, o.zmqSubs+o.zmqPubs)
	for i := range subs {
		subs[i] = &zmqSub{hist: newHist()}
		wg.Add(1)
		go func() { defer wg.Done(); errc <- subs[i].run(ctx, outs) }()
	}
	warmed := make(chan struct{})
	start := make(chan struct{})
	var pwg sync.WaitGroup
	var cpu0 time.Duration
	for p := range o.zmqPubs {
		ep := in
		if pubBind {
			ep = outs[p]
		}
		pwg.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- zmqPublish(ctx, ep, pubBind, p, o, warmed, start, pwg.Done)
		}()
	}
	// Warm up until every subscriber has a message: subscriptions are in.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, s := range subs {
			ok = ok && s.warm.Load() > 0
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%s: no message crossed in 15s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(warmed)
	time.Sleep(50 * time.Millisecond) // let the last warm-ups land before counting; a pause, not synchronisation
	if g != nil && path == "mdgate" {
		cpu0, _ = g.procStats()
	}
	close(start)
	pwg.Wait()
	want := int64(o.zmqPubs * o.zmqCount)
	last, quiet := int64(-1), time.Now()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var n int64
		for _, s := range subs {
			n += s.got.Load()
		}
		if n == want*int64(len(subs)) {
			break
		}
		if n != last {
			last, quiet = n, time.Now()
		} else if time.Since(quiet) > time.Second {
			break
		}
	}
	var cpu1 time.Duration
	var rss int64
	if path == "mdgate" {
		cpu1, rss = g.procStats()
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return result{}, err
		}
	}
	h := newHist()
	var delivered int64
	var rate float64
	for _, s := range subs {
		h.Merge(s.hist)
		n := s.got.Load()
		delivered += n
		if d := time.Duration(s.last.Load() - s.first.Load()); d > 0 {
			rate += float64(n) / d.Seconds() / float64(len(subs))
		}
	}
	r := result{Kind: "zmq", Path: path, Target: o.zmqRate, Clients: o.zmqSubs, Sent: want,
		Expected: want * int64(len(subs)), Delivered: delivered, Rate: rate, Latency: summarize(h),
		RSSMB: float64(rss) / (1 << 20)}
	r.Lost = max(r.Expected-r.Delivered, 0)
	if path == "mdgate" && delivered > 0 {
		r.CPUusPer = float64((cpu1 - cpu0).Microseconds()) / float64(want)
	}
	return r, nil
}

func (s *zmqSub) run(ctx context.Context, eps []string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sock, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		return err
	}
	defer sock.Close()
	sock.SetRcvhwm(0)
	sock.SetLinger(0)
	sock.SetRcvtimeo(20 * time.Millisecond)
	sock.SetSubscribe("")
	for _, ep := range eps {
		if err := sock.Connect(ep); err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		frames, err := sock.RecvMessageBytes(0)
		if err != nil || len(frames) < 2 || len(frames[1]) < zmqHeader {
			continue
		}
		now := time.Now().UnixNano()
		p := frames[1]
		if binary.BigEndian.Uint64(p[12:20]) == 0 {
			s.warm.Add(1)
			continue
		}
		t := int64(binary.BigEndian.Uint64(p[0:8]))
		record(s.hist, time.Duration(now-t))
		if s.got.Add(1) == 1 {
			s.first.Store(now)
		}
		s.last.Store(now)
	}
	return nil
}

// zmqPublish calls sent once every message is queued, then keeps the socket
// open (closing it would discard what is still queued) until ctx ends.
func zmqPublish(ctx context.Context, ep string, bind bool, id int, o options, warmed, start chan struct{}, sent func()) error {
	once := sync.OnceFunc(sent)
	defer once()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, err := openPub(ep, bind)
	if err != nil {
		return err
	}
	defer pub.Close()
	topic := []byte(fmt.Sprintf("md.eq.P%02d", id))
	payload := make([]byte, max(o.payload, zmqHeader))
	binary.BigEndian.PutUint32(payload[8:12], uint32(id))
	for warming := true; warming; {
		select {
		case <-warmed:
			warming = false
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond):
			binary.BigEndian.PutUint64(payload[0:8], uint64(time.Now().UnixNano()))
			pub.SendBytes(topic, zmq.SNDMORE)
			pub.SendBytes(payload, 0)
		}
	}
	<-start
	perPub := float64(o.zmqRate) / float64(o.zmqPubs)
	t0 := time.Now()
	for seq := 1; seq <= o.zmqCount; seq++ {
		if perPub > 0 {
			if due := t0.Add(time.Duration(float64(seq) / perPub * float64(time.Second))); time.Until(due) > 100*time.Microsecond {
				time.Sleep(time.Until(due)) // the publisher's pace
			}
		}
		binary.BigEndian.PutUint64(payload[0:8], uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(payload[12:20], uint64(seq))
		pub.SendBytes(topic, zmq.SNDMORE)
		pub.SendBytes(payload, 0)
	}
	once()
	<-ctx.Done()
	return nil
}

// openPub is a load publisher: unbounded queue, no linger, bound or
// connected to ep. The caller's goroutine owns it.
func openPub(ep string, bind bool) (*zmq.Socket, error) {
	pub, err := zmq.NewSocket(zmq.PUB)
	if err != nil {
		return nil, err
	}
	pub.SetSndhwm(0)
	pub.SetLinger(0)
	if bind {
		err = pub.Bind(ep)
	} else {
		err = pub.Connect(ep)
	}
	if err != nil {
		pub.Close()
		return nil, err
	}
	return pub, nil
}
