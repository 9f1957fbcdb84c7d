package bridge

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"syscall"
)

// What an idle connection costs.
//
// A connection's reader goroutine spends its life parked, waiting for the
// client's next frame. Parked inside gorilla's ReadMessage it sits about 15
// frames deep (frame parser, bufio, net.Conn), which keeps its stack at 8
// KiB: the runtime halves a parked goroutine's stack only when it uses under
// a quarter of it. So when gorilla holds no unread bytes, the reader first
// waits for the socket to become readable on a shallow stack (waitReadable),
// and its stack is halved at the next collections, to 4 KiB (measured,
// loadtest's idle phase: goroutine stacks 12.3 KB a connection before, 8.3
// KB after, when each connection still had a parked writer too; now an
// idle connection's writer is retired by package blackbox, and the reader
// is its only goroutine). To see what gorilla holds, the bridge hands it a
// readBufferSize bufio.Reader of its own at the hijack (hijacker), which
// gorilla reuses as the connection's reader (Upgrader.ReadBufferSize 0).
// TLS connections, those without a file descriptor, and a client that sent
// bytes before the handshake ended (net/http's reader kept) wait inside
// gorilla as before.

// readBufferSize is a connection's read buffer, kept for its life: client
// messages are small (a larger one is read through it in pieces).
const readBufferSize = 512

// hijacker gives gorilla's Upgrade a readBufferSize reader of the bridge's
// own in place of net/http's 4 KiB one.
type hijacker struct {
	http.ResponseWriter
	br *bufio.Reader // set by Hijack
}

// Hijack takes the connection over from net/http. A client that sent bytes
// before the handshake ended keeps net/http's reader: gorilla refuses it.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("bridge: the response does not support hijacking")
	}
	conn, brw, err := hj.Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return conn, brw, err
	}
	h.br = bufio.NewReaderSize(conn, readBufferSize)
	return conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// rawConn returns conn's file descriptor access for waitReadable; nil for a
// connection that buffers on its own (TLS) or has no descriptor.
func rawConn(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitReadable parks until rc has bytes to read, has ended or failed, or its
// read deadline passes (the error then). peek is a byte of the caller's: a
// MSG_PEEK read leaves the byte in the socket for the reader.
func waitReadable(rc syscall.RawConn, peek []byte) error {
	return rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), peek, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing yet, wait for the poller (EINTR: look again).
		// Otherwise bytes, the end or an error: the read that follows sees it.
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}
