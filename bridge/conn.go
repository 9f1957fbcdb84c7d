package bridge

import (
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/clock"
)

// Close codes of the gateway's own (RFC 6455 leaves 4000-4999 to
// applications); the standard ones are 1001 (shutdown), 1007 (invalid
// UTF-8), 1008 (abuse, token expired) and 1009 (frame over the read limit).
const (
	CloseSlowConsumer = 4008 // cut off as too slow
	CloseNoPong       = 4009 // nothing received, not even a pong, for --ws-pong-wait
)

// maxFrame is where a write batch starts a new WebSocket frame.
const maxFrame = 64 << 10

// wsConn is a client's connection as the fan-out writer sees it. Its Write
// methods are called only by the client's writer goroutine of the moment
// (package blackbox starts one on demand, one at a time); "owned by the
// writer" below means by whichever that is. Abort may come from any
// goroutine.
//
// WriteBatch frames the batch itself (server frames are unmasked and the
// bridge does not compress: a header and the bytes) and writes it to the
// TCP connection in one Write, probe and heartbeat included: one system
// call per wake-up where gorilla's writer and WriteControl took one per
// message and one per ping. gorilla still writes the rest (the close, and
// from the reader the pong to a client's ping and the echo of its close),
// each frame in one Write too, and a net.Conn's Writes do not interleave, so
// every frame arrives whole.
type wsConn struct {
	ws    *websocket.Conn
	grace time.Duration // Config.CloseGrace
	clk   clock.Clock   // Config.Clock
	conn  net.Conn      // owned by the writer: ws's connection, looked up once
	// deadline is the write deadline the writer last set (owned by the
	// writer); resetDeadline says someone else has set one since (the
	// reader's pong to a client's ping), so the next write sets its own.
	deadline      time.Time
	resetDeadline atomic.Bool
	// drainBy is when the close's grace ends (Unix ns; 0: no close written):
	// the session's drain keeps to it rather than granting a second grace.
	drainBy atomic.Int64
}

// deadlineSlack is how much earlier than asked a write's deadline may be (a
// variable for tests).
var deadlineSlack = time.Second

// writeBufs are the frame buffers of writers between writes, so an idle
// connection holds none (the bridge's RSS per connection).
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled is the largest frame buffer kept for reuse.
const maxPooled = 256 << 10

// WriteBatch writes the items as text frames of newline-separated JSON
// messages, up to about 64 KiB a frame, then the heartbeat (a ping, which
// browsers answer, and a message pages can see) and the probe (a ping whose
// payload is "p" and the probe's id: the client answers it with a pong
// carrying the same payload once it has read what came before), all in one
// write under one deadline.
func (c *wsConn) WriteBatch(deadline time.Time, b *blackbox.Batch) error {
	bp := writeBufs.Get().(*[]byte)
	buf := appendFrames((*bp)[:0], b.Items)
	if b.Heartbeat {
		if b.Probe == 0 {
			buf = appendFrameHeader(buf, websocket.PingMessage, 0)
		}
		var ts [32]byte
		msg := strconv.AppendInt(append(ts[:0], `{"op":"heartbeat","ts":`...), c.clk.Now().UnixMicro(), 10)
		msg = append(msg, '}')
		buf = append(appendFrameHeader(buf, websocket.TextMessage, len(msg)), msg...)
	}
	if b.Probe != 0 {
		var p [24]byte
		payload := strconv.AppendUint(append(p[:0], 'p'), b.Probe, 10)
		buf = append(appendFrameHeader(buf, websocket.PingMessage, len(payload)), payload...)
	}
	if c.conn == nil {
		c.conn = c.ws.UnderlyingConn()
	}
	var err error
	if c.resetDeadline.Swap(false) || deadline.Sub(c.deadline) > deadlineSlack {
		// Setting a deadline costs a runtime timer update (4% of the
		// gateway's CPU when done per write): a write may run under one
		// set up to deadlineSlack earlier.
		err = c.conn.SetWriteDeadline(deadline)
		c.deadline = deadline
	}
	if err == nil {
		_, err = c.conn.Write(buf)
	}
	if cap(buf) <= maxPooled {
		*bp = buf[:0]
		writeBufs.Put(bp)
	}
	return err
}

