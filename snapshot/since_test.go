package snapshot_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/tick"
)

// historyCache returns a cache keeping the history of topics under rules.
func historyCache(rules ...lvc.HistoryRule) *lvc.Cache {
	cfg := lvc.DefaultConfig()
	cfg.History = rules
	return lvc.New(cfg, nil)
}

// update stores one update of topic (epoch 7 unless given), payload "v<seq>"
// padded to size bytes.
func update(c *lvc.Cache, topic string, epoch, seq uint64, size int) {
	body := fmt.Appendf(nil, "v%d", seq)
	if len(body) < size {
		body = append(body, bytes.Repeat([]byte("x"), size-len(body))...)
	}
	c.Update(&tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), body},
		Stamp: tick.Stamp{Epoch: epoch, Seq: seq, Ingress: time.Now().UnixNano()}})
}

// seqs renders a result: "e7:4 e7:5 | gap missed=2".
func seqs(res *snapshot.Result) string {
	var b strings.Builder
	for _, m := range res.Values {
		fmt.Fprintf(&b, "e%d:%d ", m.Stamp.Epoch, m.Stamp.Seq)
	}
	fmt.Fprintf(&b, "| %s missed=%d", res.Status, res.Missed)
	return b.String()
}

func TestSince(t *testing.T) {
	cache := historyCache(lvc.HistoryRule{Prefix: "ev.", MaxCount: 5, MaxBytes: 1 << 20},
		lvc.HistoryRule{Prefix: "ev.big", MaxCount: 5, MaxBytes: 100})
	for s := uint64(1); s <= 8; s++ { // ev.a keeps 4..8; px.a only its latest
		update(cache, "ev.a", 7, s, 0)
		update(cache, "px.a", 7, s, 0)
	}
	for s := uint64(1); s <= 5; s++ { // ev.big keeps 1..5, then nothing: 6 is too big to keep
		update(cache, "ev.big", 7, s, 0)
	}
	update(cache, "ev.big", 7, 6, 200)
	srv, reg := serve(t, cache, snapshot.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tests := []struct {
		name       string
		topic      string
		epoch, seq uint64
		want       string
		label      string // the metric's result label
	}{
		{"recovered", "ev.a", 7, 5, "e7:6 e7:7 e7:8 | recovered missed=0", "recovered"},
		{"from the window's start", "ev.a", 7, 3, "e7:4 e7:5 e7:6 e7:7 e7:8 | recovered missed=0", "recovered"},
		{"up to date", "ev.a", 7, 8, "| recovered missed=0", "recovered"},
		{"ahead", "ev.a", 7, 9, "| recovered missed=0", "recovered"},
		{"gap", "ev.a", 7, 1, "e7:4 e7:5 e7:6 e7:7 e7:8 | gap missed=2", "gap"},
		{"gap from nothing", "ev.a", 7, 0, "e7:4 e7:5 e7:6 e7:7 e7:8 | gap missed=3", "gap"},
		{"another epoch", "ev.a", 9, 3, "e7:4 e7:5 e7:6 e7:7 e7:8 | gap missed=0", "gap"},
		{"latest too big to keep", "ev.big", 7, 5, "e7:6 | recovered missed=0", "recovered"},
		{"latest too big to keep, gap before it", "ev.big", 7, 3, "e7:6 | gap missed=2", "gap"},
		{"latest too big to keep, up to date", "ev.big", 7, 6, "| recovered missed=0", "recovered"},
		{"latest too big to keep, another epoch", "ev.big", 9, 6, "e7:6 | gap missed=0", "gap"},
		{"no rule", "px.a", 7, 3, "| nohistory missed=0", "nohistory"},
		{"no topic", "ev.none", 7, 3, "| nohistory missed=0", "nohistory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := metric(t, reg, "mdgate_snapshot_since_requests_total", tt.label)
			res, err := snapshot.Since(ctx, srv.Bound(), tt.topic, tt.epoch, tt.seq)
			if err != nil {
				t.Fatalf("Since(%q, %d, %d): %v", tt.topic, tt.epoch, tt.seq, err)
			}
			if got := seqs(res); got != tt.want || res.Epoch != 7 {
				t.Errorf("Since(%q, %d, %d) = %q epoch %d, want %q epoch 7", tt.topic, tt.epoch, tt.seq, got, res.Epoch, tt.want)
			}
			for _, m := range res.Values {
				if want := fmt.Sprintf("v%d", m.Stamp.Seq); m.Topic != tt.topic || strings.TrimRight(string(m.Frames[1]), "x") != want || m.Stamp.Flags != 0 {
					t.Errorf("Since(%q) value %s %q flags %d, want %s %q flags 0", tt.topic, m.Topic, m.Frames[1], m.Stamp.Flags, tt.topic, want)
				}
			}
			// The server counts a request once its END is out: the client
			// may read the END first.
			testpeer.Eventually(t, wait, "the request counted", func() bool {
				return metric(t, reg, "mdgate_snapshot_since_requests_total", tt.label)-before >= 1
			})
			if got := metric(t, reg, "mdgate_snapshot_since_requests_total", tt.label) - before; got != 1 {
				t.Errorf("since_requests_total{%s} went up by %v, want 1", tt.label, got)
			}
		})
	}
	if got := metric(t, reg, "mdgate_snapshot_requests_total", "ok"); got != 0 {
		t.Errorf("SNAP requests{ok} = %v after SINCE requests only, want 0", got)
	}
	if got := metric(t, reg, "mdgate_snapshot_since_missed_total", ""); got != 2+3+2 {
		t.Errorf("since_missed_total = %v, want 7", got)
	}
}

