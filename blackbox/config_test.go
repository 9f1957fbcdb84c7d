package blackbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/slowsub"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*blackbox.Config)
		want string // "" valid, else a piece of the error
	}{
		{"defaults", func(*blackbox.Config) {}, ""},
		{"a shard per core", func(c *blackbox.Config) { c.Shards = 0 }, ""},
		{"heartbeat never", func(c *blackbox.Config) { c.Heartbeat = 0 }, ""},
		{"no byte bound", func(c *blackbox.Config) { c.Limits.MaxBytes = 0 }, ""},
		{"shards -1", func(c *blackbox.Config) { c.Shards = -1 }, "fanout shards -1"},
		{"queue 0", func(c *blackbox.Config) { c.ShardQueue = 0 }, "fanout queue 0"},
		{"write timeout 0", func(c *blackbox.Config) { c.WriteTimeout = 0 }, "write timeout 0s"},
		{"heartbeat -1s", func(c *blackbox.Config) { c.Heartbeat = -time.Second }, "ws heartbeat -1s"},
		{"sweep 0", func(c *blackbox.Config) { c.SweepEvery = 0 }, "sweep interval 0s"},
		{"write delay 10ms", func(c *blackbox.Config) { c.WriteDelay = 10 * time.Millisecond }, ""},
		{"write delay -1ms", func(c *blackbox.Config) { c.WriteDelay = -time.Millisecond }, "write delay -1ms"},
		{"write delay 1s", func(c *blackbox.Config) { c.WriteDelay = time.Second }, "write delay 1s: want 0 (none) to 100ms"},
		{"busy write delay 10ms", func(c *blackbox.Config) { c.BusyWriteDelay = 10 * time.Millisecond }, ""},
		{"busy write delay 1s", func(c *blackbox.Config) { c.BusyWriteDelay = time.Second }, "busy write delay 1s: want 0 (none) to 100ms"},
		{"in flight 0", func(c *blackbox.Config) { c.InFlight = 0 }, "ws inflight bytes 0"},
		{"in flight conflate -1", func(c *blackbox.Config) { c.InFlightConflate = -1 }, "ws inflight conflate bytes -1"},
		{"max bytes -1", func(c *blackbox.Config) { c.Limits.MaxBytes = -1 }, "slow max bytes -1"},
		{"max lag -1s", func(c *blackbox.Config) { c.Limits.MaxLag = -time.Second }, "slow max lag -1s"},
		{"slow rule off", func(c *blackbox.Config) { c.Limits.MaxBytes, c.Limits.MaxLag = 0, 0 }, "both 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := blackbox.DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate(%s) = %v, want %q", tt.name, err, tt.want)
			}
		})
	}
}

// TestNewRefuses: New validates rather than repairs; each bad field is
// refused with an error that names it.
func TestNewRefuses(t *testing.T) {
	tests := []struct {
		edit func(*blackbox.Config)
		want string
	}{
		{func(c *blackbox.Config) { c.Shards = -1 }, "fanout shards -1"},
		{func(c *blackbox.Config) { c.ShardQueue = 0 }, "fanout queue 0"},
		{func(c *blackbox.Config) { c.WriteTimeout = 0 }, "write timeout 0s"},
		{func(c *blackbox.Config) { c.Heartbeat = -time.Second }, "ws heartbeat -1s"},
		{func(c *blackbox.Config) { c.SweepEvery = 0 }, "sweep interval 0s"},
		{func(c *blackbox.Config) { c.InFlight = 0 }, "ws inflight bytes 0"},
		{func(c *blackbox.Config) { c.InFlightConflate = 0 }, "ws inflight conflate bytes 0"},
		{func(c *blackbox.Config) { c.Limits = slowsub.Limits{} }, "both 0"},
		{func(c *blackbox.Config) { *c = blackbox.Config{} }, "fanout queue 0"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			c := blackbox.DefaultConfig()
			tt.edit(&c)
			e, err := blackbox.New(c, nil, nil, zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) = %v, %v; want an error naming %q", c, e, err, tt.want)
			}
		})
	}
	if _, err := blackbox.New(blackbox.DefaultConfig(), nil, nil, zerolog.Nop()); err != nil {
		t.Errorf("New(DefaultConfig()) = %v, want no error", err)
	}
}
