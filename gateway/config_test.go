package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testpeer"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		edit func(*gateway.Config)
		want string // "" valid, else a piece of the error
	}{
		{"defaults", func(*gateway.Config) {}, ""},
		{"cache file to create", func(c *gateway.Config) { c.CacheFile = filepath.Join(dir, "cache.lvc") }, ""},
		{"save interval 0", func(c *gateway.Config) { c.CacheSaveEvery = 0 }, "lvc save interval 0s"},
		{"cache file a directory", func(c *gateway.Config) { c.CacheFile = dir }, "is a directory"},
		{"cache file in a missing directory", func(c *gateway.Config) { c.CacheFile = filepath.Join(dir, "no", "c.lvc") }, "does not exist"},
		{"cache file, cache off", func(c *gateway.Config) { c.CacheFile, c.LVC = filepath.Join(dir, "c.lvc"), false }, "cache off"},
		{"snapshot port", func(c *gateway.Config) { c.SnapshotBind = "tcp://*:99999" }, `port "99999"`},
		{"shutdown timeout", func(c *gateway.Config) { c.ShutdownTimeout = 0 }, "shutdown timeout 0s"},
		{"pong wait under heartbeat", func(c *gateway.Config) { c.Bridge.PongWait = time.Second }, "ws pong wait 1s"},
		{"heartbeat off, any pong wait", func(c *gateway.Config) { c.Fanout.Heartbeat, c.Bridge.PongWait = 0, time.Second }, ""},
		{"fan-out", func(c *gateway.Config) { c.Fanout.ShardQueue = 0 }, "fanout queue 0"},
		{"bridge", func(c *gateway.Config) { c.Bridge.CloseGrace = 0 }, "ws close grace 0s"},
		{"cache", func(c *gateway.Config) { c.Cache.MaxTopics = -1 }, "lvc max topics -1"},
		{"snapshot", func(c *gateway.Config) { c.Snapshot.HWM = 0 }, "snapshot HWM 0"},
		{"proxy", func(c *gateway.Config) { c.Proxy.MaxFrames = 0 }, "max frames 0"},
		{"http", func(c *gateway.Config) { c.HTTPMaxConns = -1 }, "http max conns -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gateway.DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate(%s) = %v, want %q", tt.name, err, tt.want)
			}
			if err == nil {
				return
			}
			if _, nerr := gateway.New(c, nopLog); nerr == nil {
				t.Errorf("New(%s) = nil error, want Validate's %v", tt.name, err)
			}
		})
	}
}

// TestFailedSavesShownInHealthAndMetrics: the cache file's directory goes
// away under a running gateway; every failed save is counted and /healthz
// says so (degraded, still 200) with the last error.
func TestFailedSavesShownInHealthAndMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	c := testConfig()
	c.CacheFile = filepath.Join(dir, "cache.lvc")
	c.CacheSaveEvery = 20 * time.Millisecond
	c.ShutdownTimeout = time.Second
	g := start(t, c)
	base := "http://" + g.HTTPAddr()
	type health struct {
		Status  string
		LVCFile struct {
			Path      string
			Saves     uint64
			Failures  uint64
			LastError string `json:"last_error"`
			Failing   bool
		} `json:"lvc_file"`
	}
	get := func() (h health, code int) {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return h, 0
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&h)
		return h, resp.StatusCode
	}
	testpeer.Eventually(t, wait, "a good save", func() bool { h, _ := get(); return h.Status == "ok" && h.LVCFile.Saves > 0 })
	// A save may create its temporary file while RemoveAll runs, which then
	// fails (directory not empty): until the directory is gone.
	testpeer.Eventually(t, wait, "the cache file's directory removed", func() bool {
		os.RemoveAll(dir)
		_, err := os.Stat(dir)
		return os.IsNotExist(err)
	})
	var h health
	var code int
	testpeer.Eventually(t, wait, "two failed saves in /healthz", func() bool { h, code = get(); return h.LVCFile.Failures >= 2 })
	if code != 200 || h.Status != "degraded" || !h.LVCFile.Failing || h.LVCFile.Path != c.CacheFile || !strings.Contains(h.LVCFile.LastError, "no such file or directory") {
		t.Errorf("/healthz = %d %+v, want 200, degraded, failing, the path and the last error", code, h)
	}
	fams, err := promscrape.Scrape(context.Background(), base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := fams.Value("mdgate_lvc_saves_total", "result", "error"); v < float64(h.LVCFile.Failures) {
		t.Errorf("mdgate_lvc_saves_total{result=error} = %v, want at least the %d failures /healthz showed", v, h.LVCFile.Failures)
	}
}
