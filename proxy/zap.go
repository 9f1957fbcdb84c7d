package proxy

import (
	"context"
	"fmt"
	"runtime"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// zapEndpoint is where libzmq asks for authentication (RFC 27).
const zapEndpoint = "inproc://zeromq.zap.01"

// zapDomain is the ZAP domain of the gateway's CURVE sockets.
const zapDomain = "mdgate"

// runZAP answers libzmq's authentication requests until ctx ends: a CURVE
// peer is let in when its public key is in allowed (Z85). NULL requests (our
// own sockets without CURVE) pass; they cannot reach a CURVE socket anyway.
// One goroutine, OS thread locked, owns the socket; ready is closed once it
// is bound (before any CURVE socket binds).
func (p *Proxy) runZAP(ctx context.Context, allowed map[string]bool, ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sock, err := zmq.NewSocket(zmq.REP)
	if err == nil {
		err = sock.Bind(zapEndpoint)
	}
	if err != nil {
		ready <- fmt.Errorf("zap handler: %w", err)
		return
	}
	defer sock.Close()
	sock.SetLinger(0)
	sock.SetRcvtimeo(50 * time.Millisecond)
	ready <- nil
	for ctx.Err() == nil {
		req, err := sock.RecvMessageBytes(0)
		if err != nil {
			continue // the timeout: look at ctx again
		}
		sock.SendMessage(p.zapAnswer(req, allowed))
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
