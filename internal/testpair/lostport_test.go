package testpair

import (
	"net"
	"strings"
	"testing"
)

// A node whose endpoint is taken exits, and lostPort says why; Kill then
// does not fail on the process that has already ended.
func TestLostPort(t *testing.T) {
	bin := Build(t)
	n := NewNode(t, bin, false)
	ln, err := net.Listen("tcp", strings.TrimPrefix(n.State, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n.Start(t, n.PairArgs("primary", "tcp://127.0.0.1:1", "tcp://127.0.0.1:1", t.TempDir()))
	<-n.exited
	if !n.lostPort() {
		t.Fatalf("lostPort() = false for a gateway whose state endpoint was taken; log:\n%s", n.log.String())
	}
	n.Kill(t)
}
