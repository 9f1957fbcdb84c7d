package attackpeer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/snapshot"
)

// Python is the interpreter that has Debian's python3-zmq (the python3
// first on PATH may be another build without it).
const Python = "/usr/bin/python3"

const xsubScript = `
import sys, zmq
endpoint, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = zmq.Context()
s = ctx.socket(zmq.XSUB)
s.setsockopt(zmq.SNDHWM, 0)
s.setsockopt(zmq.LINGER, 0)
s.connect(endpoint)
for i in range(n):
    p = prefix % i if "%" in prefix else prefix
    s.send(b"\x01" + p.encode())
print("sent", flush=True)
sys.stdin.read()
s.close()
ctx.term()
`

// XSub is a python3-zmq XSUB that has sent its subscribe frames and stays
// connected until it leaves.
type XSub struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	exited chan struct{} // closed once the process is reaped
	err    error         // cmd.Wait's, once exited is closed
	leave  sync.Once
}

// StartXSub runs a python3-zmq XSUB connected to endpoint that sends n
// subscribe frames (prefix formatted with the frame's index when it holds
// a %), and returns once it says it sent them; it fails when the peer says
// something else, exits, or is silent for within. Its stderr is the
// process's.
func StartXSub(endpoint string, n int, prefix string, within time.Duration) (*XSub, error) {
	cmd := exec.Command(Python, "-c", xsubScript, endpoint, strconv.Itoa(n), prefix)
	cmd.Stderr = os.Stderr
	stdout, err1 := cmd.StdoutPipe()
	stdin, err2 := cmd.StdinPipe()
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("python3-zmq XSUB: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("python3-zmq XSUB: %w", err)
	}
	x := &XSub{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case line <- sc.Text():
			default:
			}
		}
		x.err = cmd.Wait()
		close(x.exited)
	}()
	select {
	case l := <-line:
		if l == "sent" {
			return x, nil
		}
		x.Kill()
		return nil, fmt.Errorf("python3-zmq XSUB said %q, want sent", l)
	case <-x.exited:
		return nil, fmt.Errorf("python3-zmq XSUB exited before sending (is python3-zmq installed?): %v", x.err)
	case <-time.After(within):
		x.Kill()
		return nil, fmt.Errorf("python3-zmq XSUB: nothing sent within %v", within)
	}
}

// Leave closes the peer's stdin, so that it closes its socket and exits,
// and waits for it; it fails when the peer is still running after within.
func (x *XSub) Leave(within time.Duration) error {
	x.leave.Do(func() { x.stdin.Close() })
	select {
	case <-x.exited:
		return nil
	case <-time.After(within):
		return fmt.Errorf("python3-zmq XSUB still running %v after leaving", within)
	}
}

// Kill kills the peer and waits until it is reaped.
func (x *XSub) Kill() {
	x.cmd.Process.Kill()
	<-x.exited
}

// SUB opens a libzmq SUB with linger 0, receive timeout rcvtimeo and, when
// rcvhwm is not negative, receive high-water mark rcvhwm, subscribed to
// prefix and connected to endpoint. A libzmq socket belongs to one thread:
// the caller locks its goroutine to its OS thread first and closes the
// socket there.
func SUB(endpoint, prefix string, rcvhwm int, rcvtimeo time.Duration) (*zmq.Socket, error) {
	s, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		return nil, err
	}
	err = errors.Join(s.SetLinger(0), s.SetRcvtimeo(rcvtimeo))
	if rcvhwm >= 0 {
		err = errors.Join(err, s.SetRcvhwm(rcvhwm))
	}
	if err = errors.Join(err, s.SetSubscribe(prefix), s.Connect(endpoint)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Feed is a publisher into a gateway's ingress that returns once the
// gateway's subscription reached it (an XPUB: nothing sent is lost to the
// slow-joiner window), or fails after within. Unbounded queue, no linger;
// as with SUB, the caller's thread owns it.
func Feed(ingress string, within time.Duration) (*zmq.Socket, error) {
	s, err := zmq.NewSocket(zmq.XPUB)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(s.SetLinger(0), s.SetSndhwm(0), s.SetRcvtimeo(within), s.Connect(ingress)); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := s.RecvBytes(0); err != nil {
		s.Close()
		return nil, fmt.Errorf("no subscription from the gateway's ingress within %v: %w", within, err)
	}
	return s, nil
}

// Read runs a SUB (opened as SUB opens it) on the calling goroutine, locked
// to its OS thread for the socket's life: it says on ready whether the SUB
// is connected, then hands each message it receives to fn until stop is
// closed (rcvtimeo is how often it looks at stop).
func Read(endpoint, prefix string, rcvhwm int, rcvtimeo time.Duration, ready chan<- error, stop <-chan struct{}, fn func(frames [][]byte)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, err := SUB(endpoint, prefix, rcvhwm, rcvtimeo)
	if err != nil {
		ready <- err
		return
	}
	defer s.Close()
	ready <- nil
	for {
		select {
		case <-stop:
			return
		default:
		}
		if f, err := s.RecvMessageBytes(0); err == nil {
			fn(f)
		} // else the timeout: look at stop again
	}
}

// SnapshotFlood runs peers DEALERs against a snapshot endpoint on the
// calling goroutine, locked to its OS thread: linger 0, RCVHWM 1 (the
// attackers' own side holds little, so what grows is what the server holds
// for them) and, when rcvbuf is positive, that SO_RCVBUF; each sends
// perPeer requests for every topic and never reads. It says on sent when
// all are sent (or the error), holds the sockets until stop is closed, and
// closes them before it returns.
func SnapshotFlood(endpoint string, peers, perPeer, rcvbuf int, sent chan<- error, stop <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var socks []*zmq.Socket
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	for range peers {
		s, err := zmq.NewSocket(zmq.DEALER)
		if err != nil {
			sent <- err
			return
		}
		socks = append(socks, s)
		err = errors.Join(s.SetLinger(0), s.SetRcvhwm(1))
		if rcvbuf > 0 {
			err = errors.Join(err, s.SetRcvbuf(rcvbuf))
		}
		if err := errors.Join(err, s.Connect(endpoint)); err != nil {
			sent <- err
			return
		}
		for range perPeer {
			if _, err := s.SendMessage(snapshot.CmdSnap, ""); err != nil {
				sent <- err
				return
			}
		}
	}
	sent <- nil
	<-stop
}