// TestSinceAcrossEpochs: a history holding an earlier epoch's tail then the
// current one (a restart with --lvc-file) gives both, and says gap with the
// number not known, since the earlier epoch's end cannot be told.
func TestSinceAcrossEpochs(t *testing.T) {
	cache := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20})
	for s := uint64(5); s <= 7; s++ {
		update(cache, "t", 1, s, 0)
	}
	for s := uint64(1); s <= 2; s++ {
		update(cache, "t", 7, s, 0)
	}
	srv, _ := serve(t, cache, snapshot.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tests := []struct {
		name       string
		epoch, seq uint64
		want       string
	}{
		{"old epoch inside", 1, 5, "e1:6 e1:7 e7:1 e7:2 | gap missed=0"},
		{"old epoch before the window", 1, 2, "e1:5 e1:6 e1:7 e7:1 e7:2 | gap missed=0"},
		{"new epoch", 7, 1, "e7:2 | recovered missed=0"},
		{"new epoch from nothing", 7, 0, "e7:1 e7:2 | recovered missed=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := snapshot.Since(ctx, srv.Bound(), "t", tt.epoch, tt.seq)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(res); got != tt.want {
				t.Errorf("Since(t, %d, %d) = %q, want %q", tt.epoch, tt.seq, got, tt.want)
			}
		})
	}
}

