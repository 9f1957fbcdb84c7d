package proxy

import (
	"context"
	"testing"
	"time"

	gozmq "github.com/go-zeromq/zmq4"
)

// go-zeromq/zmq4 v0.17.0 cannot be the gateway's engine, but it is a supported
// client: its PUB and SUB work through the gateway when the gateway's ZMTP
// heartbeats are off (the default), since that library does not answer PINGs.
func TestGoZeromqPublisherAndSubscriber(t *testing.T) {
	p := start(t, testConfig())
	ep := p.Endpoints()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	sub := gozmq.NewSub(ctx)
	defer sub.Close()
	if err := sub.Dial(ep.Egress[0]); err != nil {
		t.Fatalf("go-zeromq SUB dial: %v", err)
	}
	if err := sub.SetOption(gozmq.OptionSubscribe, "gz."); err != nil {
		t.Fatal(err)
	}
	subscribed(t, p, egressRaw, 1)

	pub := gozmq.NewPub(ctx)
	defer pub.Close()
	if err := pub.Dial(ep.Ingress[0]); err != nil {
		t.Fatalf("go-zeromq PUB dial: %v", err)
	}
	// A PUB sends nothing until the gateway's subscription reaches it: send
	// a warm-up topic until the gateway has seen one, then the real messages.
	warm := gozmq.NewMsgFrom([]byte("warmup"), []byte("x"))
	for p.ingressCount() == 0 {
		if ctx.Err() != nil {
			t.Fatal("go-zeromq PUB: gateway never received its warm-up message")
		}
		if err := pub.Send(warm); err != nil {
			t.Fatalf("go-zeromq PUB send: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // pacing the warm-up sends, not synchronisation
	}
	want := [][]string{{"gz.a", "1"}, {"gz.b", "2", "3"}}
	for _, m := range want {
		var frames [][]byte
		for _, f := range m {
			frames = append(frames, []byte(f))
		}
		if err := pub.Send(gozmq.NewMsgFrom(frames...)); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range want {
		msg, err := sub.Recv()
		if err != nil {
			t.Fatalf("go-zeromq SUB recv %d: %v", i, err)
		}
		var got []string
		for _, f := range msg.Frames {
			got = append(got, string(f))
		}
		if len(got) != len(w) || got[0] != w[0] || got[len(got)-1] != w[len(w)-1] {
			t.Errorf("go-zeromq SUB message %d = %q, want %q", i, got, w)
		}
	}
}
