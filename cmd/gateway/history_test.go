package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
)

type replayed struct {
	Op, Topic, Epoch                     string
	Seq                                  uint64
	Replay, Recovered, Gap, Stale, Error bool
}

// TestHistorySurvivesKill9: a gateway keeping history with a cache file is
// killed with SIGKILL; the restarted gateway replays what a client missed
// under the old epoch's stamps, first one recovered, marked stale.
func TestHistorySurvivesKill9(t *testing.T) {
	const total, seen = 500, 200
	cache := filepath.Join(t.TempDir(), "cache.lvc")
	httpAddr, ingress := freeAddr(t), "tcp://"+freeAddr(t)
	args := []string{"--http", httpAddr, "--ingress-bind", ingress, "--egress-bind", "tcp://127.0.0.1:*",
		"--stamped-bind", "tcp://127.0.0.1:*", "--snapshot-bind", "", "--lvc-file", cache, "--lvc-save-interval", "50ms",
		"--history", "ev.=100000", "--log-json"}
	gw := &testpair.Node{HTTP: httpAddr, Bin: binary} // killed and started again on the same ports
	// dial subscribes to ev. and returns the values (updates and snapshots)
	// a reader goroutine takes off the connection; it ends with the connection.
	dial := func(resume map[string]any) (*websocket.Conn, <-chan replayed) {
		var ws *websocket.Conn
		testpeer.Eventually(t, 20*time.Second, "the WebSocket endpoint", func() bool {
			c, _, err := websocket.DefaultDialer.Dial("ws://"+httpAddr+"/ws", nil)
			ws = c
			return err == nil
		})
		req, _ := json.Marshal(map[string]any{"op": "subscribe", "prefixes": []string{"ev."}, "resume": resume})
		ws.WriteMessage(websocket.TextMessage, req)
		values := make(chan replayed, 1024)
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer close(values)
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					return
				}
				for _, line := range strings.Split(string(b), "\n") {
					var u replayed
					json.Unmarshal([]byte(line), &u)
					if u.Op == "update" || u.Op == "snapshot" {
						values <- u
					}
				}
			}
		}()
		t.Cleanup(func() {
			ws.Close()
			for range values {
			}
			<-done
		})
		return ws, values
	}
	next := func(values <-chan replayed, d time.Duration) (replayed, bool) {
		select {
		case u, ok := <-values:
			return u, ok
		case <-time.After(d):
			return replayed{}, false
		}
	}

	gw.Start(t, args)
	ws, values := dial(nil)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, _ := zmq.NewSocket(zmq.PUB)
	defer pub.Close()
	pub.SetLinger(0)
	pub.Connect(ingress)
	// Until the client sees one: the publisher's subscription has arrived.
	testpeer.Eventually(t, 20*time.Second, "a warm-up message through the gateway", func() bool {
		pub.SendMessage("ev.warm", "{}")
		u, ok := next(values, 50*time.Millisecond)
		return ok && u.Topic == "ev.warm"
	})
	for i := 1; i <= total; i++ {
		pub.SendMessage("ev.a", fmt.Sprintf(`{"n":%d}`, i))
	}
	var epoch string
	for {
		u, ok := next(values, wait)
		if !ok {
			t.Fatalf("the client stopped reading before ev.a seq %d", seen)
		}
		if u.Topic == "ev.a" && u.Seq == seen {
			epoch = u.Epoch
			break
		}
	}
	ws.Close()
	testpeer.Eventually(t, wait, "a cache file with ev.a's whole history", func() bool {
		msgs, err := lvc.Load(cache)
		n := 0
		for _, m := range msgs {
			if m.Topic == "ev.a" {
				n++
			}
		}
		return err == nil && n == total
	})
	gw.Kill(t) // SIGKILL: no shutdown code runs

	gw.Restart(t)
	_, values = dial(map[string]any{"ev.a": map[string]any{"seq": seen, "epoch": epoch}})
	for want := uint64(seen + 1); want <= total; {
		u, ok := next(values, wait)
		if !ok {
			t.Fatalf("after the restart: no more after seq %d, want up to %d", want-1, total)
		}
		if u.Topic != "ev.a" {
			continue // ev.warm's own snapshot
		}
		if u.Op != "update" || u.Seq != want || u.Epoch != epoch || !u.Replay || !u.Stale || u.Gap || u.Recovered != (want == seen+1) {
			t.Fatalf("after the restart got %+v, want a stale replay of seq %d under epoch %s (recovered on the first)", u, want, epoch)
		}
		want++
	}
}
