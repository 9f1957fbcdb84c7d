package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// TestThrottleLatestOnTheEdge: a subscription with throttle_ms gets at most
// one update per topic per interval, always the latest, told how many it
// skipped, and the newest value arrives within the interval.
func TestThrottleLatestOnTheEdge(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","topics":["md.t","md.u"],"snapshot":false,"throttle_ms":200}`)
	if ack := c.until(t, "ack"); ack["throttle_ms"] != 200.0 {
		t.Fatalf("ack = %v, want throttle_ms 200", ack["\x00raw"])
	}
	start := time.Now()
	var last uint64
	for range 300 {
		last = r.publish("md.t", `{"px":1}`)
		time.Sleep(time.Millisecond) // the feed's pace: ~300 ms of updates
	}
	published := time.Now()
	got, skipped, prev := 0, 0.0, 0.0
	for {
		m := c.next(t)
		seq, _ := m["seq"].(float64)
		if seq <= prev {
			t.Fatalf("seq %v after %v", seq, prev)
		}
		prev = seq
		got++
		if s, ok := m["skipped"].(float64); ok {
			skipped += s
		}
		if seq == float64(last) {
			break
		}
	}
	lateBy := time.Since(published)
	span := published.Sub(start)
	if max := int(span/(200*time.Millisecond)) + 2; got > max {
		t.Fatalf("%d updates in %v under throttle_ms 200, want at most %d", got, span, max)
	}
	if int(skipped)+got != int(last) {
		t.Fatalf("%d delivered + %v skipped, want %d in all", got, skipped, last)
	}
	if lateBy > 200*time.Millisecond+freshnessSlack {
		t.Fatalf("the newest value came %v after it was published, want within the 200 ms interval (+%v)", lateBy, freshnessSlack)
	}
	t.Logf("300 updates in %v: %d delivered, %v skipped, the last %v after publishing; throttled %v",
		span.Round(time.Millisecond), got, skipped, lateBy.Round(time.Millisecond), r.metric(t, "mdgate_fanout_throttled_total"))
}

// TestResumeCompact: resume points sent with the epoch named once, in
// chunks, are used by the next subscribe: up-to-date topics send nothing,
// behind ones their latest value with the number missed.
func TestResumeCompact(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	for i := range 5 {
		r.publish("md.a", fmt.Sprintf(`{"px":%d}`, i))
	}
	r.publish("md.b", `{"px":1}`)
	c := r.dial(t, nil)
	ep := fmt.Sprintf("%016x", uint64(epoch))
	c.send(t, `{"op":"resume","id":1,"epoch":"`+ep+`","seqs":{"md.a":2}}`)
	if ack := c.until(t, "ack"); ack["req"] != "resume" || ack["held"] != 1.0 {
		t.Fatalf("ack = %v, want req resume, held 1", ack["\x00raw"])
	}
	c.send(t, `{"op":"resume","id":2,"epoch":"`+ep+`","seqs":{"md.b":1}}`)
	if ack := c.until(t, "ack"); ack["held"] != 2.0 {
		t.Fatalf("ack = %v, want held 2", ack["\x00raw"])
	}
	c.send(t, `{"op":"subscribe","id":3,"prefixes":["md."]}`)
	if ack := c.until(t, "ack"); ack["snapshot"] != 1.0 {
		t.Fatalf("ack = %v, want one snapshot value (md.b is up to date)", ack["\x00raw"])
	}
	m := c.next(t)
	if m["topic"] != "md.a" || m["seq"] != 5.0 || m["gap"] != true || m["missed"] != 2.0 {
		t.Fatalf("got %v, want md.a seq 5 with gap, missed 2", m["\x00raw"])
	}
	seq := r.publish("md.b", `{"px":2}`)
	if m := c.next(t); m["topic"] != "md.b" || m["seq"] != float64(seq) {
		t.Fatalf("got %v, want the live md.b seq %d", m["\x00raw"], seq)
	}
	testpeer.Eventually(t, wait, "the requests counted", func() bool {
		return r.metric(t, "mdgate_ws_requests_total", "op", "resume") == 2
	})
}
