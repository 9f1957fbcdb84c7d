// Command gateway runs mdgate, a ZeroMQ market-data gateway. See --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/tap"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "tap" {
		return runTap(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "keygen" {
		return runKeygen()
	}
	o, err := parse(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		return 2
	}
	log := newLogger(o)
	raiseFDLimit(log)
	cores := reserveLoopP()
	if o.cfg.Fanout.Shards == 0 {
		o.cfg.Fanout.Shards = cores
	}
	g, err := gateway.New(o.cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("bad configuration")
		return 2
	}
	err = g.Run(ctx)
	if err != nil {
		log.Error().Err(err).Msg("gateway failed")
		return 1
	}
	log.Info().Msg("gateway stopped")
	return 0
}

// reserveLoopP sizes the Go scheduler (unless GOMAXPROCS is set) and
// returns the core count: one P a core, but at least two. The proxy loop
// waits for its sockets in the netpoller (zsock.Waiter), holding no P; with
// a single P, that P is shared by the loop's locked thread and every other
// goroutine, and the netpoller is looked at only when nothing else is
// runnable, so the pinned gateway got 0.89 cores and p99 60-63 ms at 100k
// deliveries/s against 0.97-0.99 cores and p99 43-47 ms with two. With
// more cores one P more cost CPU and tail: sharing two cores with the load
// at 100k/s, three Ps (the rule until session 6, when the loop still
// blocked in zmq_poll holding its P) took 1.39-1.41 cores with p99
// 137-187 ms; two Ps and the Waiter 1.16 cores, p99 61-65 ms (loadtest ws,
// same-session A/B, two runs each; docs/benchmarks.md).
func reserveLoopP() int {
	cores := runtime.GOMAXPROCS(0)
	if _, set := os.LookupEnv("GOMAXPROCS"); !set && cores < 2 {
		runtime.GOMAXPROCS(2)
	}
	return cores
}

func newLogger(o *options) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	var log zerolog.Logger
	if !o.logJSON && isatty.IsTerminal(os.Stderr.Fd()) {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(o.level).With().Timestamp().Logger()
}

func runTap(ctx context.Context, args []string) int {
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: gateway tap ENDPOINT [PREFIX]   (ENDPOINT is a gateway's --capture-bind, e.g. tcp://127.0.0.1:5560)")
		return 2
	}
	prefix := ""
	if len(args) == 2 {
		prefix = args[1]
	}
	if err := tap.Run(ctx, args[0], prefix, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gateway tap:", err)
		return 1
	}
	return 0
}
