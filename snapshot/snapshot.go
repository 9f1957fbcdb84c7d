package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
	"github.com/mdgate/mdgate/tick"
)

// Frame words of the protocol.
const (
	CmdSnap = "SNAP"
	RepVal  = "VAL"
	RepEnd  = "END"
	RepErr  = "ERR"
)

// MaxPrefix is the longest prefix a request may carry.
const MaxPrefix = 1024

// Error codes of ERR replies.
const (
	ErrUnknownCommand = "unknown_command"
	ErrBadRequest     = "bad_request"
	ErrPrefixTooLong  = "prefix_too_long"
	ErrBusy           = "busy"    // too many requests in progress, in all or from this peer
	ErrEvicted        = "evicted" // a waiting request dropped to make room for another requester's first
	ErrStalled        = "stalled" // nothing could be sent for the stall timeout: its requester was not reading
)

// parseRequest checks a request's frames: [CmdSnap, prefix]. It returns the
// prefix, or the error code and text to answer with.
func parseRequest(req [][]byte) (prefix, code, text string) {
	switch {
	case len(req) == 0 || string(req[0]) != CmdSnap:
		cmd := ""
		if len(req) > 0 {
			cmd = string(req[0])
		}
		return "", ErrUnknownCommand, fmt.Sprintf("unknown command %q: send [%q, prefix]", trim(cmd), CmdSnap)
	case len(req) != 2:
		return "", ErrBadRequest, fmt.Sprintf("request has %d frames: send [%q, prefix]", len(req), CmdSnap)
	case len(req[1]) > MaxPrefix:
		return "", ErrPrefixTooLong, fmt.Sprintf("prefix of %d bytes: at most %d", len(req[1]), MaxPrefix)
	}
	return string(req[1]), "", ""
}

func trim(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Result is a fetched snapshot.
type Result struct {
	Epoch  uint64          // the serving gateway's epoch at END
	Values []*tick.Message // one per topic, with the stamp it was cached with
}

// ServerError is an ERR reply.
type ServerError struct{ Code, Text string }

func (e *ServerError) Error() string { return "snapshot server: " + e.Code + ": " + e.Text }

// Fetch asks the server at endpoint for every value under prefix.
func Fetch(ctx context.Context, endpoint, prefix string) (*Result, error) {
	return Request(ctx, endpoint, [][]byte{[]byte(CmdSnap), []byte(prefix)})
}

// Request sends raw request frames and reads the answer (Fetch's engine;
// exported for tests of bad requests).
func Request(ctx context.Context, endpoint string, req [][]byte) (*Result, error) {
	open := func() (*zmq.Socket, error) {
		sock, err := zmq.NewSocket(zmq.DEALER)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		if err := errors.Join(sock.SetLinger(0), sock.SetRcvhwm(0)); err != nil {
			sock.Close()
			return nil, fmt.Errorf("snapshot options: %w", err)
		}
		if err := sock.Connect(endpoint); err != nil {
			sock.Close()
			return nil, fmt.Errorf("snapshot connect %s: %w", endpoint, err)
		}
		return sock, nil
	}
	parts := make([]any, len(req))
	for i, f := range req {
		parts[i] = f
	}
	res, ended := &Result{}, false
	var replyErr error // a bad or ERR reply, returned as it is
	err := zsock.Own(open, func(sock *zmq.Socket) error {
		if _, err := sock.SendMessage(parts...); err != nil {
			return fmt.Errorf("snapshot request: %w", err)
		}
		err := zsock.Loop{Handle: func(_ *zmq.Socket, f [][]byte) error {
			ended, replyErr = res.take(f)
			if ended {
				return zsock.Stop
			}
			return replyErr
		}}.Serve(ctx, sock)
		if err != nil && err != replyErr {
			return fmt.Errorf("snapshot: %w", err)
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case !ended:
		return nil, fmt.Errorf("snapshot: %w", ctx.Err())
	}
	return res, nil
}

// take adds one reply to res: end is true at a good END.
func (res *Result) take(f [][]byte) (end bool, err error) {
	switch string(f[0]) {
	case RepVal:
		if len(f) < 3 {
			return false, errors.New("snapshot: short VAL")
		}
		st, err := tick.ParseStamp(f[1])
		if err != nil {
			return false, fmt.Errorf("snapshot VAL: %w", err)
		}
		res.Values = append(res.Values, &tick.Message{Topic: string(f[2]), Frames: f[2:], Stamp: st})
		return false, nil
	case RepEnd:
		if len(f) != 3 || len(f[1]) != 8 || len(f[2]) != 8 {
			return false, errors.New("snapshot: malformed END")
		}
		if n := binary.BigEndian.Uint64(f[1]); n != uint64(len(res.Values)) {
			return false, fmt.Errorf("snapshot: END says %d values, got %d", n, len(res.Values))
		}
		res.Epoch = binary.BigEndian.Uint64(f[2])
		return true, nil
	case RepErr:
		e := &ServerError{}
		if len(f) > 1 {
			e.Code = string(f[1])
		}
		if len(f) > 2 {
			e.Text = strings.Clone(string(f[2]))
		}
		return false, e
	}
	return false, fmt.Errorf("snapshot: unexpected reply %q", trim(string(f[0])))
}