func TestSinceBadRequests(t *testing.T) {
	srv, reg := serve(t, historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 10, MaxBytes: 1 << 20}), snapshot.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	eight := make([]byte, 8)
	tests := []struct {
		name string
		req  [][]byte
		code string
	}{
		{"no topic", [][]byte{[]byte("SINCE")}, snapshot.ErrBadRequest},
		{"no seq", [][]byte{[]byte("SINCE"), []byte("t"), eight}, snapshot.ErrBadRequest},
		{"extra frame", [][]byte{[]byte("SINCE"), []byte("t"), eight, eight, eight}, snapshot.ErrBadRequest},
		{"short epoch", [][]byte{[]byte("SINCE"), []byte("t"), eight[:4], eight}, snapshot.ErrBadSeq},
		{"long seq", [][]byte{[]byte("SINCE"), []byte("t"), eight, make([]byte, 9)}, snapshot.ErrBadSeq},
		{"seq as text", [][]byte{[]byte("SINCE"), []byte("t"), []byte("7"), []byte("42")}, snapshot.ErrBadSeq},
		{"topic too long", [][]byte{[]byte("SINCE"), bytes.Repeat([]byte("t"), snapshot.MaxPrefix+1), eight, eight}, snapshot.ErrTopicTooLong},
		{"lower case", [][]byte{[]byte("since"), []byte("t"), eight, eight}, snapshot.ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := snapshot.Request(ctx, srv.Bound(), tt.req)
			var se *snapshot.ServerError
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Errorf("Request(%.24q) error = %v, want code %s", tt.req, err, tt.code)
			}
		})
	}
	// The bad SINCEs are counted as SINCE errors; the unknown command as a
	// request that is not one (SNAP's error, as before SINCE existed).
	if got := metric(t, reg, "mdgate_snapshot_since_requests_total", "error"); got != 7 {
		t.Errorf("since_requests_total{error} = %v, want 7", got)
	}
	if got := metric(t, reg, "mdgate_snapshot_requests_total", "error"); got != 1 {
		t.Errorf("requests_total{error} = %v, want 1", got)
	}
	if res, err := snapshot.Since(ctx, srv.Bound(), "t", 7, 0); err != nil || res.Status != snapshot.NoHistory {
		t.Errorf("Since after bad requests = %+v, %v, want nohistory", res, err)
	}
}

// TestSinceREQEnvelope: SINCE with REQ's empty delimiter, from a REQ
// socket (an up-to-date point: END alone) and a DEALER (a whole reply).
func TestSinceREQEnvelope(t *testing.T) {
	cache := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20})
	for s := uint64(1); s <= 3; s++ {
		update(cache, "t", 7, s, 0)
	}
	srv, _ := serve(t, cache, snapshot.DefaultConfig())
	runtime.LockOSThread() // this goroutine owns the sockets until the cleanups close them
	req := socket(t, zmq.REQ, srv.Bound())
	send(t, req, frames(snapshot.SinceRequest("t", 7, 3))...)
	if got, want := recv(t, req), []string{snapshot.RepEnd, u64(0), u64(7), "recovered", u64(0)}; !slices.Equal(got, want) {
		t.Errorf("REQ SINCE up to date: reply %q, want %q", got, want)
	}
	dealer := socket(t, zmq.DEALER, srv.Bound())
	send(t, dealer, append([]any{""}, frames(snapshot.SinceRequest("t", 7, 1))...)...)
	var got []string
	for {
		f := recv(t, dealer)
		if len(f) < 2 || f[0] != "" {
			t.Fatalf("DEALER with delimiter: reply %q has no empty first frame", f)
		}
		got = append(got, f[1])
		if f[1] == snapshot.RepEnd {
			if len(f) != 6 || f[2] != u64(2) || f[4] != "recovered" {
				t.Errorf("END = %q, want count 2, recovered", f)
			}
			break
		}
	}
	if want := []string{"VAL", "VAL", "END"}; !slices.Equal(got, want) {
		t.Errorf("replies %q, want %q", got, want)
	}
}

