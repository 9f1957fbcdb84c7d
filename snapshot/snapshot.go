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
	ErrPassive        = "passive" // this gateway is a failover pair's standby: ask the active one (docs/ha.md)
)

// query is a parsed request.
type query struct {
	since      bool   // a SINCE; else a SNAP
	prefix     string // SNAP: the prefix; SINCE: the topic
	epoch, seq uint64 // SINCE: the update the client holds
}

// parseRequest checks a request's frames: [CmdSnap, prefix] or [CmdSince,
// topic, epoch, seq]. It returns the request, or the error code and text
// to answer with (and whether it was a SINCE, for the metrics).
func parseRequest(req [][]byte) (q query, code, text string) {
	cmd := ""
	if len(req) > 0 {
		cmd = string(req[0])
	}
	switch cmd {
	case CmdSnap:
		switch {
		case len(req) != 2:
			return q, ErrBadRequest, fmt.Sprintf("request has %d frames: send [%q, prefix]", len(req), CmdSnap)
		case len(req[1]) > MaxPrefix:
			return q, ErrPrefixTooLong, fmt.Sprintf("prefix of %d bytes: at most %d", len(req[1]), MaxPrefix)
		}
		q.prefix = string(req[1])
		return q, "", ""
	case CmdSince:
		q.since = true
		switch {
		case len(req) != 4:
			return q, ErrBadRequest, fmt.Sprintf("request has %d frames: send [%q, topic, epoch (8 bytes), seq (8 bytes)]", len(req), CmdSince)
		case len(req[1]) > MaxPrefix:
			return q, ErrTopicTooLong, fmt.Sprintf("topic of %d bytes: at most %d", len(req[1]), MaxPrefix)
		case len(req[2]) != 8 || len(req[3]) != 8:
			return q, ErrBadSeq, fmt.Sprintf("epoch of %d bytes and seq of %d: want 8 each, big-endian", len(req[2]), len(req[3]))
		}
		q.prefix = string(req[1])
		q.epoch, q.seq = binary.BigEndian.Uint64(req[2]), binary.BigEndian.Uint64(req[3])
		return q, "", ""
	}
	return q, ErrUnknownCommand, fmt.Sprintf("unknown command %q: send %s or %s", trim(cmd), CmdSnap, CmdSince)
}

func trim(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Result is a fetched snapshot, or the answer to a SINCE.
type Result struct {
	Epoch  uint64          // the serving gateway's epoch at END
	Values []*tick.Message // SNAP: one per topic, with the stamp it was cached with; SINCE: the updates in order

	// SINCE only: how Values follow the point asked from, and with Gap how
	// many updates of the same epoch are gone (0: not known).
	Status Status
	Missed uint64
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
			ended, replyErr = res.Take(f)
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

// Take adds one reply message (its frames after any envelope) to res: end
// is true at a good END. An ERR is returned as a *ServerError. For clients
// that read replies on their own socket; Fetch, Since and Request use it.
func (res *Result) Take(f [][]byte) (end bool, err error) {
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
		if (len(f) != 3 && len(f) != 5) || len(f[1]) != 8 || len(f[2]) != 8 {
			return false, errors.New("snapshot: malformed END")
		}
		if n := binary.BigEndian.Uint64(f[1]); n != uint64(len(res.Values)) {
			return false, fmt.Errorf("snapshot: END says %d values, got %d", n, len(res.Values))
		}
		res.Epoch = binary.BigEndian.Uint64(f[2])
		if len(f) == 5 { // a SINCE's: status, missed
			st, ok := parseStatus(f[3])
			if !ok || len(f[4]) != 8 {
				return false, fmt.Errorf("snapshot: malformed SINCE END (status %q)", trim(string(f[3])))
			}
			res.Status, res.Missed = st, binary.BigEndian.Uint64(f[4])
		}
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
