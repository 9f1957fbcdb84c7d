package lvc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/internal/clock/clocktest"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*lvc.Config)
		want string // "" valid, else a piece of the error
	}{
		{"defaults", func(*lvc.Config) {}, ""},
		{"one topic", func(c *lvc.Config) { c.MaxTopics = 1 }, ""},
		{"topics 0", func(c *lvc.Config) { c.MaxTopics = 0 }, "lvc max topics 0"},
		{"topics -1", func(c *lvc.Config) { c.MaxTopics = -1 }, "lvc max topics -1"},
		{"bytes -1", func(c *lvc.Config) { c.MaxBytes = -1 }, "lvc max bytes -1"},
		{"ttl 0", func(c *lvc.Config) { c.TTL = []lvc.TTLRule{{Prefix: "q.", TTL: 0}} }, `lvc ttl "q."=0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := lvc.DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate(%+v) = %v, want %q", c, err, tt.want)
			}
		})
	}
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "cache.lvc")
	os.WriteFile(existing, []byte("anything"), 0o600)
	tests := []struct {
		name, path string
		want       string // "" usable, else a piece of the error
	}{
		{"new file", filepath.Join(dir, "new.lvc"), ""},
		{"existing file", existing, ""},
		{"directory", dir, "is a directory"},
		{"missing directory", filepath.Join(dir, "missing", "cache.lvc"), "does not exist"},
		{"under a file", filepath.Join(existing, "cache.lvc"), "not a directory"},
		{"device", os.DevNull, "not a regular file"},
		{"empty", "", "no path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lvc.CheckFile(tt.path)
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckFile(%q) = %v, want %q", tt.path, err, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("CheckFile left %d entries in %s, want only the existing file", len(entries), dir)
	}
}

// TestLoadOrQuarantineLeavesWhatItCannotRead: only a file read whole and
// found corrupt is moved aside; a directory, an unreadable file are the
// operator's and are returned as errors, untouched.
func TestLoadOrQuarantineLeavesWhatItCannotRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "keep"), []byte("the operator's"), 0o600)
	c := lvc.New(lvc.DefaultConfig(), nil)
	if err := c.LoadOrQuarantine(dir, zerolog.Nop(), time.Unix(1000, 0)); err == nil || errors.Is(err, lvc.ErrCorrupt) {
		t.Errorf("LoadOrQuarantine(a directory) = %v, want an error that is not ErrCorrupt", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); string(b) != "the operator's" {
		t.Errorf("after LoadOrQuarantine(a directory) its file reads %q, %v; want it untouched", b, err)
	}
	if m, _ := filepath.Glob(dir + ".corrupt-*"); len(m) > 0 {
		t.Errorf("LoadOrQuarantine(a directory) moved it aside: %v", m)
	}
	if fs := c.FileStatus(); fs.MovedAside != "" {
		t.Errorf("FileStatus().MovedAside = %q, want none", fs.MovedAside)
	}

	const unreadable = "/proc/sys/vm/compact_memory" // mode 0200: EACCES even for root
	if f, err := os.Open(unreadable); err == nil || !os.IsPermission(err) {
		if f != nil {
			f.Close()
		}
		t.Skipf("cannot produce EACCES here (tests run as root, chmod does not deny root): open %s = %v", unreadable, err)
	}
	if err := c.LoadOrQuarantine(unreadable, zerolog.Nop(), time.Unix(1000, 0)); !os.IsPermission(errors.Unwrap(err)) && !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("LoadOrQuarantine(%s) = %v, want permission denied", unreadable, err)
	}
}

func TestQuarantineRecordedInFileStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.lvc")
	os.WriteFile(path, []byte("not a cache file"), 0o600)
	c := lvc.New(lvc.DefaultConfig(), nil)
	if err := c.LoadOrQuarantine(path, zerolog.Nop(), time.Unix(1000, 0)); err != nil {
		t.Fatalf("LoadOrQuarantine(corrupt) = %v, want nil (moved aside)", err)
	}
	if got, want := c.FileStatus().MovedAside, path+".corrupt-19700101T001640Z"; got != want {
		t.Errorf("FileStatus().MovedAside = %q, want %q", got, want)
	}
}

// TestEveryFailedSaveCounted: a save that cannot even create its temporary
// file is counted and recorded like any other failure.
func TestEveryFailedSaveCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := lvc.New(lvc.DefaultConfig(), reg)
	c.Update(msg("md.a", 1, 1, "x"))
	dir := t.TempDir()
	good := filepath.Join(dir, "cache.lvc")
	if err := c.Save(good); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "gone", "cache.lvc")
	for range 3 {
		if err := c.Save(bad); err == nil {
			t.Fatalf("Save(%q) = nil, want an error", bad)
		}
	}
	saves := func(result string) float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "mdgate_lvc_saves_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
		return -1
	}
	if ok, failed := saves("ok"), saves("error"); ok != 1 || failed != 3 {
		t.Errorf("mdgate_lvc_saves_total = ok %v, error %v; want 1, 3", ok, failed)
	}
	fs := c.FileStatus()
	if fs.Saves != 1 || fs.Failures != 3 || !fs.Failing || fs.LastSave == nil || fs.LastErrorAt == nil || !strings.Contains(fs.LastError, "no such file or directory") {
		t.Errorf("FileStatus() = %+v, want 1 save, 3 failures, failing, the last error naming the missing directory", fs)
	}
	if err := c.Save(good); err != nil || c.FileStatus().Failing {
		t.Errorf("Save(good) = %v, Failing %v; want nil, false", err, c.FileStatus().Failing)
	}
}

func TestPersistRefusesNonPositiveInterval(t *testing.T) {
	c := lvc.New(lvc.DefaultConfig(), nil)
	path := filepath.Join(t.TempDir(), "cache.lvc")
	for _, d := range []time.Duration{0, -time.Second} {
		if err := c.Persist(context.Background(), path, d, time.Second, zerolog.Nop()); err == nil {
			t.Errorf("Persist(interval %v) = nil, want an error (not a panic)", d)
		}
	}
}

// TestPersistFinalSaveWithinBound: on a disk that does not finish the last
// save at shutdown, Persist gives it up exactly at the bound (the fake
// clock's), not before; the previous file stays.
func TestPersistFinalSaveWithinBound(t *testing.T) {
	clk := clock.NewFake(time.Now())
	cfg := lvc.DefaultConfig()
	cfg.Clock = clk
	c := lvc.New(cfg, nil)
	c.Update(msg("md.a", 1, 1, "x"))
	path := filepath.Join(t.TempDir(), "cache.lvc")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer lvc.SetSaveHook(func() {
		select {
		case <-release:
		case <-time.After(wait): // only if the test failed before letting it go
		}
	})()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Persist(ctx, path, time.Hour, 300*time.Millisecond, zerolog.Nop()) }()
	clocktest.BlockUntil(t, clk, 1) // Persist's ticker
	cancel()
	clocktest.BlockUntil(t, clk, 2) // ... and the final save's bound
	clk.Advance(299 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Persist returned %v 1ms before its 300ms bound, the final save still running", err)
	default:
	}
	clk.Advance(time.Millisecond)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Persist at the bound = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Persist still saving at its 300ms bound, want it to give up")
	}
	if _, err := lvc.Load(path); err != nil {
		t.Errorf("Load after the abandoned save = %v, want the previous file whole", err)
	}
	close(release) // the abandoned save finishes (before TempDir's cleanup)
	for deadline := time.Now().Add(5 * time.Second); c.FileStatus().Saves < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if fs := c.FileStatus(); fs.Saves != 2 {
		t.Errorf("FileStatus().Saves = %d after the abandoned save was let go, want 2", fs.Saves)
	}
}

// Persist saves on its clock's interval and once more at shutdown, and
// FileStatus says when, in the clock's time.
func TestPersistSavesOnTheClock(t *testing.T) {
	start := time.Date(2025, 1, 2, 9, 30, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	cfg := lvc.DefaultConfig()
	cfg.Clock = clk
	c := lvc.New(cfg, nil)
	c.Update(msg("md.a", 1, 1, "x"))
	path := filepath.Join(t.TempDir(), "cache.lvc")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Persist(ctx, path, time.Minute, time.Second, zerolog.Nop()) }()
	clocktest.BlockUntil(t, clk, 1) // Persist's ticker
	clk.Advance(59 * time.Second)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after 59s of a 1m interval: Stat = %v, want no file yet", err)
	}
	saved := func(n uint64, at time.Duration) {
		t.Helper()
		testpeer.Eventually(t, wait, fmt.Sprintf("save %d", n), func() bool { return c.FileStatus().Saves == n })
		if fs := c.FileStatus(); !fs.LastSave.Equal(start.Add(at)) || fs.Failures != 0 {
			t.Fatalf("FileStatus() = %+v, want save %d at +%v, no failures", fs, n, at)
		}
	}
	clk.Advance(time.Second)
	saved(1, time.Minute)
	clk.Advance(time.Minute)
	saved(2, 2*time.Minute)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Persist = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Persist did not return after cancel")
	}
	saved(3, 2*time.Minute) // the final save; the clock did not move
	if got := clk.Pending(); got != 0 {
		t.Errorf("%d timers left armed after Persist returned, want 0", got)
	}
}

// wait bounds waits on goroutines in these tests.
const wait = 10 * time.Second
