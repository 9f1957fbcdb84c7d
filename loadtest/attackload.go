package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/attackpeer"
	"github.com/mdgate/mdgate/tick"
)

// The good workload of the attacks scenario: one publisher at a steady rate
// onto goodTopics topics, a WebSocket client on the first goodWSTopics of
// them and a ZeroMQ SUB on the stamped egress on all, each checking every
// topic's seq for continuity and recording latency (publisher send to
// receive) by phase.
const (
	goodTopics   = 10
	goodWSTopics = 5
	numPhases    = 3
	warmTopic    = "md.good.warm"
)

var phaseNames = [numPhases]string{"before", "during", "after"}

func goodTopic(i int) string { return fmt.Sprintf("md.good.t%02d", i) }

// seqCheck follows one client's per-topic seqs (a new topic's first seq is
// 1): a jump is a loss, charged to the phase it is seen in; a seq not above
// the last one is a duplicate (a replay) and otherwise ignored.
type seqCheck struct {
	last map[string]uint64
	got  [numPhases]int64
	lost [numPhases]int64
	dups int64
}

func newSeqCheck() *seqCheck { return &seqCheck{last: map[string]uint64{}} }

// see records seq on topic in phase and says whether it was new.
func (c *seqCheck) see(phase int, topic string, seq uint64) bool {
	prev := c.last[topic]
	if seq <= prev {
		c.dups++
		return false
	}
	c.lost[phase] += int64(seq - prev - 1)
	c.last[topic] = seq
	c.got[phase]++
	return true
}

// tail charges to phase what the publisher sent past the last seq seen on
// each topic of sent: lost at the end, with no later message to show a gap.
func (c *seqCheck) tail(phase int, sent map[string]uint64) {
	for t, n := range sent {
		if l := c.last[t]; n > l {
			c.lost[phase] += int64(n - l)
		}
	}
}

// payloadInt reads the integer field key from a good payload,
// {"t":<send time, ns>,"n":<the publisher's count on the topic>,...}.
func payloadInt(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(`"`+key+`":`))
	if i < 0 {
		return 0, false
	}
	rest := b[i+len(key)+3:]
	j := bytes.IndexAny(rest, ",}")
	if j <= 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}

