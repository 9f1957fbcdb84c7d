package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdgate/mdgate/internal/promscrape"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

type options struct {
	clients, perClient, topics int
	rate                       int // deliveries a second (published rate = rate / avg subscribers per topic)
	warmup, window             time.Duration
	payload                    int
	pin, sweep                 bool
	idle                       int
	p99Bound                   time.Duration
	seed                       uint64
	gatewayBin                 string
	jsonOut                    string
	gatewayProcs               int
}

func main() {
	var o options
	flag.IntVar(&o.clients, "clients", 1000, "WebSocket clients")
	flag.IntVar(&o.perClient, "subs", 5, "topics each client subscribes to")
	flag.IntVar(&o.topics, "topics", 100, "topics")
	flag.IntVar(&o.rate, "rate", 100_000, "target deliveries a second (messages a second times subscribers a topic)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before measuring")
	flag.DurationVar(&o.window, "window", 5*time.Second, "measured window")
	flag.IntVar(&o.payload, "payload", 100, "approximate JSON payload bytes")
	flag.BoolVar(&o.pin, "pin", false, "pin the gateway to CPU 0 and the load to CPU 1")
	flag.BoolVar(&o.sweep, "sweep", false, "raise the rate until p99 passes -p99 or anything is lost")
	flag.DurationVar(&o.p99Bound, "p99", 50*time.Millisecond, "p99 bound of the sweep")
	flag.IntVar(&o.idle, "idle", 0, "instead: open this many idle WebSocket connections and report gateway memory per connection")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the subscription plan")
	flag.StringVar(&o.gatewayBin, "gateway", "bin/gateway", "gateway binary to start (built by `make build`)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.IntVar(&o.gatewayProcs, "gateway-procs", 0, "GOMAXPROCS for the gateway only (0: the gateway's own choice)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// result is one measured run.
type result struct {
	Mode          string  `json:"mode"`
	Clients       int     `json:"clients"`
	TargetRate    int     `json:"target_deliveries_per_s"`
	Published     int64   `json:"published"`
	Expected      int64   `json:"expected_deliveries"`
	Delivered     int64   `json:"delivered"`
	Lost          int64   `json:"lost"`
	Rate          float64 `json:"deliveries_per_s"`
	P50, P90, P99 float64 `json:"-"`
	P50ms         float64 `json:"p50_ms"`
	P90ms         float64 `json:"p90_ms"`
	P99ms         float64 `json:"p99_ms"`
	P999ms        float64 `json:"p999_ms"`
	MaxMs         float64 `json:"max_ms"`
	CPUusPer      float64 `json:"gateway_cpu_us_per_delivery"`
	RSSMB         float64 `json:"gateway_rss_mb"`
	Disconnects   float64 `json:"slow_disconnects"`
	Conflated     float64 `json:"conflated"`
	GatewayCores  float64 `json:"gateway_cores"`
	LoadCores     float64 `json:"load_cores"`
}

func run(o options) error {
	if o.pin {
		if runtime.NumCPU() < 2 {
			return errors.New("-pin needs two CPUs")
		}
		var set unix.CPUSet
		set.Set(1)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin the load to CPU 1: %w", err)
		}
	}
	gw, err := startGateway(o)
	if err != nil {
		return err
	}
	defer gw.stop()
	mode := "shared"
	if o.pin {
		mode = "pinned"
	}
	if o.idle > 0 {
		return idleMemory(gw, o.idle)
	}
	var results []result
	if !o.sweep {
		r, err := measure(gw, o, o.rate)
		if err != nil {
			return err
		}
		r.Mode = mode
		results = append(results, r)
	} else {
		for rate := 50_000; rate <= 5_000_000; rate = rate * 3 / 2 {
			r, err := measure(gw, o, rate)
			if err != nil {
				return err
			}
			r.Mode = mode + " sweep"
			results = append(results, r)
			if r.P99ms > float64(o.p99Bound.Milliseconds()) || r.Lost > 0 || r.Disconnects > 0 {
				fmt.Printf("saturation: p99 passed %v or messages were lost at a target of %d deliveries/s; the last clean run delivered %.0f/s\n",
					o.p99Bound, rate, lastClean(results))
				break
			}
		}
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func lastClean(rs []result) float64 {
	best := 0.0
	for _, r := range rs[:len(rs)-1] {
		best = max(best, r.Rate)
	}
	return best
}

// gateway is the gateway process under test.
type gateway struct {
	cmd            *exec.Cmd
	http, ingress  string
	ctx            context.Context
	cancel         context.CancelFunc
	disconnects0   float64
	conflated0     float64
	deliveredTotal float64
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startGateway(o options) (*gateway, error) {
	bin, err := filepath.Abs(o.gatewayBin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no gateway binary at %s: run `make build` first (%w)", bin, err)
	}
	httpAddr, err1 := freePort()
	ing, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	args := []string{"--http", httpAddr, "--ingress-bind", "tcp://" + ing, "--egress-bind", "tcp://127.0.0.1:*",
		"--stamped-bind", "tcp://127.0.0.1:*", "--snapshot-bind", "", "--log-level", "warn", "--log-json", "--pprof"}
	name := bin
	if o.pin {
		args = append([]string{"-c", "0", bin}, args...)
		name = "taskset"
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	if o.gatewayProcs > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", o.gatewayProcs))
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	fmt.Printf("gateway: http://%s (profile: /debug/pprof/profile)\n", httpAddr)
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	g := &gateway{cmd: cmd, http: httpAddr, ingress: "tcp://" + ing, ctx: ctx, cancel: cancel}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := promscrape.Scrape(ctx, "http://"+httpAddr+"/metrics"); err == nil {
			return g, nil
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("gateway at %s unreachable after 15s", httpAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	g.cancel()
	g.cmd.Wait()
}

// procStats returns the gateway's CPU time and RSS from /proc.
func (g *gateway) procStats() (cpu time.Duration, rssBytes int64) {
	pid := g.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// for taskset, exec replaces the process image: the pid is the gateway's
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		cpu = time.Duration(ut+st) * (time.Second / 100) // USER_HZ
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if kb, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				v, _ := strconv.ParseInt(strings.Fields(kb)[0], 10, 64)
				rssBytes = v << 10
			}
		}
		f.Close()
	}
	return cpu, rssBytes
}

func (g *gateway) metric(name string, labels ...string) float64 {
	f, err := promscrape.Scrape(g.ctx, "http://"+g.http+"/metrics")
	if err != nil {
		return 0
	}
	v, _ := f.Value(name, labels...)
	return v
}

// sendTime finds the publisher's send time in an update line.
func sendTime(line []byte) (int64, bool) {
	i := bytes.Index(line, []byte(`"data":{"t":`))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(`"data":{"t":`):]
	j := bytes.IndexAny(rest, ",}")
	if j <= 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}
