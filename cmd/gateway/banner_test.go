package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The first line once the gateway is ready says where to point a browser
// and a ZeroMQ subscriber, with the ports actually bound.
func TestReadyLineNamesEndpoints(t *testing.T) {
	httpAddr := freeAddr(t)
	cmd := exec.Command(binary, "--log-json", "--http", httpAddr,
		"--ingress-bind", "tcp://127.0.0.1:*", "--egress-bind", "tcp://*:0",
		"--stamped-bind", "tcp://127.0.0.1:*", "--snapshot-bind", "tcp://127.0.0.1:*")
	cmd.Env = os.Environ()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && strings.HasPrefix(l["message"].(string), "open ") {
				found <- l
				return
			}
		}
		close(found)
	}()
	var l map[string]any
	select {
	case l = <-found:
	case <-time.After(10 * time.Second):
	}
	if l == nil {
		t.Fatal("no JSON log line starting with \"open \" within 10s")
	}
	msg := l["message"].(string)
	egress := l["egress"].([]any)[0].(string)   // tcp://0.0.0.0:PORT
	stamped := l["stamped"].([]any)[0].(string) // tcp://127.0.0.1:PORT
	_, port, _ := strings.Cut(strings.TrimPrefix(egress, "tcp://"), ":")
	for _, want := range []string{
		"open http://" + httpAddr + "/ (dashboard), /ops",
		"SUB tcp://localhost:" + port + " (raw)",
		stamped + " (stamped)",
		"snapshots " + l["snapshot"].(string),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("ready line %q does not contain %q", msg, want)
		}
	}
}
