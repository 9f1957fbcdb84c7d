package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
)

const wait = 10 * time.Second

type update struct {
	Op, Topic, Epoch string
	Seq              uint64
	Gap              bool
}

// TestKill9UnderLoadThenRestart: a gateway with a cache file is killed with
// SIGKILL while a publisher runs flat out and a WebSocket client reads; the
// cache file it leaves is whole, a restarted gateway on the same ports takes
// the publisher back, and the client reconnects, resumes from its last seqs
// and reads live data under the new epoch for every topic.
func TestKill9UnderLoadThenRestart(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache.lvc")
	httpAddr, ingress := freeAddr(t), "tcp://"+freeAddr(t)
	args := []string{"--http", httpAddr, "--ingress-bind", ingress, "--egress-bind", "tcp://127.0.0.1:*",
		"--stamped-bind", "tcp://127.0.0.1:*", "--snapshot-bind", "", "--lvc-file", cache, "--lvc-save-interval", "50ms", "--log-json"}
	gw := &testpair.Node{HTTP: httpAddr, Bin: binary} // killed and started again on the same ports
	gw.Start(t, args)

	// The publisher: flat out over 10 topics until the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		runtime.LockOSThread()
		pub, _ := zmq.NewSocket(zmq.PUB)
		defer pub.Close()
		pub.SetLinger(0)
		pub.Connect(ingress)
		for i := 0; ctx.Err() == nil; i++ {
			pub.SendMessage(fmt.Sprintf("ch.%d", i%10), fmt.Sprintf(`{"n":%d}`, i))
			if i%100 == 99 {
				time.Sleep(time.Millisecond) // about 100k msgs/s: load, not synchronisation
			}
		}
	}()
	defer func() { cancel(); pwg.Wait() }()

	last := map[string]update{}
	dial := func() *websocket.Conn {
		var ws *websocket.Conn
		testpeer.Eventually(t, 20*time.Second, "the WebSocket endpoint", func() bool {
			c, _, err := websocket.DefaultDialer.Dial("ws://"+httpAddr+"/ws", nil)
			ws = c
			return err == nil
		})
		resume := map[string]any{}
		for topic, u := range last {
			resume[topic] = map[string]any{"seq": u.Seq, "epoch": u.Epoch}
		}
		req, _ := json.Marshal(map[string]any{"op": "subscribe", "prefixes": []string{"ch."}, "slow": "conflate", "resume": resume})
		ws.WriteMessage(websocket.TextMessage, req)
		return ws
	}
	// read until every topic has moved n times (under one epoch), or the connection ends.
	read := func(ws *websocket.Conn, n int) (epochs map[string]string, err error) {
		seen := map[string]int{}
		epochs = map[string]string{}
		for {
			ws.SetReadDeadline(time.Now().Add(wait))
			_, b, err := ws.ReadMessage()
			if err != nil {
				return epochs, err
			}
			for _, line := range strings.Split(string(b), "\n") {
				var u update
				json.Unmarshal([]byte(line), &u)
				if u.Op != "update" && u.Op != "snapshot" {
					continue
				}
				last[u.Topic] = u
				if u.Op == "update" {
					seen[u.Topic]++
					epochs[u.Topic] = u.Epoch
				}
			}
			done := len(seen) == 10
			for _, c := range seen {
				done = done && c >= n
			}
			if done {
				return epochs, nil
			}
		}
	}
	ws := dial()
	before, err := read(ws, 20)
	if err != nil {
		t.Fatalf("before the kill: %v", err)
	}

	testpeer.Eventually(t, wait, "a cache file with all 10 topics", func() bool {
		msgs, err := lvc.Load(cache)
		return err == nil && len(msgs) == 10
	})
	gw.Kill(t)       // SIGKILL mid-load: no shutdown code runs
	for err == nil { // the client sees the connection go
		_, err = read(ws, 1<<30)
	}
	ws.Close()

	msgs, err := lvc.Load(cache)
	if err != nil {
		t.Fatalf("the cache file after kill -9: %v", err)
	}
	if len(msgs) != 10 {
		t.Fatalf("the cache file holds %d topics, want 10", len(msgs))
	}

	gw.Restart(t)
	ws = dial()
	defer ws.Close()
	after, err := read(ws, 20)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	for topic, e := range after {
		if e == before[topic] {
			t.Errorf("%s: still epoch %s after the restart, want a new one", topic, e)
		}
	}
	if matches, _ := filepath.Glob(cache + ".corrupt-*"); len(matches) > 0 {
		t.Fatalf("the restarted gateway quarantined the cache file: %v", matches)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Fatal(err)
	}
}
