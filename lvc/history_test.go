package lvc_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/tick"
)

func emsg(topic string, epoch, seq uint64, ingress int64) *tick.Message {
	m := msg(topic, seq, ingress, fmt.Sprintf("v%d", seq))
	m.Stamp.Epoch = epoch
	return m
}

// after renders what HistoryAfter gives: "e1:3 e1:4 | gap missed=2 more".
func after(c *lvc.Cache, topic string, epoch, seq uint64, now int64, max int) string {
	var got []string
	res := c.HistoryAfter(topic, epoch, seq, now, max, func(m *tick.Message) {
		got = append(got, fmt.Sprintf("e%d:%d", m.Stamp.Epoch, m.Stamp.Seq))
	})
	s := strings.Join(got, " ") + " |"
	if !res.Kept {
		s += " not-kept"
	}
	if res.Latest {
		s += " latest"
	}
	if res.Gap {
		s += fmt.Sprintf(" gap missed=%d", res.Missed)
	}
	if res.More {
		s += " more"
	}
	if res.N != len(got) {
		s += fmt.Sprintf(" N=%d!", res.N)
	}
	return s
}

func historyCache(rules ...lvc.HistoryRule) *lvc.Cache {
	cfg := lvc.DefaultConfig()
	cfg.History = rules
	return lvc.New(cfg, nil)
}

func TestHistoryAfter(t *testing.T) {
	c := historyCache(lvc.HistoryRule{Prefix: "ev.", MaxCount: 5, MaxBytes: 1 << 20})
	// epoch 1: seqs 1..8 (1..3 evicted by count: 5 kept are 4..8); no rule for px.
	for s := uint64(1); s <= 8; s++ {
		c.Update(emsg("ev.a", 1, s, int64(s)))
		c.Update(emsg("px.a", 1, s, int64(s)))
	}
	tests := []struct {
		name       string
		topic      string
		epoch, seq uint64
		max        int
		want       string
	}{
		{"inside", "ev.a", 1, 5, 10, "e1:6 e1:7 e1:8 |"},
		{"at the oldest's predecessor", "ev.a", 1, 3, 10, "e1:4 e1:5 e1:6 e1:7 e1:8 |"},
		{"chunked", "ev.a", 1, 3, 2, "e1:4 e1:5 | more"},
		{"up to date", "ev.a", 1, 8, 10, " |"},
		{"ahead", "ev.a", 1, 9, 10, " |"},
		{"past the window", "ev.a", 1, 1, 10, "e1:4 e1:5 e1:6 e1:7 e1:8 | gap missed=2"},
		{"another epoch", "ev.a", 7, 3, 10, "e1:4 e1:5 e1:6 e1:7 e1:8 | gap missed=0"},
		{"no rule", "px.a", 1, 3, 10, " | not-kept"},
		{"no topic", "ev.none", 1, 3, 10, " | not-kept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := after(c, tt.topic, tt.epoch, tt.seq, 0, tt.max); got != tt.want {
				t.Errorf("HistoryAfter(%q, %d, %d) = %q, want %q", tt.topic, tt.epoch, tt.seq, got, tt.want)
			}
		})
	}
}

// A restart: the ring holds the old epoch's tail, then the new epoch.
func TestHistoryAcrossEpochs(t *testing.T) {
	c := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20})
	for s := uint64(5); s <= 7; s++ {
		c.Update(emsg("t", 1, s, 0))
	}
	for s := uint64(1); s <= 2; s++ {
		c.Update(emsg("t", 2, s, 0))
	}
	tests := []struct {
		name       string
		epoch, seq uint64
		want       string
	}{
		{"old epoch inside", 1, 5, "e1:6 e1:7 e2:1 e2:2 |"},
		{"old epoch at its end", 1, 7, "e2:1 e2:2 | gap missed=0"},
		{"old epoch before the window", 1, 2, "e1:5 e1:6 e1:7 e2:1 e2:2 | gap missed=2"},
		{"new epoch", 2, 1, "e2:2 |"},
		{"unknown epoch", 9, 1, "e1:5 e1:6 e1:7 e2:1 e2:2 | gap missed=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := after(c, "t", tt.epoch, tt.seq, 0, 100); got != tt.want {
				t.Errorf("HistoryAfter(e%d:%d) = %q, want %q", tt.epoch, tt.seq, got, tt.want)
			}
		})
	}
}

