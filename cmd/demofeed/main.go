// Command demofeed is the gateway's demo feed (internal/demofeed: random-walk
// prices, JSON payloads) as a publisher of its own: one PUB connected to
// every endpoint given, so each gets every message. `make ha-demo` runs it
// against both gateways of a failover pair (docs/ha.md); the gateway's own
// --demo feed publishes in process only.
//
//	go run ./cmd/demofeed --connect tcp://127.0.0.1:5571,tcp://127.0.0.1:5581
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/demofeed"
	"github.com/mdgate/mdgate/internal/zsock"
)

// endpoints is a repeatable flag taking comma-separated lists.
type endpoints []string

func (e *endpoints) String() string { return strings.Join(*e, ",") }

func (e *endpoints) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*e = append(*e, s)
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demofeed:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("demofeed", flag.ContinueOnError)
	var connect endpoints
	fs.Var(&connect, "connect", "gateway --ingress-bind `endpoints` to connect to, comma-separated (repeatable); each gets every message")
	rate := fs.Int("rate", 2000, "messages a `second`, all endpoints alike")
	n := fs.Int("instruments", 300, "instrument count (topics md.eq., md.fx., md.fut.)")
	hwm := fs.Int("sndhwm", 100000, "messages queued per endpoint while it is down or slow; past it that endpoint's are dropped (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(connect) == 0 {
		return errors.New("--connect: at least one endpoint")
	}
	if *rate <= 0 || *n <= 0 {
		return fmt.Errorf("--rate %d and --instruments %d: want more than 0", *rate, *n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	open := func() (*zmq.Socket, error) {
		pub, err := zmq.NewSocket(zmq.PUB)
		if err != nil {
			return nil, err
		}
		errs := []error{pub.SetLinger(0), pub.SetSndhwm(*hwm)}
		for _, e := range connect {
			if err := pub.Connect(e); err != nil {
				errs = append(errs, fmt.Errorf("connect %s: %w", e, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			pub.Close()
			return nil, err
		}
		return pub, nil
	}
	fmt.Fprintf(os.Stderr, "demofeed: %d msgs/s over %d instruments to %s\n", *rate, *n, connect.String())
	return zsock.Own(open, func(pub *zmq.Socket) error { return demofeed.PublishOn(ctx, pub, *rate, *n) })
}
