package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// soak churns the gateway for o.duration: publishers come and go, WebSocket
// clients connect, subscribe and leave, stalled clients are cut off, while
// steady clients check that every topic's seq moves by exactly one. At the
// end every client leaves and the gateway must be back to its goroutine
// count and near its heap of the start. It returns an error on any loss for
// a steady client, a leak, or a steady client cut off.
func soak(g *gateway, o options) error {
	u := url.URL{Scheme: "ws", Host: g.http, Path: "/ws"}
	topics := 50
	g0, heap0 := g.metric("go_goroutines"), g.metric("go_memstats_heap_inuse_bytes")
	deadline := time.Now().Add(o.duration)
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// Publishers: three at a time, one replaced every round.
	var published atomic.Int64
	pubStops := make(chan chan struct{}, 16)
	startPub := func(id int) {
		q := make(chan struct{})
		pubStops <- q
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			pub, err := openPub(g.ingress, false)
			if err != nil {
				fmt.Println("soak publisher:", err)
				return
			}
			defer pub.Close()
			for i := 0; ; i++ {
				select {
				case <-q:
					return
				case <-stop:
					return
				default:
				}
				pub.SendMessage(fmt.Sprintf("soak.t%02d", (i*7+id)%topics), fmt.Sprintf(`{"t":%d}`, time.Now().UnixNano()))
				published.Add(1)
				if i%20 == 19 {
					time.Sleep(time.Millisecond) // about 20k msgs/s a publisher: the load's pace
				}
			}
		}()
	}
	for id := range 3 {
		startPub(id)
	}

	// Steady clients: read everything, check seqs.
	var gaps, steadyCut atomic.Int64
	var steady []*websocket.Conn
	for c := range 50 {
		ws, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
		if err != nil {
			return fmt.Errorf("steady client: %w", err)
		}
		steady = append(steady, ws)
		var ts []string
		for k := range 5 {
			ts = append(ts, fmt.Sprintf("soak.t%02d", (c*5+k)%topics))
		}
		req, _ := json.Marshal(map[string]any{"op": "subscribe", "topics": ts, "snapshot": false})
		ws.WriteMessage(websocket.TextMessage, req)
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]uint64{}
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					select {
					case <-stop:
					default:
						steadyCut.Add(1)
					}
					return
				}
				for _, line := range strings.Split(string(b), "\n") {
					var m struct {
						Op, Topic string
						Seq       uint64
					}
					json.Unmarshal([]byte(line), &m)
					if m.Op != "update" {
						continue
					}
					if p, ok := last[m.Topic]; ok && m.Seq != p+1 {
						gaps.Add(1)
					}
					last[m.Topic] = m.Seq
				}
			}
		}()
	}

	round := 0
	var stalled []*websocket.Conn
	for time.Now().Before(deadline) {
		round++
		// Replace one publisher.
		close(<-pubStops)
		startPub(round)
		// Twenty short-lived clients.
		for range 20 {
			ws, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
			if err != nil {
				return fmt.Errorf("churn client: %w", err)
			}
			ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","prefixes":["soak."]}`))
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			for range 10 {
				if _, _, err := ws.ReadMessage(); err != nil {
					break
				}
			}
			ws.Close()
		}
		// Two clients that never read (cut off by the gateway).
		for range 2 {
			ws, _, err := websocket.DefaultDialer.Dial(u.String(), nil)
			if err == nil {
				ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","prefixes":["soak."],"max_queue_bytes":65536}`))
				stalled = append(stalled, ws)
			}
		}
		fmt.Printf("\r  soak: round %d, %s left, published %d, gateway goroutines %.0f, heap %.1f MB ",
			round, time.Until(deadline).Round(time.Second), published.Load(), g.metric("go_goroutines"), g.metric("go_memstats_heap_inuse_bytes")/(1<<20))
		time.Sleep(time.Second) // the churn's pace
	}
	close(stop)
	for _, ws := range append(steady, stalled...) {
		ws.Close()
	}
	wg.Wait()
	fmt.Println()
	var settled float64
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if settled = g.metric("go_goroutines"); settled <= g0+5 {
			break
		}
	}
	heap1 := g.metric("go_memstats_heap_inuse_bytes")
	cut := g.metric("mdgate_fanout_disconnects_total", "reason", "queue_bytes") + g.metric("mdgate_fanout_disconnects_total", "reason", "lag")
	fmt.Printf("soak: %d rounds, %d published, stalled clients cut off %.0f, steady clients' gaps %d, steady clients cut off %d, goroutines %.0f -> %.0f, heap %.1f -> %.1f MB\n",
		round, published.Load(), cut, gaps.Load(), steadyCut.Load(), g0, settled, heap0/(1<<20), heap1/(1<<20))
	var problems []string
	if gaps.Load() > 0 {
		problems = append(problems, fmt.Sprintf("%d seq gaps at steady clients", gaps.Load()))
	}
	if steadyCut.Load() > 0 {
		problems = append(problems, fmt.Sprintf("%d steady clients lost their connection", steadyCut.Load()))
	}
	if settled > g0+5 {
		problems = append(problems, fmt.Sprintf("goroutines grew from %.0f to %.0f", g0, settled))
	}
	if heap1 > heap0*2+16<<20 {
		problems = append(problems, fmt.Sprintf("heap grew from %.1f to %.1f MB", heap0/(1<<20), heap1/(1<<20)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(problems, "; "))
	}
	return nil
}
