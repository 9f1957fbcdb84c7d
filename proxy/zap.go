package proxy

import (
	"context"
	"errors"
	"fmt"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
)

// zapEndpoint is where libzmq asks for authentication (RFC 27).
const zapEndpoint = "inproc://zeromq.zap.01"

// zapDomain is the ZAP domain of the gateway's CURVE sockets.
const zapDomain = "mdgate"

// runZAP answers libzmq's authentication requests until ctx ends: a CURVE
// peer is let in when its public key is in allowed (Z85). NULL requests (our
// own sockets without CURVE) pass; they cannot reach a CURVE socket anyway.
// One goroutine, OS thread locked, owns the socket; ready gets nil once it
// is bound (before any CURVE socket binds), or the error that kept it from
// binding.
//
// If the socket fails later, the handler stops answering but keeps
// zapEndpoint bound until ctx ends: libzmq lets every CURVE peer in when no
// handler is bound at all (ZMQ_ZAP_ENFORCE_DOMAIN is off by default and
// pebbe/zmq4 cannot set it), whereas unanswered requests fail their
// handshakes.
func (p *Proxy) runZAP(ctx context.Context, allowed map[string]bool, ready chan<- error) {
	open := func() (*zmq.Socket, error) {
		sock, err := zmq.NewSocket(zmq.REP)
		if err != nil {
			return nil, fmt.Errorf("zap handler: %w", err)
		}
		if err := errors.Join(sock.SetLinger(0), sock.Bind(zapEndpoint)); err != nil {
			sock.Close()
			return nil, fmt.Errorf("zap handler: %w", err)
		}
		return sock, nil
	}
	err := zsock.Own(open, func(sock *zmq.Socket) error {
		ready <- nil
		err := zsock.Loop{Handle: func(sock *zmq.Socket, req [][]byte) error {
			if _, err := sock.SendMessage(p.zapAnswer(req, allowed)); err != nil {
				return fmt.Errorf("reply: %w", err)
			}
			return nil
		}}.Serve(ctx, sock)
		if err != nil {
			p.log.Error().Err(err).Msg("ZAP handler failed: every CURVE peer is refused from now on (their handshakes time out); restart the gateway")
			<-ctx.Done()
		}
		return nil
	})
	if err != nil {
		ready <- err
	}
}

// zapAnswer decides one request: [version, id, domain, address, identity,
// mechanism, credentials...] -> [version, id, status, text, user, metadata].
func (p *Proxy) zapAnswer(req [][]byte, allowed map[string]bool) [][]byte {
	if len(req) < 6 {
		return [][]byte{[]byte("1.0"), nil, []byte("500"), []byte("malformed ZAP request"), nil, nil}
	}
	reply := func(code, text, user string) [][]byte {
		return [][]byte{req[0], req[1], []byte(code), []byte(text), []byte(user), nil}
	}
	switch string(req[5]) {
	case "NULL":
		return reply("200", "OK", "")
	case "CURVE":
		if len(req) < 7 || len(req[6]) != 32 {
			p.m.auth[authDenied].Inc()
			return reply("400", "malformed CURVE credentials", "")
		}
		key := zmq.Z85encode(string(req[6]))
		if allowed[key] {
			p.m.auth[authAllowed].Inc()
			return reply("200", "OK", key)
		}
		p.m.auth[authDenied].Inc()
		if p.log.Warn().Enabled() && p.authLog.Allow() {
			p.log.Warn().Str("peer", string(req[3])).Str("key", key).Msg("CURVE peer refused: key not in the allowed set (further refusals this second not logged)")
		}
		return reply("400", "unknown key", "")
	}
	p.m.auth[authDenied].Inc()
	return reply("400", "mechanism not allowed", "")
}
