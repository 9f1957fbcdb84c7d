package snapshot

import (
	"errors"
	"fmt"
	"time"
)

// Config bounds the server: what one requester can make it hold, how many
// requests it serves at once, and how long a requester may stop reading.
type Config struct {
	// HWM is the most messages held for one requester (ZMQ_SNDHWM of its
	// pipe). In bytes that is at most HWM x the largest cached message, which
	// the proxy bounds with --max-msg-bytes (64 KiB by default): 64 MiB at
	// the defaults, about HWM x 300 B for typical market data.
	HWM int
	// MaxRequests is the most requests accepted and not finished, every
	// requester together (served and waiting). Past it a request gets ERR
	// busy at once. Memory held for requests in progress is at most
	// MaxRequests x HWM x the largest cached message.
	MaxRequests int
	// MaxPerPeer is the most requests accepted and not finished from one
	// peer (one ZeroMQ identity): one is served, the rest wait in order.
	// Past it a request gets ERR busy.
	MaxPerPeer int
	// StallTimeout drops a request that could send nothing for this long
	// (its requester does not read): ERR stalled, best effort.
	StallTimeout time.Duration
	// ChunkValues and ChunkBytes bound what one request sends per turn;
	// requests take turns, so a large snapshot does not hold up a small one.
	// A turn ends after the value that reaches ChunkBytes.
	ChunkValues int
	ChunkBytes  int
}

// DefaultConfig returns the defaults behind the gateway's --snapshot-* flags.
func DefaultConfig() Config {
	return Config{
		HWM:          1000,
		MaxRequests:  64,
		MaxPerPeer:   4,
		StallTimeout: 5 * time.Second,
		ChunkValues:  64,
		ChunkBytes:   64 << 10,
	}
}

// maxHWM keeps HWM x a large message within reason; libzmq takes an int.
const maxHWM = 1 << 20

// Validate reports every field out of range.
func (c Config) Validate() error {
	var errs []error
	if c.HWM < 1 || c.HWM > maxHWM {
		errs = append(errs, fmt.Errorf("snapshot HWM %d: want 1 to %d messages (0 would be no bound at all)", c.HWM, maxHWM))
	}
	if c.MaxRequests < 1 {
		errs = append(errs, fmt.Errorf("snapshot MaxRequests %d: want at least 1", c.MaxRequests))
	}
	if c.MaxPerPeer < 1 || c.MaxPerPeer > max(c.MaxRequests, 1) {
		errs = append(errs, fmt.Errorf("snapshot MaxPerPeer %d: want 1 to MaxRequests (%d)", c.MaxPerPeer, c.MaxRequests))
	}
	if c.StallTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("snapshot StallTimeout %v: want at least 10ms", c.StallTimeout))
	}
	if c.ChunkValues < 1 {
		errs = append(errs, fmt.Errorf("snapshot ChunkValues %d: want at least 1", c.ChunkValues))
	}
	if c.ChunkBytes < 1 {
		errs = append(errs, fmt.Errorf("snapshot ChunkBytes %d: want at least 1", c.ChunkBytes))
	}
	return errors.Join(errs...)
}
