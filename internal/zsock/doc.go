// Package zsock is how mdgate owns a libzmq socket outside the proxy's own
// loop: one goroutine, its OS thread locked, opens the socket, receives on
// it until its context ends and closes it on every way out.
//
// libzmq sockets are not thread-safe. Own locks the calling goroutine to its
// OS thread for the socket's whole life; the socket must not be handed to
// another goroutine. Loop receives with a timeout (Loop.Wait) so that a
// cancelled context is seen within that time, and tells the errors a
// receive may simply retry (Temporary: EAGAIN, EINTR) from those that end
// it. Sub opens a SUB socket with the options every subscriber of the
// gateway's streams sets. Waiter lets an owner that polls its sockets
// without blocking wait for them in Go's netpoller instead of inside
// zmq_poll, so it holds no scheduler slot (P) while idle: the proxy's loop
// uses it.
package zsock
