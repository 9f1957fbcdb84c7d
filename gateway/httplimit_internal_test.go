package gateway

import (
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// The counted connection keeps the TCP methods the bridge uses: its
// --ws-send-buffer is set through SetWriteBuffer on the hijacked connection.
func TestCountedConnKeepsTCPMethods(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(ln, 0, prometheus.NewRegistry(), zerolog.Nop())
	defer l.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sb, ok := c.(interface{ SetWriteBuffer(int) error })
	if !ok {
		t.Fatalf("accepted %T: no SetWriteBuffer, the bridge's send buffer would not be set", c)
	}
	if err := sb.SetWriteBuffer(32 << 10); err != nil {
		t.Fatalf("SetWriteBuffer: %v", err)
	}
	c.Close()
	c.Close() // a second Close gives nothing back twice
	if n := l.open.Load(); n != 0 {
		t.Fatalf("open connections after Close = %d, want 0", n)
	}
}
