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

// reserveLoopP gives the Go scheduler one P more than the cores it may use
// (unless GOMAXPROCS is set), and returns the core count. The proxy loop's
// thread spends its idle time blocked in zmq_poll, a cgo call that holds a
// P until the runtime's sysmon takes it back, after up to 10 ms when the
// process has been quiet: with one P per core, the fan-out's goroutines
// waited that long behind it. Measured with loadtest on the gateway pinned
// to one core at 50k deliveries/s: p99 31.6 ms with one P, 1.7 ms with two;
// sharing both cores at 100k/s: p99 11.5 ms with two Ps, 5.8 ms with three.
func reserveLoopP() int {
	cores := runtime.GOMAXPROCS(0)
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(cores + 1)
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