// clientPhase is one good client's figures in one phase.
type clientPhase struct {
	Received int64   `json:"received"`
	Lost     int64   `json:"lost"`     // gaps in the publisher's per-topic count: lost anywhere
	SeqGaps  int64   `json:"seq_gaps"` // gaps in the gateway's per-topic seq: lost after the stamp
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// goodClient is what a good client recorded; only its reader goroutine
// touches it until the load stops.
type goodClient struct {
	seq  *seqCheck // on the publisher's count
	gw   *seqCheck // on the gateway's seq
	hist [numPhases]*hdrhistogram.Histogram
	warm atomic.Int64
	seen atomic.Int64
	err  error // why the reader stopped before the load did (cut off)
}

func newGoodClient() *goodClient {
	c := &goodClient{seq: newSeqCheck(), gw: newSeqCheck()}
	for i := range c.hist {
		c.hist[i] = newHist()
	}
	return c
}

func (c *goodClient) record(phase int, topic string, seq, n uint64, sentAt, now int64) {
	if topic == warmTopic {
		c.warm.Add(1)
		return
	}
	c.gw.see(phase, topic, seq)
	if c.seq.see(phase, topic, n) {
		record(c.hist[phase], time.Duration(now-sentAt))
		c.seen.Add(1)
	}
}

func (c *goodClient) phases() [numPhases]clientPhase {
	var out [numPhases]clientPhase
	for i := range out {
		l := summarize(c.hist[i])
		out[i] = clientPhase{Received: c.seq.got[i], Lost: c.seq.lost[i], SeqGaps: c.gw.lost[i], P50: l.P50, P99: l.P99, Max: l.Max}
	}
	return out
}

type goodLoad struct {
	phase    atomic.Int32
	ws, zq   *goodClient
	wsConn   *websocket.Conn
	stop     chan struct{} // ends the publisher
	stopSubs chan struct{} // ends the ZeroMQ reader
	go_      chan struct{} // warm-up over: publish the good topics
	sentc    chan map[string]uint64
	pubErr   chan error
	wg       sync.WaitGroup
	stopping atomic.Bool
}

// startGoodLoad connects the good clients and the publisher and returns once
// both clients receive the warm-up topic (their subscriptions are in); the
// good topics are new to the gateway, so their seqs start at 1.
func startGoodLoad(g *gateway, stamped, zmqPrefix string, rate int) (*goodLoad, error) {
	l := &goodLoad{ws: newGoodClient(), zq: newGoodClient(), stop: make(chan struct{}), stopSubs: make(chan struct{}),
		go_: make(chan struct{}), sentc: make(chan map[string]uint64, 1), pubErr: make(chan error, 1)}
	u := url.URL{Scheme: "ws", Host: g.http, Path: "/ws"}
	ws, _, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).Dial(u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("good WebSocket client: %w", err)
	}
	l.wsConn = ws
	topics := []string{warmTopic}
	for i := range goodWSTopics {
		topics = append(topics, goodTopic(i))
	}
	req, _ := json.Marshal(map[string]any{"op": "subscribe", "topics": topics, "snapshot": false})
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, req); err != nil {
		ws.Close()
		return nil, err
	}
	if _, b, err := ws.ReadMessage(); err != nil || !bytes.Contains(b, []byte(`"op":"ack"`)) {
		ws.Close()
		return nil, fmt.Errorf("good WebSocket client: no ack (%v): %.100s", err, b)
	}
	ws.SetReadDeadline(time.Time{})
	l.wg.Add(2)
	go func() { defer l.wg.Done(); l.readWS() }()
	ready := make(chan error, 1)
	go func() { defer l.wg.Done(); l.readZMQ(stamped, zmqPrefix, ready) }()
	if err := <-ready; err != nil {
		l.abort()
		return nil, fmt.Errorf("good ZeroMQ subscriber: %w", err)
	}
	go func() { l.sentc <- l.publish(g.ingress, rate) }()
	for deadline := time.Now().Add(15 * time.Second); l.ws.warm.Load() == 0 || l.zq.warm.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			l.abort()
			return nil, fmt.Errorf("warm-up: no message at the good clients in 15s (ws %d, zmq %d)", l.ws.warm.Load(), l.zq.warm.Load())
		}
	}
	close(l.go_)
	return l, nil
}

func (l *goodLoad) abort() {
	l.stopping.Store(true)
	close(l.stop)
	close(l.stopSubs)
	l.wsConn.Close()
	l.wg.Wait()
}

func (l *goodLoad) readWS() {
	for {
		_, b, err := l.wsConn.ReadMessage()
		if err != nil {
			if !l.stopping.Load() {
				l.ws.err = err
			}
			return
		}
		now := time.Now().UnixNano()
		for _, line := range bytes.Split(b, []byte{'\n'}) {
			var m struct {
				Op, Topic string
				Seq       uint64
				Data      struct{ T, N int64 }
			}
			if json.Unmarshal(line, &m) != nil || m.Op != "update" {
				continue
			}
			l.ws.record(int(l.phase.Load()), m.Topic, m.Seq, uint64(m.Data.N), m.Data.T, now)
		}
	}
}

func (l *goodLoad) readZMQ(endpoint, prefix string, ready chan<- error) {
	attackpeer.Read(endpoint, prefix, 0, 20*time.Millisecond, ready, l.stopSubs, func(f [][]byte) {
		if len(f) < 3 {
			return
		}
		now := time.Now().UnixNano()
		st, err := tick.ParseStamp(f[len(f)-1])
		if err != nil || st.Flags&tick.FlagReplay != 0 || !strings.HasPrefix(string(f[0]), "md.good.") {
			return
		}
		t, _ := payloadInt(f[1], "t")
		n, _ := payloadInt(f[1], "n")
		l.zq.record(int(l.phase.Load()), string(f[0]), st.Seq, uint64(n), t, now)
	})
}

