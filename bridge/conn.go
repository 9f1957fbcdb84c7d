package bridge

import (
	"errors"
	"strconv"
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

var newline = []byte{'\n'} // shared: a literal here would allocate per message

// maxFrame is where a write batch starts a new WebSocket frame.
const maxFrame = 64 << 10

// wsConn is a client's connection as the fan-out writer sees it. Its Write
// methods are called only by the client's writer goroutine.
type wsConn struct {
	ws    *websocket.Conn
	grace time.Duration // Config.CloseGrace
	clk   clock.Clock   // Config.Clock
	buf   []byte        // owned by the writer: the "skipped" suffix
	probe []byte        // owned by the writer: a probe's payload
	// drainBy is when the close's grace ends (Unix ns; 0: no close written):
	// the session's drain keeps to it rather than granting a second grace.
	drainBy atomic.Int64
}

// WriteBatch writes items as text frames of newline-separated JSON messages,
// up to about 64 KiB a frame, under one deadline.
func (c *wsConn) WriteBatch(deadline time.Time, items []blackbox.Item) error {
	c.ws.SetWriteDeadline(deadline)
	for len(items) > 0 {
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		n := 0
		for i, it := range items {
			if i > 0 {
				if n >= maxFrame {
					break
				}
				w.Write(newline)
			}
			if it.Skipped > 0 && len(it.Data) > 0 && it.Data[len(it.Data)-1] == '}' {
				// Conflated: this client only is told how many it skipped.
				w.Write(it.Data[:len(it.Data)-1])
				c.buf = append(c.buf[:0], `,"skipped":`...)
				c.buf = strconv.AppendUint(c.buf, uint64(it.Skipped), 10)
				c.buf = append(c.buf, '}')
				w.Write(c.buf)
			} else {
				w.Write(it.Data)
			}
			n += len(it.Data) + 1
			items = items[1:]
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

// WriteProbe sends a ping whose payload is "p" and the probe's id: the
// client answers it (a pong with the same payload) once it has read what
// came before, which session's pong handler reports to the client.
func (c *wsConn) WriteProbe(deadline time.Time, id uint64) error {
	c.probe = strconv.AppendUint(append(c.probe[:0], 'p'), id, 10)
	return c.ws.WriteControl(websocket.PingMessage, c.probe, deadline)
}

// probeID reads a probe's answer; false for other pongs (heartbeats).
func probeID(payload string) (uint64, bool) {
	if len(payload) < 2 || payload[0] != 'p' {
		return 0, false
	}
	id, err := strconv.ParseUint(payload[1:], 10, 64)
	return id, err == nil
}

// WriteHeartbeat sends a ping (browsers answer it, which keeps the read
// deadline moving) and a heartbeat message pages can see.
func (c *wsConn) WriteHeartbeat(deadline time.Time) error {
	if err := c.ws.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
		return err
	}
	c.ws.SetWriteDeadline(deadline)
	c.buf = append(c.buf[:0], `{"op":"heartbeat","ts":`...)
	c.buf = strconv.AppendInt(c.buf, c.clk.Now().UnixMicro(), 10)
	c.buf = append(c.buf, '}')
	return c.ws.WriteMessage(websocket.TextMessage, c.buf)
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
