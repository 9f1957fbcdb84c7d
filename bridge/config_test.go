package bridge_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mdgate/mdgate/bridge"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*bridge.Config)
		want string // "" valid, else a piece of the error
	}{
		{"defaults", func(*bridge.Config) {}, ""},
		{"kernel send buffer", func(c *bridge.Config) { c.SendBuffer = 0 }, ""},
		{"no connection limits", func(c *bridge.Config) { c.MaxConns, c.MaxConnsPerIP = 0, 0 }, ""},
		{"read limit 0", func(c *bridge.Config) { c.ReadLimit = 0 }, "ws read limit 0"},
		{"max subs -1", func(c *bridge.Config) { c.MaxSubs = -1 }, "ws max subscriptions -1"},
		{"rate 0", func(c *bridge.Config) { c.SubscribeRate = 0 }, "ws subscribe rate 0"},
		{"rate NaN", func(c *bridge.Config) { c.SubscribeRate = math.NaN() }, "ws subscribe rate NaN"},
		{"rate +Inf", func(c *bridge.Config) { c.SubscribeRate = math.Inf(1) }, "ws subscribe rate +Inf"},
		{"burst 0", func(c *bridge.Config) { c.SubscribeBurst = 0 }, "ws subscribe burst 0"},
		{"abuse limit -1", func(c *bridge.Config) { c.AbuseLimit = -1 }, "ws abuse limit -1"},
		{"abuse refill 0", func(c *bridge.Config) { c.AbuseRefill = 0 }, "ws abuse refill 0s"},
		{"handshake -1s", func(c *bridge.Config) { c.HandshakeTimeout = -time.Second }, "ws handshake timeout -1s"},
		{"pong wait 0", func(c *bridge.Config) { c.PongWait = 0 }, "ws pong wait 0s"},
		{"send buffer -1", func(c *bridge.Config) { c.SendBuffer = -1 }, "ws send buffer -1"},
		{"max conns -1", func(c *bridge.Config) { c.MaxConns = -1 }, "ws max conns -1"},
		{"per ip -1", func(c *bridge.Config) { c.MaxConnsPerIP = -1 }, "ws max conns per ip -1"},
		{"close grace 0", func(c *bridge.Config) { c.CloseGrace = 0 }, "ws close grace 0s"},
		{"limits", func(c *bridge.Config) { c.Limits.MaxLag = -time.Second }, "slow max lag -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bridge.DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate(%s) = %v, want %q", tt.name, err, tt.want)
			}
		})
	}
}