// publish sends the warm-up topic every 10 ms until go_, then the good
// topics in turn at rate messages a second until stop, and returns what it
// sent on each. One goroutine owns the socket.
func (l *goodLoad) publish(ingress string, rate int) map[string]uint64 {
	sent := map[string]uint64{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, err := openFeed(ingress)
	if err != nil {
		l.pubErr <- err
		return sent
	}
	defer pub.Close()
	pad := strings.Repeat("x", 60)
	warm := time.NewTicker(10 * time.Millisecond) // the warm-up's pace
	for warming := true; warming; {
		select {
		case <-l.go_:
			warming = false
		case <-l.stop:
			warm.Stop()
			return sent
		case <-warm.C:
			pub.SendMessage(warmTopic, fmt.Sprintf(`{"t":%d}`, time.Now().UnixNano()))
		}
	}
	warm.Stop()
	tk := time.NewTicker(time.Millisecond) // the feed's pace
	defer tk.Stop()
	start, n := time.Now(), 0
	for {
		select {
		case <-l.stop:
			return sent
		case <-tk.C:
		}
		for due := int(time.Since(start).Seconds() * float64(rate)); n < due; n++ {
			topic := goodTopic(n % goodTopics)
			sent[topic]++
			if _, err := pub.SendMessage(topic, fmt.Sprintf(`{"t":%d,"n":%d,"pad":"%s"}`, time.Now().UnixNano(), sent[topic], pad)); err != nil {
				l.pubErr <- err
				return sent
			}
		}
	}
}

func (l *goodLoad) setPhase(p int) { l.phase.Store(int32(p)) }

// goodResult is the good clients' figures by phase.
type goodResult struct {
	WS      [numPhases]clientPhase `json:"ws"`
	ZMQ     [numPhases]clientPhase `json:"zmq"`
	Sent    int64                  `json:"sent"`
	WSCut   string                 `json:"ws_cut_off,omitempty"`
	WSDups  int64                  `json:"ws_duplicates"`
	ZMQDups int64                  `json:"zmq_duplicates"`
}

// finish stops the publisher, waits until the clients have what was sent
// (at most 10 s; nothing arriving for 3 s ends it too), closes them and
// charges what never arrived to the last phase.
func (l *goodLoad) finish() (goodResult, error) {
	close(l.stop)
	sent := <-l.sentc
	var err error
	select {
	case err = <-l.pubErr:
	default:
	}
	var total, wsWant int64
	wsSent := map[string]uint64{}
	for t, n := range sent {
		total += int64(n)
		for i := range goodWSTopics {
			if t == goodTopic(i) {
				wsSent[t] = n
				wsWant += int64(n)
			}
		}
	}
	last, quiet := int64(-1), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := l.ws.seen.Load() + l.zq.seen.Load()
		if n >= wsWant+total {
			break
		}
		if n != last {
			last, quiet = n, time.Now()
		} else if time.Since(quiet) > 3*time.Second {
			break
		}
	}
	l.stopping.Store(true)
	close(l.stopSubs)
	l.wsConn.Close()
	l.wg.Wait()
	ph := int(l.phase.Load())
	l.ws.seq.tail(ph, wsSent)
	l.zq.seq.tail(ph, sent)
	r := goodResult{WS: l.ws.phases(), ZMQ: l.zq.phases(), Sent: total, WSDups: l.ws.seq.dups, ZMQDups: l.zq.seq.dups}
	if l.ws.err != nil {
		r.WSCut = l.ws.err.Error()
	}
	return r, err
}

// openFeed is a publisher into the ingress that returns once the gateway's
// subscription reached it (attackpeer.Feed, 10s at the most).
func openFeed(ingress string) (*zmq.Socket, error) { return attackpeer.Feed(ingress, 10*time.Second) }
