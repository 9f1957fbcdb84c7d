package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdgate/mdgate/internal/promscrape"
)

// gateway is the gateway process under test.
type gateway struct {
	cmd           *exec.Cmd
	http, ingress string
	egress        string // raw XPUB
	ctx           context.Context
	cancel        context.CancelFunc
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// attachGateway uses a gateway that is already running (no CPU or RSS
// readings: its process is not ours).
func attachGateway(o options) (*gateway, error) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{http: o.attachHTTP, ingress: o.attachIngress, egress: o.attachEgress, ctx: ctx, cancel: cancel}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if _, err := promscrape.Scrape(sctx, "http://"+g.http+"/metrics"); err != nil {
		cancel()
		return nil, fmt.Errorf("gateway at %s unreachable (is it running, and is -http its --http address?): %w", g.http, err)
	}
	for _, ep := range []string{g.ingress, g.egress} {
		host := strings.TrimPrefix(ep, "tcp://")
		if !strings.HasPrefix(host, "127.") && !strings.HasPrefix(host, "localhost:") {
			cancel()
			return nil, fmt.Errorf("%s: the load test targets loopback addresses only", ep)
		}
	}
	return g, nil
}

func startGateway(o options) (*gateway, error) {
	if o.attachHTTP != "" {
		return attachGateway(o)
	}
	bin, err := filepath.Abs(o.gatewayBin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no gateway binary at %s: run `make build` first (%w)", bin, err)
	}
	httpAddr, err1 := freePort()
	ing, err2 := freePort()
	eg, err3 := freePort()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	args := []string{"--http", httpAddr, "--ingress-bind", "tcp://" + ing, "--egress-bind", "tcp://" + eg, "--egress-hwm", "0", "--ingress-hwm", "0",
		"--stamped-bind", "tcp://127.0.0.1:*", "--snapshot-bind", "", "--log-level", "warn", "--log-json", "--pprof"}
	args = append(args, strings.Fields(o.gatewayArgs)...)
	var wrap []string
	if o.pin {
		wrap = []string{"taskset", "-c", "0"}
	}
	return launchGateway(o, bin, args, wrap, httpAddr, "tcp://"+ing, "tcp://"+eg)
}

// launchGateway starts bin with args, under wrap (a command that execs its
// arguments in the same process, such as taskset or prlimit, so the pid is
// the gateway's), and waits until its /metrics answers.
func launchGateway(o options, bin string, args, wrap []string, httpAddr, ingress, egress string) (*gateway, error) {
	name := bin
	if len(wrap) > 0 {
		name, args = wrap[0], append(append(wrap[1:len(wrap):len(wrap)], bin), args...)
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
	g := &gateway{cmd: cmd, http: httpAddr, ingress: ingress, egress: egress, ctx: ctx, cancel: cancel}
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
	if g.cmd != nil {
		g.cmd.Wait()
	}
}

// procStats returns the gateway's CPU time and RSS from /proc.
func (g *gateway) procStats() (cpu time.Duration, rssBytes int64) {
	if g.cmd == nil {
		return 0, 0
	}
	return pidStats(g.cmd.Process.Pid)
}

// pidStats returns a process's CPU time (utime + stime) and RSS from /proc.
func pidStats(pid int) (cpu time.Duration, rssBytes int64) {
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
