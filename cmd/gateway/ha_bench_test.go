package main

import (
	be "encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// cpuSeconds is a process's user+system CPU time from /proc.
func cpuSeconds(tb testing.TB, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64) // fields 14 and 15 of stat, after pid and comm
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// BenchmarkMirrorCost: a pair at 20k msgs/s for 3 s: the CPU the standby
// spends mirroring the active's stamped stream into its cache and history,
// per message, beside what the active spends stamping and publishing it.
func BenchmarkMirrorCost(b *testing.B) {
	const perMs, window = 20, 3 * time.Second
	var active, passive float64
	for range b.N {
		p, bk := startPair(b)
		stop := publishPair(p, bk, 10, perMs)
		time.Sleep(500 * time.Millisecond) // warm-up: load, not synchronisation
		a0, s0 := cpuSeconds(b, p.Cmd.Process.Pid), cpuSeconds(b, bk.Cmd.Process.Pid)
		time.Sleep(window) // the measured window
		a1, s1 := cpuSeconds(b, p.Cmd.Process.Pid), cpuSeconds(b, bk.Cmd.Process.Pid)
		stop()
		msgs := float64(perMs) * 1000 * window.Seconds()
		active += (a1 - a0) / msgs
		passive += (s1 - s0) / msgs
	}
	n := float64(b.N)
	b.ReportMetric(active/n*1e6, "active_cpu_us/msg")
	b.ReportMetric(passive/n*1e6, "passive_cpu_us/msg")
	b.ReportMetric(passive/active, "passive/active")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEdgeHop: the latency one edge gateway (--ingress-stamped from a
// core's stamped egress) adds: a publisher stamps its send time into each
// message (1k msgs/s), one SUB reads the core's stamped egress and one the
// edge's; the figures are p50 and p99 of each, and the difference.
func BenchmarkEdgeHop(b *testing.B) {
	core, edge := testpair.NewNode(b, binary, false), testpair.NewNode(b, binary, false)
	run := func(n *testpair.Node, args ...string) {
		n.Start(b, append([]string{"--http", n.HTTP, "--egress-bind", "", "--stamped-bind", n.Stamped,
			"--snapshot-bind", "", "--log-level", "warn"}, args...))
	}
	run(core, "--ingress-bind", core.In)
	run(edge, "--ingress-bind", "", "--ingress-connect", core.Stamped, "--ingress-stamped")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	subs := map[string]*zmq.Socket{}
	for name, ep := range map[string]string{"core": core.Stamped, "edge": edge.Stamped} {
		s, _ := zmq.NewSocket(zmq.SUB)
		defer s.Close()
		s.SetLinger(0)
		s.SetRcvtimeo(20 * time.Millisecond)
		s.SetSubscribe("lat")
		if err := s.Connect(ep); err != nil {
			b.Fatal(err)
		}
		subs[name] = s
	}
	pub, _ := zmq.NewSocket(zmq.PUB)
	defer pub.Close()
	pub.SetLinger(0)
	pub.Connect(core.In)
	send := func() {
		var ts [8]byte
		be.BigEndian.PutUint64(ts[:], uint64(time.Now().UnixNano()))
		pub.SendBytes([]byte("lat"), zmq.SNDMORE)
		pub.SendBytes(ts[:], 0)
	}
	// Until both SUBs get one: every subscription is through.
	got := map[string]bool{}
	testpeer.Eventually(b, 20*time.Second, "a message through core and edge", func() bool {
		send()
		for name, s := range subs {
			if f, err := s.RecvMessageBytes(0); err == nil && len(f) == 3 {
				got[name] = true
			}
		}
		return got["core"] && got["edge"]
	})
	// Both SUBs polled together, each message timed as it arrives.
	poller := zmq.NewPoller()
	names := map[*zmq.Socket]string{}
	for name, s := range subs {
		poller.Add(s, zmq.POLLIN)
		names[s] = name
	}
	lat := map[string][]time.Duration{}
	const n = 2000
	for i := range n {
		send()
		for seen := 0; seen < 2; {
			polled, err := poller.Poll(time.Second)
			if err != nil || len(polled) == 0 {
				b.Fatalf("message %d: nothing within 1s (%v)", i, err)
			}
			for _, pd := range polled {
				f, err := pd.Socket.RecvMessageBytes(zmq.DONTWAIT)
				if err != nil || len(f) != 3 || len(f[1]) != 8 {
					continue
				}
				name := names[pd.Socket]
				lat[name] = append(lat[name], time.Since(time.Unix(0, int64(be.BigEndian.Uint64(f[1])))))
				seen++
			}
		}
		time.Sleep(time.Millisecond) // 1k msgs/s: a paced load, not synchronisation
	}
	q := func(name string, p float64) time.Duration {
		l := lat[name]
		slices.Sort(l)
		return l[int(p*float64(len(l)-1))]
	}
	b.ReportMetric(float64(q("core", 0.5).Microseconds()), "core_p50_us")
	b.ReportMetric(float64(q("edge", 0.5).Microseconds()), "edge_p50_us")
	b.ReportMetric(float64((q("edge", 0.5) - q("core", 0.5)).Microseconds()), "hop_p50_us")
	b.ReportMetric(float64(q("core", 0.99).Microseconds()), "core_p99_us")
	b.ReportMetric(float64(q("edge", 0.99).Microseconds()), "edge_p99_us")
	b.ReportMetric(0, "ns/op")
}
