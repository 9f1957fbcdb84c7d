package zsock_test

import (
	"context"
	"fmt"
	"runtime"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
)

// A subscriber's goroutine owns its SUB and handles each message until the
// publisher says stop (or its context ends).
func ExampleLoop() {
	runtime.LockOSThread() // this goroutine owns pub
	defer runtime.UnlockOSThread()
	pub, _ := zmq.NewSocket(zmq.XPUB)
	defer pub.Close()
	pub.SetLinger(0)
	pub.Bind("inproc://zsock-example")

	done := make(chan error, 1)
	go func() {
		done <- zsock.Loop{Handle: func(_ *zmq.Socket, msg [][]byte) error {
			if string(msg[0]) == "md.ctl.stop" {
				return zsock.Stop
			}
			fmt.Printf("%s %s\n", msg[0], msg[1])
			return nil
		}}.Run(context.Background(), func() (*zmq.Socket, error) {
			return zsock.Sub(zsock.SubConfig{Connect: []string{"inproc://zsock-example"}, Prefixes: []string{"md.eq.", "md.ctl."}})
		})
	}()
	pub.RecvBytes(0) // both subscriptions have arrived
	pub.RecvBytes(0)
	pub.SendMessage("md.eq.AAPL", "190.1")
	pub.SendMessage("md.fx.EURUSD", "1.0841") // not subscribed
	pub.SendMessage("md.eq.MSFT", "410.5")
	pub.SendMessage("md.ctl.stop", "")
	fmt.Println("Run:", <-done)
	// Output:
	// md.eq.AAPL 190.1
	// md.eq.MSFT 410.5
	// Run: <nil>
}