// appendFrames appends items as text frames of newline-separated messages,
// a frame ending once it holds maxFrame bytes or more.
func appendFrames(buf []byte, items []blackbox.Item) []byte {
	for len(items) > 0 {
		n, size := 0, 0 // items in the frame, payload bytes
		for n < len(items) && (n == 0 || size < maxFrame) {
			if n > 0 {
				size++ // the newline
			}
			size += len(items[n].Data) + skippedLen(items[n])
			n++
		}
		buf = appendFrameHeader(buf, websocket.TextMessage, size)
		for i, it := range items[:n] {
			if i > 0 {
				buf = append(buf, '\n')
			}
			if skippedLen(it) > 0 {
				// Conflated: this client only is told how many it skipped.
				buf = append(buf, it.Data[:len(it.Data)-1]...)
				buf = strconv.AppendUint(append(buf, `,"skipped":`...), uint64(it.Skipped), 10)
				buf = append(buf, '}')
			} else {
				buf = append(buf, it.Data...)
			}
		}
		items = items[n:]
	}
	return buf
}

// skippedLen is how many bytes telling it's skipped count adds to its data.
func skippedLen(it blackbox.Item) int {
	if it.Skipped == 0 || len(it.Data) == 0 || it.Data[len(it.Data)-1] != '}' {
		return 0
	}
	n := len(`,"skipped":`)
	for v := it.Skipped; ; v /= 10 {
		n++
		if v < 10 {
			return n
		}
	}
}

// appendFrameHeader appends the header of a final, unmasked server frame of
// the given opcode and payload length (RFC 6455 5.2).
func appendFrameHeader(buf []byte, opcode int, n int) []byte {
	buf = append(buf, 0x80|byte(opcode))
	switch {
	case n < 126:
		return append(buf, byte(n))
	case n <= 0xffff:
		return append(buf, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(buf, 127), uint64(n))
	}
}

// probeID reads a probe's answer; false for other pongs (heartbeats).
func probeID(payload string) (uint64, bool) {
	if len(payload) < 2 || payload[0] != 'p' {
		return 0, false
	}
	id, err := strconv.ParseUint(payload[1:], 10, 64)
	return id, err == nil
}

// WriteClose sends the close frame (4008 "slow consumer: ..." for a client
// cut off, the code given to CloseWith, or 1001 when the gateway closes the
// connection), then half-closes the TCP connection and gives the reader
// CloseGrace to see the client's answer; the session closes it after.
func (c *wsConn) WriteClose(deadline time.Time, why blackbox.Close) error {
	code, text := websocket.CloseGoingAway, why.Detail
	switch {
	case why.CutOff():
		code, text = CloseSlowConsumer, "slow consumer: "+why.Detail
	case why.Code != 0:
		code = why.Code
	case text == "":
		text = "gateway closing the connection"
	}
	if len(text) > 120 { // a close frame's payload is at most 125 bytes
		text = text[:120]
	}
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), deadline)
	if errors.Is(err, websocket.ErrCloseSent) {
		// gorilla wrote a close itself (1009 for a frame header over the
		// read limit, or the echo of the client's close): that one stands,
		// and the half-close and drain must still follow, or the unread
		// input resets the connection before the client reads the close.
		err = nil
	}
	conn := c.ws.UnderlyingConn()
	if cw, ok := conn.(interface{ CloseWrite() error }); ok && err == nil {
		cw.CloseWrite()
	}
	until := c.clk.Now().Add(c.grace)
	c.drainBy.Store(until.UnixNano())
	conn.SetReadDeadline(until)
	return err
}

// Abort closes the TCP connection, failing a blocked write.
func (c *wsConn) Abort() { c.ws.Close() }
