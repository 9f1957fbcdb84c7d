package lvc_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/tick"
)

func msg(topic string, seq uint64, ingress int64, payload ...string) *tick.Message {
	m := &tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic)}, Stamp: tick.Stamp{Epoch: 1, Seq: seq, Ingress: ingress}}
	for _, p := range payload {
		m.Frames = append(m.Frames, []byte(p))
	}
	return m
}

func topics(ms []*tick.Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%s=%s#%d", m.Topic, m.Frames[len(m.Frames)-1], m.Stamp.Seq))
	}
	return strings.Join(s, " ")
}

func TestUpdateDeleteAndPrefixes(t *testing.T) {
	c := lvc.New(lvc.DefaultConfig(), nil)
	c.Update(msg("md.eq.AAPL", 1, 0, "100"))
	c.Update(msg("md.eq.AAPL", 2, 0, "101"))
	c.Update(msg("md.eq.IBM", 1, 0, "50"))
	c.Update(msg("md.fx.EUR", 1, 0, "1.08"))
	c.Update(msg("md.eqx", 1, 0, "x"))
	tests := []struct{ prefix, want string }{
		{"md.eq.", "md.eq.AAPL=101#2 md.eq.IBM=50#1"},
		{"md.eq", "md.eq.AAPL=101#2 md.eq.IBM=50#1 md.eqx=x#1"},
		{"", "md.eq.AAPL=101#2 md.eq.IBM=50#1 md.eqx=x#1 md.fx.EUR=1.08#1"},
		{"nope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if got := topics(c.Snapshot(tt.prefix)); got != tt.want {
				t.Errorf("Snapshot(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
	c.Update(msg("md.eq.IBM", 2, 0, "")) // a publisher's delete
	if _, ok := c.Get("md.eq.IBM"); ok {
		t.Error(`Get("md.eq.IBM") after [topic, ""] found a value, want deleted`)
	}
	if n, b := c.Len(); n != 3 || b != int64(len("md.eq.AAPL101md.fx.EUR1.08md.eqxx")) {
		t.Errorf("Len() = %d, %d, want 3 topics and their frame bytes", n, b)
	}
}

func TestBoundsRefuseNewTopicsNeverEvict(t *testing.T) {
	tests := []struct {
		name string
		cfg  lvc.Config
	}{
		{"topics", lvc.Config{MaxTopics: 2, MaxBytes: 1 << 20}},
		{"bytes", lvc.Config{MaxTopics: 100, MaxBytes: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := lvc.New(tt.cfg, nil)
			ok1, ok2 := c.Update(msg("a", 1, 0, "1")), c.Update(msg("b", 1, 0, "2"))
			okNew := c.Update(msg("ccccccccccc", 1, 0, "3"))
			okOld := c.Update(msg("a", 2, 0, "9"))
			if !ok1 || !ok2 || okNew || !okOld {
				t.Errorf("updates = %v %v new=%v existing=%v, want true true false true", ok1, ok2, okNew, okOld)
			}
			if got := topics(c.Snapshot("")); got != "a=9#2 b=2#1" {
				t.Errorf("Snapshot(\"\") = %q, want %q", got, "a=9#2 b=2#1")
			}
		})
	}
}

func TestTTLExpiry(t *testing.T) {
	cfg := lvc.DefaultConfig()
	cfg.TTL = []lvc.TTLRule{{"quotes.", 5 * time.Second}, {"quotes.slow.", 60 * time.Second}}
	c := lvc.New(cfg, nil)
	sec := int64(time.Second)
	c.Update(msg("quotes.A", 1, 0*sec, "1"))
	c.Update(msg("quotes.B", 1, 1*sec, "1"))
	c.Update(msg("quotes.slow.C", 1, 0, "1"))
	c.Update(msg("trades.D", 1, 0, "1"))
	c.Update(msg("quotes.A", 2, 3*sec, "2")) // refreshed: expires at 8s
	if got := c.NextExpiry(); got != 5*sec {
		t.Errorf("NextExpiry() = %d, want %d", got, 5*sec)
	}
	var expired []string
	at := func(now int64) string {
		expired = expired[:0]
		c.Expire(now, func(topic string) { expired = append(expired, topic) })
		return strings.Join(expired, ",")
	}
	steps := []struct {
		now  int64
		want string
	}{
		{4 * sec, ""},
		{6 * sec, "quotes.B"},
		{8 * sec, "quotes.A"},
		{59 * sec, ""},
		{60 * sec, "quotes.slow.C"},
		{1000 * sec, ""},
	}
	for _, s := range steps {
		if got := at(s.now); got != s.want {
			t.Errorf("Expire(%ds) removed %q, want %q", s.now/sec, got, s.want)
		}
	}
	if got := topics(c.Snapshot("")); got != "trades.D=1#1" {
		t.Errorf("after expiry the cache holds %q, want only trades.D", got)
	}
	// Deleted and created again: one expiry, at the new value's time.
	c.Update(msg("quotes.E", 1, 2000*sec, "1"))
	c.Update(msg("quotes.E", 2, 2000*sec, ""))
	c.Update(msg("quotes.E", 3, 2001*sec, "1"))
	if got := at(2005 * sec); got != "" {
		t.Errorf("Expire(2005s) removed %q, want nothing (quotes.E was re-created at 2001s)", got)
	}
	if got := at(2006 * sec); got != "quotes.E" {
		t.Errorf("Expire(2006s) removed %q, want quotes.E", got)
	}
}

func TestConcurrentReadersSeeWholeValues(t *testing.T) {
	c := lvc.New(lvc.DefaultConfig(), nil)
	const n = 200
	for i := range n {
		c.Update(msg(fmt.Sprintf("t%03d", i), 1, 0, "v1", "v1"))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 10)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := c.Snapshot("t")
				if len(got) != n {
					errs <- fmt.Sprintf("snapshot has %d topics, want %d", len(got), n)
					return
				}
				for _, m := range got {
					if string(m.Frames[1]) != string(m.Frames[2]) {
						errs <- fmt.Sprintf("torn value %q", m.Frames)
						return
					}
				}
			}
		}()
	}
	for seq := uint64(2); seq < 300; seq++ {
		v := fmt.Sprint("v", seq)
		for i := range n {
			c.Update(msg(fmt.Sprintf("t%03d", i), seq, 0, v, v))
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	c := lvc.New(lvc.DefaultConfig(), prometheus.NewRegistry())
	c.Update(msg("md.a", 7, 123, "x", "", "\x00\xff"))
	c.Update(msg("md.b", 1, 456))
	path := filepath.Join(t.TempDir(), "cache.lvc")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := lvc.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "md.a [md.a x  \x00\xff] seq=7 ingress=123 stale=true; md.b [md.b] seq=1 ingress=456 stale=true; "
	var s string
	c2 := lvc.New(lvc.DefaultConfig(), nil)
	c2.Restore(got)
	for _, m := range c2.Snapshot("") {
		s += fmt.Sprintf("%s %s seq=%d ingress=%d stale=%v; ", m.Topic, m.Frames, m.Stamp.Seq, m.Stamp.Ingress, m.Stamp.Flags&tick.FlagStale != 0)
	}
	if s != want {
		t.Errorf("Load(Save()) = %q, want %q", s, want)
	}
}

func TestCorruptFileMovedAsideAndStartsEmpty(t *testing.T) {
	good := lvc.New(lvc.DefaultConfig(), nil)
	good.Update(msg("md.a", 1, 1, "x"))
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.lvc")
	if err := good.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	flipped := append([]byte(nil), data...)
	flipped[20] ^= 0xff
	tests := []struct {
		name string
		data []byte
	}{
		{"truncated", data[:len(data)-7]},
		{"bit flip", flipped},
		{"garbage", []byte("not a cache file at all")},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := lvc.Load(path); !errors.Is(err, lvc.ErrCorrupt) {
				t.Errorf("Load(%s) error = %v, want ErrCorrupt", tt.name, err)
			}
			c := lvc.New(lvc.DefaultConfig(), nil)
			var logs strings.Builder
			c.LoadOrQuarantine(path, zerolog.New(&logs), time.Unix(1000, 0))
			if n, _ := c.Len(); n != 0 || !strings.Contains(logs.String(), "moved aside") {
				t.Errorf("LoadOrQuarantine(%s): %d topics, log %q; want empty and a 'moved aside' line", tt.name, n, logs.String())
			}
			if _, err := os.Stat(path + ".corrupt-19700101T001640Z"); err != nil {
				t.Errorf("LoadOrQuarantine(%s) did not move the file aside: %v", tt.name, err)
			}
			os.Remove(path + ".corrupt-19700101T001640Z")
		})
	}
}

