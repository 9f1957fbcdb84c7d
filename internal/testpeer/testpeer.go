package testpeer

import (
	"bufio"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

//go:embed scripts/*.py
var scripts embed.FS

// Python is the interpreter that has Debian's python3-zmq. The python3 first
// on PATH may be another build without it.
const Python = "/usr/bin/python3"

var (
	checkOnce sync.Once
	checkErr  error
)

// Require skips (or, under CI=true, fails) the test when Debian's
// python3-zmq is missing.
func Require(t testing.TB) {
	t.Helper()
	RequireIntegration(t, "python3-zmq")
	checkOnce.Do(func() {
		out, err := exec.Command(Python, "-c", "import zmq").CombinedOutput()
		if err != nil {
			checkErr = &missingError{string(out)}
		}
	})
	if checkErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("real libzmq peer unavailable: %v", checkErr)
		}
		t.Skipf("real libzmq peer unavailable (run `make test`, which installs python3-zmq): %v", checkErr)
	}
}

type missingError struct{ out string }

func (e *missingError) Error() string {
	return Python + " cannot import zmq: apt-get install -y python3-zmq (" + e.out + ")"
}

// Event is one JSON line from a peer.
type Event struct {
	Event  string   `json:"event"`
	Count  int      `json:"count"`
	Frames []string `json:"frames"` // base64
}

// Bytes decodes the frames of a message event.
func (e Event) Bytes() [][]byte {
	out := make([][]byte, len(e.Frames))
	for i, f := range e.Frames {
		out[i], _ = base64.StdEncoding.DecodeString(f)
	}
	return out
}

// Strings decodes the frames as strings.
func (e Event) Strings() []string {
	var out []string
	for _, b := range e.Bytes() {
		out = append(out, string(b))
	}
	return out
}

// Proc is a running peer.
type Proc struct {
	Events <-chan Event // closed when the peer's stdout closes
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	done   chan struct{}
	err    error
}

// Start runs scripts/NAME.py with spec as its JSON argument. The process is
// killed and reaped when the test ends.
func Start(t testing.TB, name string, spec any) *Proc {
	t.Helper()
	Require(t)
	if _, err := scripts.ReadFile("scripts/" + name + ".py"); err != nil {
		t.Fatalf("testpeer: no script %s: %v", name, err)
	}
	// Every script beside it: they import what they share (peer.py).
	dir := t.TempDir()
	if err := os.CopyFS(dir, scripts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "scripts", name+".py")
	arg, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, Python, path, string(arg))
	cmd.Stderr = &testWriter{t: t, prefix: name + ": "}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testpeer: start %s: %v", name, err)
	}
	events := make(chan Event, 1<<16)
	p := &Proc{Events: events, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			var e Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events <- e
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// CloseStdin tells a holding peer to finish.
func (p *Proc) CloseStdin() { p.stdin.Close() }

// Wait waits for the peer to exit, at most d.
func (p *Proc) Wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("testpeer: peer still running after %v", d)
		return nil
	}
}

// Next returns the next event, failing the test after d.
func (p *Proc) Next(t testing.TB, d time.Duration) Event {
	t.Helper()
	select {
	case e, ok := <-p.Events:
		if !ok {
			t.Fatalf("testpeer: peer exited (%v) before the next event", p.err)
		}
		return e
	case <-time.After(d):
		t.Fatalf("testpeer: no event within %v", d)
	}
	return Event{}
}

// Until returns the message events (those without a name) until one with
// the given name, failing after d.
func (p *Proc) Until(t testing.TB, name string, d time.Duration) []Event {
	t.Helper()
	deadline := time.Now().Add(d)
	var got []Event
	for {
		e := p.Next(t, time.Until(deadline))
		if e.Event == name {
			return got
		}
		if e.Event == "" {
			got = append(got, e)
		}
	}
}

type testWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("%s%s", w.prefix, b)
	return len(b), nil
}

// Eventually polls cond until it holds, failing the test after d. It is the
// only way tests wait: on a condition, with a deadline.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// RequireIntegration skips t, naming the peer, unless the build has
// -tags integration (Integration): tests against real outside peers run in
// `make test`, and a bare `go test ./...` says what it skipped.
func RequireIntegration(t testing.TB, peer string) {
	t.Helper()
	if !Integration {
		t.Skipf("needs a real %s peer: run with -tags integration (make test does)", peer)
	}
}
