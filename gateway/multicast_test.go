package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/internal/testpeer"
)

const (
	groupIn    = "epgm://127.0.0.1;239.192.1.1:5560" // publishers -> gateway A
	groupChain = "epgm://127.0.0.1;239.192.1.2:5561" // gateway A's stamped egress -> gateway B
	inNetns    = "MDGATE_TEST_IN_NETNS"
)

// TestMulticast really multicasts, inside a network namespace of its own
// (loopback with multicast on and a route for 239/8): a python3-zmq epgm
// publisher feeds gateway A, whose messages reach a tcp subscriber and a
// WebSocket client intact, and A re-publishes its stamped stream by epgm to
// gateway B, which keeps A's stamp. The test re-runs itself inside the
// namespace; creating one needs root (CI runs as root).
func TestMulticast(t *testing.T) {
	if os.Getenv(inNetns) == "" {
		runInNetns(t)
		return
	}
	a := testConfig()
	a.Proxy.IngressBind = nil
	a.Proxy.IngressConnect = []string{groupIn}
	a.Proxy.StampedBind = append(a.Proxy.StampedBind, groupChain)
	ga := start(t, a)

	b := testConfig()
	b.Proxy.IngressBind = nil
	b.Proxy.IngressConnect = []string{groupChain}
	b.Proxy.IngressStamped = true
	b.HTTP = "127.0.0.1:0"
	gb := start(t, b)

	sub := testpeer.Start(t, "sub", map[string]any{"endpoint": ga.Proxy().Endpoints().Egress[0], "prefixes": []string{"md."}, "count": 2})
	sub.Next(t, wait) // ready
	testpeer.Eventually(t, wait, "the tcp subscriber at gateway A", func() bool { return ga.Proxy().Health().EgressPeers >= 1 })
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ga.HTTPAddr()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","prefixes":["md."],"snapshot":false}`))
	readWS := func() string {
		ws.SetReadDeadline(time.Now().Add(wait))
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("websocket: %v", err)
		}
		return string(m)
	}
	if m := readWS(); !strings.Contains(m, `"op":"ack"`) {
		t.Fatalf("websocket got %s, want the ack", m)
	}

	testpeer.Start(t, "pub", map[string]any{"endpoint": groupIn, "socket": "pub", "rate": 100_000,
		"messages": [][]string{{"md.eq.AAPL", `{"px":1}`}, {"md.fx.EUR", "1.08", "", "x"}}})

	want := []string{`["md.eq.AAPL" "{\"px\":1}"]`, `["md.fx.EUR" "1.08" "" "x"]`}
	got := sub.Until(t, "done", wait)
	for i, w := range want {
		if i >= len(got) || fmt.Sprintf("%q", got[i].Strings()) != w {
			t.Fatalf("tcp subscriber got %v, want %v", got, want)
		}
	}
	var lines []string
	for len(lines) < 2 {
		lines = append(lines, strings.Split(readWS(), "\n")...)
	}
	for i, topic := range []string{"md.eq.AAPL", "md.fx.EUR"} {
		var u struct {
			Op, Topic string
			Seq       uint64
		}
		json.Unmarshal([]byte(lines[i]), &u)
		if u.Op != "update" || u.Topic != topic || u.Seq != 1 {
			t.Fatalf("websocket update %d = %s, want %s seq 1", i, lines[i], topic)
		}
	}
	// Gateway B, fed by A's multicast stamped stream, keeps A's stamp.
	testpeer.Eventually(t, wait, "both topics at gateway B with A's epoch", func() bool {
		for _, topic := range []string{"md.eq.AAPL", "md.fx.EUR"} {
			m, ok := gb.Cache().Get(topic)
			if !ok || m.Stamp.Epoch != ga.Proxy().Epoch() || m.Stamp.Seq != 1 {
				return false
			}
		}
		return true
	})
}

// runInNetns makes a namespace with multicast on loopback and runs
// TestMulticast again inside it.
func runInNetns(t *testing.T) {
	testpeer.RequireIntegration(t, "python3-zmq") // the run inside would skip, which is not a pass
	if os.Geteuid() != 0 {
		t.Skip("TestMulticast needs root to create a network namespace (ip netns add); CI runs as root")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal("TestMulticast needs iproute2's ip (apt-get install iproute2)")
	}
	ns := fmt.Sprintf("mdgate-test-%d", os.Getpid())
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	sh("-n", ns, "link", "set", "lo", "up")
	sh("-n", ns, "link", "set", "lo", "multicast", "on")
	sh("-n", ns, "route", "add", "239.0.0.0/8", "dev", "lo")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, os.Args[0], "-test.run=^TestMulticast$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNetns+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMulticast") {
		t.Fatalf("TestMulticast inside namespace %s: %v\n%s", ns, err, out)
	}
}