// TestKill9DuringSaveKeepsLastGoodFile runs a child that saves a large cache
// in a loop and kills it with SIGKILL in the middle of a save.
func TestKill9DuringSaveKeepsLastGoodFile(t *testing.T) {
	if path := os.Getenv("MDGATE_LVC_SAVE_LOOP"); path != "" {
		saveLoop(path)
		return
	}
	path := filepath.Join(t.TempDir(), "cache.lvc")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9DuringSaveKeepsLastGoodFile$")
	cmd.Env = append(os.Environ(), "MDGATE_LVC_SAVE_LOOP="+path)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	saves := 0
	for sc.Scan() && saves < 3 { // kill during the 4th save, which has begun
		if strings.HasPrefix(sc.Text(), "saved") {
			saves++
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if saves < 3 {
		t.Fatalf("child saved %d times before dying, want 3", saves)
	}
	got, err := lvc.Load(path)
	if err != nil {
		t.Fatalf("after kill -9 during a save, Load = %v, want the last good file", err)
	}
	if len(got) != killTopics {
		t.Errorf("after kill -9 the file holds %d topics, want %d", len(got), killTopics)
	}
}

const killTopics = 20000

func saveLoop(path string) {
	c := lvc.New(lvc.DefaultConfig(), nil)
	payload := strings.Repeat("p", 512)
	for i := range killTopics {
		c.Update(msg(fmt.Sprintf("md.t%05d", i), 1, 0, payload))
	}
	for i := 0; ; i++ {
		if err := c.Save(path); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("saved", i)
	}
}

func ExampleCache_Snapshot() {
	c := lvc.New(lvc.DefaultConfig(), nil)
	c.Update(msg("md.eq.MSFT", 1, 0, `{"px":410.5}`))
	c.Update(msg("md.eq.AAPL", 1, 0, `{"px":190.1}`))
	c.Update(msg("md.eq.AAPL", 2, 0, `{"px":190.2}`))
	for _, m := range c.Snapshot("md.eq.") {
		fmt.Printf("%s seq=%d %s\n", m.Topic, m.Stamp.Seq, m.Frames[1])
	}
	// Output:
	// md.eq.AAPL seq=2 {"px":190.2}
	// md.eq.MSFT seq=1 {"px":410.5}
}
