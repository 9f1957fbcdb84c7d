package gateway

import (
	"errors"
	"fmt"

	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/proxy"
)

// Validate reports every problem with c at once: its own fields, each
// part's (proxy, cache, snapshot, fan-out, WebSocket) through that part's
// Validate, and, with --lvc-file, the file itself (lvc.CheckFile: not a
// directory, readable, its directory present and writable).
//
// This is the convention of every package: DefaultConfig is the source of
// the defaults, Validate refuses what is out of range (a zero means
// something only where the field says so, "0: no limit"), and New
// validates the whole configuration before it builds anything, so no
// constructor is handed a value it would have to repair.
func (c *Config) Validate() error {
	var errs []error
	if c.HTTP == "" {
		errs = append(errs, errors.New("http address empty: want host:port, e.g. :8080"))
	}
	errs = append(errs, c.validateHTTP(), c.Proxy.Validate())
	if c.DemoRate < 1 {
		errs = append(errs, fmt.Errorf("demo rate %d: want at least 1 message a second", c.DemoRate))
	}
	if c.DemoInstruments < 1 {
		errs = append(errs, fmt.Errorf("demo instruments %d: want at least 1", c.DemoInstruments))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v: want more than 0", c.ShutdownTimeout))
	}
	errs = append(errs, c.Cache.Validate())
	if c.CacheSaveEvery <= 0 {
		errs = append(errs, fmt.Errorf("lvc save interval %v: want more than 0", c.CacheSaveEvery))
	}
	if c.CacheFile != "" {
		if !c.LVC {
			errs = append(errs, errors.New("lvc file given with the cache off (--lvc=false): there is nothing to persist"))
		} else if err := lvc.CheckFile(c.CacheFile); err != nil {
			errs = append(errs, fmt.Errorf("lvc file: %w", err))
		}
	}
	if c.SnapshotBind != "" {
		if err := proxy.CheckEndpoint(c.SnapshotBind); err != nil {
			errs = append(errs, fmt.Errorf("snapshot bind: %w", err))
		}
	}
	errs = append(errs, c.Snapshot.Validate(), c.Fanout.Validate(), c.Bridge.Validate())
	if hb, pw := c.Fanout.Heartbeat, c.Bridge.PongWait; hb > 0 && pw > 0 && pw <= hb {
		errs = append(errs, fmt.Errorf("ws pong wait %v: want more than ws heartbeat (%v), or every quiet client is dropped between two pings", pw, hb))
	}
	return joinUnique(errs)
}

// joinUnique joins the leaves of errs, each message once: two parts
// reporting the same problem (a shared setting) say it once.
func joinUnique(errs []error) error {
	var out []error
	seen := map[string]bool{}
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	for _, e := range errs {
		walk(e)
	}
	return errors.Join(out...)
}