// TestSinceChunkedLongRecovery: 10,000 retained updates come back whole
// and in order across many chunks, a few to a turn.
func TestSinceChunkedLongRecovery(t *testing.T) {
	const n = 10_000
	cache := historyCache(lvc.HistoryRule{Prefix: "ev.", MaxCount: n, MaxBytes: 64 << 20})
	for s := uint64(1); s <= n; s++ {
		update(cache, "ev.long", 7, s, 100)
	}
	for _, chunk := range []struct{ values, bytes int }{{7, 64 << 10}, {64, 1000}} {
		t.Run(fmt.Sprintf("chunks of %d values %d bytes", chunk.values, chunk.bytes), func(t *testing.T) {
			cfg := snapshot.DefaultConfig()
			cfg.ChunkValues, cfg.ChunkBytes = chunk.values, chunk.bytes
			srv, reg := serve(t, cache, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			for _, from := range []uint64{0, 1234} {
				res, err := snapshot.Since(ctx, srv.Bound(), "ev.long", 7, from)
				if err != nil {
					t.Fatalf("Since(ev.long, 7, %d): %v", from, err)
				}
				if len(res.Values) != int(n-from) || res.Status != snapshot.Recovered {
					t.Fatalf("Since(ev.long, 7, %d) = %d updates %s, want %d recovered", from, len(res.Values), res.Status, n-from)
				}
				for i, m := range res.Values {
					if want := from + uint64(i) + 1; m.Stamp.Seq != want || !bytes.HasPrefix(m.Frames[1], fmt.Appendf(nil, "v%dx", want)) {
						t.Fatalf("Since(ev.long, 7, %d) update %d = seq %d %.10q, want seq %d", from, i, m.Stamp.Seq, m.Frames[1], want)
					}
				}
			}
			if got := metric(t, reg, "mdgate_snapshot_since_updates_total", ""); got != n+n-1234 {
				t.Errorf("since_updates_total = %v, want %d", got, n+n-1234)
			}
		})
	}
}

// TestSinceGapWhileServing: the history moves past a request's cursor while
// its requester is not reading. The reply does not skip silently: it goes
// on from the oldest update still held and says gap with the exact number
// gone between the last update sent before and the first after.
func TestSinceGapWhileServing(t *testing.T) {
	const n = 20_000 // 20 MB of 1,000-byte updates: more than kernel buffers take
	cache := historyCache(lvc.HistoryRule{Prefix: "ev.", MaxCount: n, MaxBytes: 64 << 20})
	for s := uint64(1); s <= n; s++ {
		update(cache, "ev.g", 7, s, 1000)
	}
	cfg := snapshot.DefaultConfig()
	cfg.HWM = 10
	srv, reg := serve(t, cache, cfg)
	runtime.LockOSThread() // this goroutine owns the socket until the cleanups close it
	s := socket(t, zmq.DEALER, srv.Bound(), nonReader)
	send(t, s, frames(snapshot.SinceRequest("ev.g", 7, 0))...)
	eventually(t, "the request blocked on a full pipe", func() bool {
		return metric(t, reg, "mdgate_snapshot_blocked_total", "") >= 1
	})
	// Another n updates push every one the request has not sent yet out of
	// the history (this goroutine is the cache's only writer).
	for seq := uint64(n + 1); seq <= 2*n; seq++ {
		update(cache, "ev.g", 7, seq, 1000)
	}
	var got []uint64
	var end []string
	for end == nil {
		f := recv(t, s)
		switch f[0] {
		case snapshot.RepVal:
			st, err := tick.ParseStamp([]byte(f[1]))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, st.Seq)
		case snapshot.RepEnd:
			end = f
		default:
			t.Fatalf("reply %.40q, want VAL or END", f)
		}
	}
	// In order, each jump counted; the reply ends with the first update at
	// or past the latest of when the request started (n).
	var prev, jumped uint64
	for i, seq := range got {
		if seq <= prev || (seq >= n) != (i == len(got)-1) {
			t.Fatalf("update %d has seq %d after %d, want ascending, the last (only) one at or past %d", i, seq, prev, n)
		}
		jumped += seq - prev - 1
		prev = seq
	}
	missed := binary.BigEndian.Uint64([]byte(end[4]))
	if end[3] != "gap" || missed != jumped || jumped == 0 {
		t.Fatalf("END %s missed %d after %d updates skipping %d; want gap, missed %d (not 0)", end[3], missed, len(got), jumped, jumped)
	}
	t.Logf("%d updates sent, %d found gone when the history moved past the cursor; END: gap, missed %d", len(got), jumped, missed)
	if got := metric(t, reg, "mdgate_snapshot_since_requests_total", "gap"); got != 1 {
		t.Errorf("since_requests_total{gap} = %v, want 1", got)
	}
}

