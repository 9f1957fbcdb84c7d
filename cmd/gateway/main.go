// Command gateway runs mdgate, a ZeroMQ market-data gateway. See --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/tap"
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
	o, err := parse(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		return 2
	}
	log := newLogger(o)
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

func newLogger(o *options) zerolog.Logger {
	level, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	var log zerolog.Logger
	if !o.logJSON && isatty.IsTerminal(os.Stderr.Fd()) {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	} else {
		log = zerolog.New(os.Stderr)
	}
	log = log.Level(level).With().Timestamp().Logger()
	if err != nil {
		log.Warn().Str("log_level", o.logLevel).Msg("unknown log level, using info")
	}
	return log
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
