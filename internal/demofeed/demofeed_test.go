package demofeed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/demofeed"
)

func TestInstrumentsDistinctAndDeterministic(t *testing.T) {
	a, b := demofeed.Instruments(300, 7), demofeed.Instruments(300, 7)
	seen := map[string]bool{}
	for i, in := range a {
		if seen[in.Topic] {
			t.Fatalf("duplicate topic %q", in.Topic)
		}
		seen[in.Topic] = true
		if b[i].Topic != in.Topic {
			t.Fatalf("Instruments(300, 7)[%d] = %q then %q, want the same", i, in.Topic, b[i].Topic)
		}
	}
	if len(a) != 300 {
		t.Errorf("len(Instruments(300)) = %d, want 300", len(a))
	}
}

func TestNextIsJSON(t *testing.T) {
	f := demofeed.New(50, 1)
	for range 1000 {
		topic, payload := f.Next(time.Unix(0, 42))
		var v struct {
			Sym          string
			Px, Bid, Ask float64
			Ts           int64
		}
		if err := json.Unmarshal(payload, &v); err != nil {
			t.Fatalf("Next() payload %q: %v", payload, err)
		}
		if !strings.HasSuffix(topic, "."+v.Sym) || v.Px <= 0 || v.Bid > v.Ask || v.Ts != 42 {
			t.Fatalf("Next() = %q %s: want topic ending in sym, px > 0, bid <= ask, ts 42", topic, payload)
		}
	}
}

func ExampleInstruments() {
	for _, in := range demofeed.Instruments(3, 1) {
		fmt.Println(in.Topic)
	}
	// Output:
	// md.fx.EURUSD
	// md.fx.USDJPY
	// md.fx.GBPUSD
}

// Publish against a libzmq SUB: [topic, JSON] messages arrive, and Publish
// ends with its context.
func TestPublish(t *testing.T) {
	runtime.LockOSThread() // this goroutine owns sub
	defer runtime.UnlockOSThread()
	const wait = 10 * time.Second
	sub, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := errors.Join(sub.SetLinger(0), sub.SetRcvtimeo(wait), sub.SetSubscribe("md."), sub.Bind("tcp://127.0.0.1:*")); err != nil {
		t.Fatal(err)
	}
	ep, _ := sub.GetLastEndpoint()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- demofeed.Publish(ctx, ep, 10_000, 20) }()
	for range 5 {
		msg, err := sub.RecvMessageBytes(0)
		if err != nil {
			t.Fatalf("no message within %v: %v", wait, err)
		}
		if len(msg) != 2 || !json.Valid(msg[1]) || !strings.HasPrefix(string(msg[0]), "md.") {
			t.Fatalf("received %q, want [topic, JSON]", msg)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Publish = %v, want nil once ctx is done", err)
		}
	case <-time.After(wait):
		t.Fatalf("Publish still running %v after ctx was cancelled", wait)
	}
}

func TestPublishErrors(t *testing.T) {
	tests := []struct {
		endpoint   string
		rate, n    int
		wantPrefix string
	}{
		{"tcp://127.0.0.1:1", 0, 10, "demofeed: rate 0 and instruments 10 must be positive"},
		{"tcp://127.0.0.1:1", 10, 0, "demofeed: rate 10 and instruments 0 must be positive"},
		{"nosuch://x", 10, 10, "demofeed connect nosuch://x: "},
	}
	for _, tt := range tests {
		t.Run(tt.wantPrefix, func(t *testing.T) {
			err := demofeed.Publish(context.Background(), tt.endpoint, tt.rate, tt.n)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantPrefix) {
				t.Errorf("Publish(%q, %d, %d) = %v, want an error starting %q", tt.endpoint, tt.rate, tt.n, err, tt.wantPrefix)
			}
		})
	}
}
