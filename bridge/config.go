package bridge

import (
	"errors"
	"fmt"
	"math"
)

// Validate reports every field of c out of range at once. Start from
// DefaultConfig: it is the source of the defaults, and Validate refuses the
// zero values that have no meaning of their own. Zero is real for
// SendBuffer (the kernel's), MaxConns and MaxConnsPerIP (no limit). The
// per-client limits are the fan-out's (blackbox.Config.Limits): one source.
func (c Config) Validate() error {
	var errs []error
	if c.ReadLimit < 1 {
		errs = append(errs, fmt.Errorf("ws read limit %d: want at least 1 byte", c.ReadLimit))
	}
	if c.MaxSubs < 1 {
		errs = append(errs, fmt.Errorf("ws max subscriptions %d: want at least 1", c.MaxSubs))
	}
	if !(c.SubscribeRate > 0) || math.IsInf(c.SubscribeRate, 0) {
		errs = append(errs, fmt.Errorf("ws subscribe rate %v: want more than 0 a second", c.SubscribeRate))
	}
	if c.SubscribeBurst < 1 {
		errs = append(errs, fmt.Errorf("ws subscribe burst %d: want at least 1", c.SubscribeBurst))
	}
	if c.AbuseLimit < 1 {
		errs = append(errs, fmt.Errorf("ws abuse limit %d: want at least 1", c.AbuseLimit))
	}
	if c.AbuseRefill <= 0 {
		errs = append(errs, fmt.Errorf("ws abuse refill %v: want more than 0", c.AbuseRefill))
	}
	if c.HandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("ws handshake timeout %v: want more than 0", c.HandshakeTimeout))
	}
	if c.PongWait <= 0 {
		errs = append(errs, fmt.Errorf("ws pong wait %v: want more than 0", c.PongWait))
	}
	if c.SendBuffer < 0 {
		errs = append(errs, fmt.Errorf("ws send buffer %d: want 0 (the kernel's) or more", c.SendBuffer))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("ws max conns %d: want 0 (no limit) or more", c.MaxConns))
	}
	if c.MaxConnsPerIP < 0 {
		errs = append(errs, fmt.Errorf("ws max conns per ip %d: want 0 (no limit) or more", c.MaxConnsPerIP))
	}
	if c.CloseGrace <= 0 {
		errs = append(errs, fmt.Errorf("ws close grace %v: want more than 0", c.CloseGrace))
	}
	return errors.Join(errs...)
}
