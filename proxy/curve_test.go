package proxy

import (
	"testing"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mdgate/mdgate/internal/testpeer"
)

func keypair(t *testing.T) (public, secret string) {
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	return pub, sec
}

// Only known publishers publish and only known subscribers subscribe: real
// python3-zmq CURVE peers, one with a key the gateway does not know.
func TestCurveLetsOnlyKnownKeysIn(t *testing.T) {
	serverPub, serverSec := keypair(t)
	pubPub, pubSec := keypair(t)
	subPub, subSec := keypair(t)
	strangerPub, strangerSec := keypair(t)
	c := testConfig()
	c.CurveSecret = serverSec
	c.CurveClients = []string{pubPub, subPub}
	p := start(t, c)
	ep := p.Endpoints()
	curve := func(public, secret string) map[string]any {
		return map[string]any{"server_key": serverPub, "public": public, "secret": secret}
	}

	// A stranger subscriber is refused: its subscription never arrives.
	testpeer.Start(t, "sub", map[string]any{"endpoint": ep.Egress[0], "count": 1, "timeout_ms": 3000, "curve": curve(strangerPub, strangerSec)})
	testpeer.Eventually(t, wait, "the stranger subscriber refused", func() bool { return testutil.ToFloat64(p.m.auth[authDenied]) >= 1 })

	sub := testpeer.Start(t, "sub", map[string]any{"endpoint": ep.Egress[0], "count": 1, "curve": curve(subPub, subSec)})
	if e := sub.Next(t, wait); e.Event != "ready" {
		t.Fatalf("subscriber said %+v", e)
	}
	subscribed(t, p, egressRaw, 1)
	if n := testutil.ToFloat64(p.m.subscribes[egressRaw]); n != 1 {
		t.Fatalf("subscriptions at the gateway = %v, want only the known subscriber's", n)
	}

	// A stranger publisher's message never arrives; the known one's does.
	testpeer.Start(t, "pub", map[string]any{"endpoint": ep.Ingress[0], "socket": "pub", "curve": curve(strangerPub, strangerSec),
		"messages": [][]string{{"md.eq.EVIL", "1"}}, "repeat": 50, "interval_ms": 10})
	testpeer.Eventually(t, wait, "the stranger publisher refused", func() bool { return testutil.ToFloat64(p.m.auth[authDenied]) >= 2 })
	testpeer.Start(t, "pub", map[string]any{"endpoint": ep.Ingress[0], "curve": curve(pubPub, pubSec),
		"messages": [][]string{{"md.eq.AAPL", "1"}}})
	got := sub.Until(t, "done", wait)
	if len(got) != 1 || got[0].Strings()[0] != "md.eq.AAPL" {
		t.Fatalf("subscriber got %v, want only the known publisher's md.eq.AAPL", got)
	}
	if n := testutil.ToFloat64(p.m.auth[authAllowed]); n != 2 {
		t.Errorf("auth{result=allowed} = %v, want 2", n)
	}
}
