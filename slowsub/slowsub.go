package slowsub

import (
	"errors"
	"fmt"
	"time"
)

// Policy is what a subscriber asked for when it falls behind.
type Policy uint8

const (
	// Disconnect cuts the subscriber off past its limits (the default).
	Disconnect Policy = iota
	// Conflate keeps only the latest undelivered value of each topic.
	Conflate
)

func (p Policy) String() string {
	if p == Conflate {
		return "conflate"
	}
	return "disconnect"
}

// ParsePolicy reads "disconnect" or "conflate"; "" is Disconnect.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "", "disconnect":
		return Disconnect, nil
	case "conflate":
		return Conflate, nil
	}
	return Disconnect, fmt.Errorf("slow policy %q: want disconnect or conflate", s)
}

// Reason says why a subscriber was cut off. Its String is a fixed metric
// label.
type Reason uint8

const (
	None       Reason = iota
	QueueBytes        // its queue holds more bytes than its limit
	Lag               // its oldest undelivered message is older than its limit
	Stalled           // it read nothing for the write deadline
)

func (r Reason) String() string {
	switch r {
	case QueueBytes:
		return "queue_bytes"
	case Lag:
		return "lag"
	case Stalled:
		return "stalled"
	}
	return "none"
}

// Limits bound one subscriber.
type Limits struct {
	MaxBytes int           // queued bytes; 0 means no byte limit
	MaxLag   time.Duration // age of the oldest queued message; 0 means none
}

// DefaultLimits are 1 MiB and 2 s.
func DefaultLimits() Limits { return Limits{MaxBytes: 1 << 20, MaxLag: 2 * time.Second} }

// Validate reports a negative bound, and both bounds at 0 (a stalled
// subscriber could then queue without end). One bound at 0 is real: no
// byte bound (the lag bounds the queue) or no lag bound.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("slow max bytes %d: want 0 (no byte bound) or more", l.MaxBytes))
	}
	if l.MaxLag < 0 {
		errs = append(errs, fmt.Errorf("slow max lag %v: want 0 (no lag bound) or more", l.MaxLag))
	}
	if l.MaxBytes == 0 && l.MaxLag == 0 {
		errs = append(errs, errors.New("slow max bytes and slow max lag both 0: a stalled client would queue without bound; give at least one"))
	}
	return errors.Join(errs...)
}

// Within returns l with each field capped by max (zero fields of l take
// max's value): a client may ask for tighter limits, never looser ones.
func (l Limits) Within(max Limits) Limits {
	capped := func(v, m int64) int64 {
		if v <= 0 || (m > 0 && v > m) {
			return m
		}
		return v
	}
	return Limits{
		MaxBytes: int(capped(int64(l.MaxBytes), int64(max.MaxBytes))),
		MaxLag:   time.Duration(capped(int64(l.MaxLag), int64(max.MaxLag))),
	}
}

// Decide is the one rule: a subscriber with queued bytes waiting and its
// oldest message lag old is cut off for the returned reason, or kept (None).
func Decide(l Limits, queued int, lag time.Duration) Reason {
	switch {
	case l.MaxBytes > 0 && queued > l.MaxBytes:
		return QueueBytes
	case l.MaxLag > 0 && lag > l.MaxLag:
		return Lag
	}
	return None
}
