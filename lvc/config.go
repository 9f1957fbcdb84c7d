package lvc

import (
	"errors"
	"fmt"
)

// Validate reports every field of c out of range at once. Start from
// DefaultConfig. There is no "0: no cache": a gateway without a cache does
// not create one (--lvc=false).
func (c Config) Validate() error {
	var errs []error
	if c.MaxTopics < 1 {
		errs = append(errs, fmt.Errorf("lvc max topics %d: want at least 1 (--lvc=false turns the cache off)", c.MaxTopics))
	}
	if c.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("lvc max bytes %d: want at least 1 (--lvc=false turns the cache off)", c.MaxBytes))
	}
	for _, r := range c.TTL {
		if r.TTL <= 0 {
			errs = append(errs, fmt.Errorf("lvc ttl %q=%v: want more than 0", r.Prefix, r.TTL))
		}
	}
	for _, r := range c.History {
		switch {
		case r.MaxCount < 0:
			errs = append(errs, fmt.Errorf("history %q: count %d: want 0 (off) or more", r.Prefix, r.MaxCount))
		case r.MaxCount > 0 && r.MaxBytes < 1:
			errs = append(errs, fmt.Errorf("history %q: bytes %d: want at least 1", r.Prefix, r.MaxBytes))
		case r.MaxAge < 0:
			errs = append(errs, fmt.Errorf("history %q: age %v: want 0 (no bound) or more", r.Prefix, r.MaxAge))
		}
	}
	if c.HistoryMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("history max bytes %d: want 0 (the default, %d) or more", c.HistoryMaxBytes, DefaultHistoryMaxBytes))
	}
	return errors.Join(errs...)
}
