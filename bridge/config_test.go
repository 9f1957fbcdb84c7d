package bridge_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/blackbox"
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

// TestNewRefuses: New validates rather than repairs; each bad field is
// refused with an error that names it.
func TestNewRefuses(t *testing.T) {
	engine, err := blackbox.New(blackbox.DefaultConfig(), []blackbox.Encoder{bridge.EncodeUpdate}, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		edit func(*bridge.Config)
		want string
	}{
		{func(c *bridge.Config) { c.ReadLimit = 0 }, "ws read limit 0"},
		{func(c *bridge.Config) { c.MaxSubs = 0 }, "ws max subscriptions 0"},
		{func(c *bridge.Config) { c.SubscribeRate = 0 }, "ws subscribe rate 0"},
		{func(c *bridge.Config) { c.SubscribeBurst = 0 }, "ws subscribe burst 0"},
		{func(c *bridge.Config) { c.AbuseLimit = 0 }, "ws abuse limit 0"},
		{func(c *bridge.Config) { c.AbuseRefill = 0 }, "ws abuse refill 0s"},
		{func(c *bridge.Config) { c.HandshakeTimeout = 0 }, "ws handshake timeout 0s"},
		{func(c *bridge.Config) { c.PongWait = 0 }, "ws pong wait 0s"},
		{func(c *bridge.Config) { c.SendBuffer = -1 }, "ws send buffer -1"},
		{func(c *bridge.Config) { c.MaxConns = -1 }, "ws max conns -1"},
		{func(c *bridge.Config) { c.MaxConnsPerIP = -1 }, "ws max conns per ip -1"},
		{func(c *bridge.Config) { c.CloseGrace = 0 }, "ws close grace 0s"},
		{func(c *bridge.Config) { *c = bridge.Config{} }, "ws read limit 0"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			c := bridge.DefaultConfig()
			tt.edit(&c)
			b, err := bridge.New(c, engine, nil, nil, zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) = %v, %v; want an error naming %q", c, b, err, tt.want)
			}
		})
	}
	b, err := bridge.New(bridge.DefaultConfig(), engine, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatalf("New(DefaultConfig()) = %v, want no error", err)
	}
	b.Close()
}