// TestSinceStalledAndBusy: SINCE is bounded like SNAP: a requester that
// does not read loses its request (stalled), one past MaxPerPeer is
// refused (busy), both counted under SINCE.
func TestSinceStalledAndBusy(t *testing.T) {
	const n = 20_000
	cache := historyCache(lvc.HistoryRule{Prefix: "ev.", MaxCount: n, MaxBytes: 64 << 20})
	for s := uint64(1); s <= n; s++ {
		update(cache, "ev.s", 7, s, 1000)
	}
	cfg := snapshot.DefaultConfig()
	cfg.HWM, cfg.StallTimeout, cfg.MaxPerPeer = 10, 300*time.Millisecond, 2
	srv, reg := serve(t, cache, cfg)
	runtime.LockOSThread() // this goroutine owns the socket until the cleanups close it
	s := socket(t, zmq.DEALER, srv.Bound(), nonReader)
	for range 3 {
		send(t, s, frames(snapshot.SinceRequest("ev.s", 7, 0))...)
	}
	eventually(t, "the third refused and the others dropped as stalled", func() bool {
		return metric(t, reg, "mdgate_snapshot_since_requests_total", "busy") == 1 &&
			metric(t, reg, "mdgate_snapshot_since_requests_total", "stalled") == 2
	})
	if got := metric(t, reg, "mdgate_snapshot_active_requests", ""); got != 0 {
		t.Errorf("active requests = %v, want 0", got)
	}
}

// TestSnapUnaffectedBySince: a requester fetching a snapshot again and
// again while other connections recover big histories (each reading its
// replies) gets every snapshot whole. The fetch times with and without
// the SINCE load are logged, not asserted: the machine is shared.
func TestSnapUnaffectedBySince(t *testing.T) {
	const (
		topics   = 5_000
		history  = 50_000
		sinceers = 4
		fetches  = 10
	)
	cache := historyCache(lvc.HistoryRule{Prefix: "ev.", MaxCount: history, MaxBytes: 64 << 20})
	body := bytes.Repeat([]byte("x"), 200)
	for i := range topics {
		topic := fmt.Sprintf("md.t.%05d", i)
		cache.Update(&tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), body}, Stamp: tick.Stamp{Epoch: 7, Seq: 1}})
	}
	for s := uint64(1); s <= history; s++ {
		update(cache, "ev.big", 7, s, 200)
	}
	srv, reg := serve(t, cache, snapshot.DefaultConfig())

	fetchAll := func() []time.Duration {
		var took []time.Duration
		for i := range fetches {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			start := time.Now()
			res, err := snapshot.Fetch(ctx, srv.Bound(), "md.")
			cancel()
			if err != nil || len(res.Values) != topics {
				t.Fatalf("fetch %d: %v values, %v; want %d", i, len(res.Values), err, topics)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		return took
	}
	quiet := fetchAll()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	recoveries, errs := 0, []error(nil)
	for range sinceers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				res, err := snapshot.Since(ctx, srv.Bound(), "ev.big", 7, 0)
				mu.Lock()
				switch {
				case ctx.Err() != nil:
				case err != nil:
					errs = append(errs, err)
				case len(res.Values) != history || res.Status != snapshot.Recovered:
					errs = append(errs, fmt.Errorf("since: %d updates %s, want %d recovered", len(res.Values), res.Status, history))
				default:
					recoveries++
				}
				mu.Unlock()
			}
		}()
	}
	eventually(t, "SINCE requests in progress", func() bool {
		return metric(t, reg, "mdgate_snapshot_since_updates_total", "") > 0
	})
	loaded := fetchAll()
	cancel()
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("SINCE under load: %v", errs[0])
	}
	t.Logf("SNAP of %d values, %d fetches: alone p50 %v max %v; with %d connections recovering %d updates each (%d done meanwhile): p50 %v max %v",
		topics, fetches, quiet[len(quiet)/2], quiet[len(quiet)-1], sinceers, history, recoveries, loaded[len(loaded)/2], loaded[len(loaded)-1])
}

// frames turns request frames into SendMessage's arguments.
func frames(req [][]byte) []any {
	out := make([]any, len(req))
	for i, f := range req {
		out[i] = f
	}
	return out
}

func u64(v uint64) string { return string(binary.BigEndian.AppendUint64(nil, v)) }
