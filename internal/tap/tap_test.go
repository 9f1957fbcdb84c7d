package tap_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/tap"
	"github.com/mdgate/mdgate/tick"
)

func TestFormat(t *testing.T) {
	now := time.Unix(100, 0)
	ingress := now.Add(-250 * time.Microsecond).UnixNano()
	stamp := tick.AppendStamp(nil, tick.Stamp{Epoch: 0xab, Seq: 7, Ingress: ingress})
	flagged := func(f uint8) []byte {
		return tick.AppendStamp(nil, tick.Stamp{Epoch: 0xab, Seq: 7, Ingress: ingress, Flags: f})
	}
	tests := []struct {
		frames [][]byte
		want   string
	}{
		{[][]byte{[]byte("msg"), stamp, []byte("md.eq.AAPL"), []byte(`{"px":1}`)},
			`msg   md.eq.AAPL seq=7 epoch=00000000000000ab age=250µs frames=2 | {"px":1}`},
		{[][]byte{[]byte("msg"), stamp, []byte("bin"), {0, 1, 0xff}},
			`msg   bin seq=7 epoch=00000000000000ab age=250µs frames=2 | 0x0001ff`},
		{[][]byte{[]byte("msg"), flagged(tick.FlagReplay), []byte("t"), []byte("1")},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=2 flags=replay | 1`},
		{[][]byte{[]byte("msg"), flagged(tick.FlagReplay | tick.FlagStale), []byte("t"), []byte("1")},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=2 flags=replay,stale | 1`},
		{[][]byte{[]byte("msg"), flagged(tick.FlagDelete), []byte("t"), {}},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=2 flags=delete | `},
		{[][]byte{[]byte("msg"), flagged(tick.FlagReplay | tick.FlagStale | tick.FlagDelete | 0x80), []byte("t")},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=1 flags=replay,stale,delete,0x80`},
		{[][]byte{[]byte("sub"), []byte("raw"), []byte("md.")}, `sub   egress=raw prefix="md."`},
		{[][]byte{[]byte("unsub"), []byte("stamped"), {}}, `unsub egress=stamped prefix=""`},
		{[][]byte{[]byte("msg"), []byte("nostamp"), []byte("t")}, `???  capture message without a stamp`},
		{[][]byte{[]byte("x")}, `???  1 frame(s): not a capture message`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tap.Format(tt.frames, now); got != tt.want {
				t.Errorf("Format(%q) = %q, want %q", tt.frames, got, tt.want)
			}
		})
	}
}

func ExampleFormat() {
	now := time.Unix(0, 2_000_000)
	stamp := tick.AppendStamp(nil, tick.Stamp{Epoch: 1, Seq: 42, Ingress: 1_000_000})
	fmt.Println(tap.Format([][]byte{[]byte("msg"), stamp, []byte("md.fx.EURUSD"), []byte("1.0841")}, now))
	// Output: msg   md.fx.EURUSD seq=42 epoch=0000000000000001 age=1ms frames=2 | 1.0841
}

// Run against a libzmq PUB standing in for --capture-bind: the lines of the
// messages under the prefix reach the writer, and Run ends with its context.
func TestRunPrintsCapture(t *testing.T) {
	runtime.LockOSThread() // this goroutine owns pub
	defer runtime.UnlockOSThread()
	const wait = 10 * time.Second
	pub, err := zmq.NewSocket(zmq.XPUB)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := errors.Join(pub.SetLinger(0), pub.SetRcvtimeo(wait), pub.Bind("tcp://127.0.0.1:*")); err != nil {
		t.Fatal(err)
	}
	ep, _ := pub.GetLastEndpoint()

	pr, pw := io.Pipe()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tap.Run(ctx, ep, "md.eq.", pw); pw.Close() }()

	if _, err := pub.RecvBytes(0); err != nil {
		t.Fatalf("no subscription within %v: %v", wait, err)
	}
	stamp := tick.AppendStamp(nil, tick.Stamp{Epoch: 1, Seq: 3, Ingress: time.Now().UnixNano()})
	pub.SendMessage("msg", stamp, "md.fx.EURUSD", "1.0841")
	pub.SendMessage("sub", "raw", "md.fx.")
	pub.SendMessage("msg", stamp, "md.eq.AAPL", "190.1")
	pub.SendMessage("sub", "stamped", "md.eq.")
	for _, want := range []string{"msg   md.eq.AAPL seq=3 epoch=0000000000000001 age=", `sub   egress=stamped prefix="md.eq."`} {
		select {
		case got := <-lines:
			if !strings.HasPrefix(got, want) {
				t.Errorf("Run wrote %q, want a line starting %q", got, want)
			}
		case <-time.After(wait):
			t.Fatalf("no line %q within %v", want, wait)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil once ctx is done", err)
		}
	case <-time.After(wait):
		t.Fatalf("Run still running %v after ctx was cancelled", wait)
	}
	if extra, ok := <-lines; ok {
		t.Errorf("Run wrote %q, want nothing more", extra)
	}
}

func TestRunBadEndpoint(t *testing.T) {
	err := tap.Run(context.Background(), "nosuch://x", "", io.Discard)
	if want := "tap: connect nosuch://x: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf(`Run("nosuch://x") = %v, want an error starting %q`, err, want)
	}
}