func TestHistoryBounds(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		// each message: topic "b" (1) + "vN" (2) = 3 bytes; 10 bytes keep 3
		c := historyCache(lvc.HistoryRule{Prefix: "b", MaxCount: 100, MaxBytes: 10})
		for s := uint64(1); s <= 6; s++ {
			c.Update(emsg("b", 1, s, 0))
		}
		if got, want := after(c, "b", 1, 0, 0, 100), "e1:4 e1:5 e1:6 | gap missed=3"; got != want {
			t.Errorf("after bytes bound: %q, want %q", got, want)
		}
	})
	t.Run("age", func(t *testing.T) {
		c := historyCache(lvc.HistoryRule{Prefix: "a", MaxCount: 100, MaxBytes: 1 << 20, MaxAge: 10})
		for s := uint64(1); s <= 5; s++ {
			c.Update(emsg("a", 1, s, int64(s*4))) // ingress 4, 8, ..., 20: 4 and 8 are older than 20-10
		}
		if got, want := after(c, "a", 1, 0, 20, 100), "e1:3 e1:4 e1:5 | gap missed=2"; got != want {
			t.Errorf("after age bound on push: %q, want %q", got, want)
		}
		// read later: at 30 only seq 5 (ingress 20) is young enough
		if got, want := after(c, "a", 1, 2, 30, 100), "e1:5 | gap missed=2"; got != want {
			t.Errorf("after age bound on read: %q, want %q", got, want)
		}
		if got, want := after(c, "a", 1, 2, 100, 100), " | latest gap missed=2"; got != want { // 3 and 4; 5 is the latest value
			t.Errorf("after all too old: %q, want %q", got, want)
		}
	})
	t.Run("global", func(t *testing.T) {
		cfg := lvc.DefaultConfig()
		cfg.History = []lvc.HistoryRule{{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20}}
		cfg.HistoryMaxBytes = 12 // four 3-byte updates in all
		reg := prometheus.NewRegistry()
		c := lvc.New(cfg, reg)
		for s := uint64(1); s <= 4; s++ {
			c.Update(emsg("x", 1, s, 0))
		}
		c.Update(emsg("y", 1, 1, 0))                                            // y's first update evicts nothing of x: y pays with its own (empty) history
		if got, want := after(c, "y", 1, 0, 0, 100), " | latest"; got != want { // only the latest value, nothing lost before it
			t.Errorf("y after global bound: %q, want %q", got, want)
		}
		if n, b := c.HistoryLen(); n != 4 || b != 12 {
			t.Errorf("HistoryLen = %d, %d, want 4, 12", n, b)
		}
		c.Update(emsg("x", 1, 5, 0)) // x pays with its oldest
		if got, want := after(c, "x", 1, 0, 0, 100), "e1:2 e1:3 e1:4 e1:5 | gap missed=1"; got != want {
			t.Errorf("x after global bound: %q, want %q", got, want)
		}
		if got := counter(reg, "mdgate_history_evicted_total", "global"); got != 2 {
			t.Errorf("evicted global = %v, want 2", got)
		}
	})
	t.Run("off under a longer prefix", func(t *testing.T) {
		c := historyCache(lvc.HistoryRule{Prefix: "md.", MaxCount: 10, MaxBytes: 100}, lvc.HistoryRule{Prefix: "md.px.", MaxCount: 0})
		c.Update(emsg("md.px.a", 1, 1, 0))
		c.Update(emsg("md.ev.a", 1, 1, 0))
		if _, ok := c.History("md.px.a"); ok {
			t.Errorf("md.px.a keeps history under a 0 rule")
		}
		if h, ok := c.History("md.ev.a"); !ok || h.Updates != 1 {
			t.Errorf("md.ev.a history = %+v, %v, want 1 update", h, ok)
		}
	})
	t.Run("delete drops it", func(t *testing.T) {
		c := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 10, MaxBytes: 100})
		c.Update(emsg("d", 1, 1, 0))
		c.Update(msg("d", 2, 0, ""))
		if n, b := c.HistoryLen(); n != 0 || b != 0 {
			t.Errorf("HistoryLen after delete = %d, %d, want 0, 0", n, b)
		}
	})
}

// The cache file keeps each topic's history: a restart rebuilds it, stale.
func TestHistorySurvivesSaveAndLoad(t *testing.T) {
	rule := lvc.HistoryRule{Prefix: "ev.", MaxCount: 3, MaxBytes: 1 << 20}
	c := historyCache(rule)
	for s := uint64(1); s <= 5; s++ {
		c.Update(emsg("ev.a", 1, s, 0))
		c.Update(emsg("px.a", 1, s, 0))
	}
	path := filepath.Join(t.TempDir(), "cache")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	d := historyCache(rule)
	if err := d.LoadOrQuarantine(path, zerolog.Nop(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, want := after(d, "ev.a", 1, 2, 0, 10), "e1:3 e1:4 e1:5 |"; got != want {
		t.Errorf("after restart: %q, want %q", got, want)
	}
	if m, ok := d.Get("px.a"); !ok || m.Stamp.Seq != 5 || m.Stamp.Flags&tick.FlagStale == 0 {
		t.Errorf("px.a after restart = %+v, %v, want seq 5, stale", m, ok)
	}
	if m, ok := d.Get("ev.a"); !ok || m.Stamp.Seq != 5 {
		t.Errorf("ev.a after restart = %+v, %v, want seq 5", m, ok)
	}
	// the new run's updates follow the old epoch's
	d.Update(emsg("ev.a", 2, 1, 0))
	if got, want := after(d, "ev.a", 1, 4, 0, 10), "e1:5 e2:1 |"; got != want {
		t.Errorf("after restart and an update: %q, want %q", got, want)
	}
}

// counter reads a counter of reg with the given label value, -1 if absent.
func counter(reg *prometheus.Registry, name, label string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
