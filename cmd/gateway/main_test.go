package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mdgate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gateway")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t testing.TB) string { return testpair.FreeAddr(t) }

func TestHelpDocumentsEveryOption(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"MDGATE_", "-ingress-bind", "-ingress-connect", "-ingress-filter", "-egress-bind", "-stamped-bind",
		"-capture-bind", "-max-msg-size", "-zmq-heartbeat", "-http", "-demo", "gateway tap"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

func TestBadFlagExits2(t *testing.T) {
	cmd := exec.Command(binary, "--max-frames", "0", "--http", freeAddr(t))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "max frames 0") {
		t.Errorf("gateway --max-frames 0 = %v %q, want exit 2 naming the option", err, out)
	}
}

// The binary, configured through the environment, serves the demo feed and
// stops cleanly on SIGTERM within its shutdown bound.
func TestBinaryDemoAndGracefulShutdown(t *testing.T) {
	httpAddr := freeAddr(t)
	cmd := exec.Command(binary, "--demo", "--log-json")
	cmd.Env = append(os.Environ(),
		"MDGATE_HTTP="+httpAddr,
		"MDGATE_INGRESS_BIND=tcp://127.0.0.1:*",
		"MDGATE_EGRESS_BIND=tcp://127.0.0.1:*",
		"MDGATE_STAMPED_BIND=tcp://127.0.0.1:*",
		"MDGATE_SNAPSHOT_BIND=tcp://127.0.0.1:*",
		"MDGATE_SHUTDOWN_TIMEOUT=2s")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait closes the pipe once the process exits: it must not be called
	// before every line is read, or the last ones can be lost.
	var lines []string
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}()
	exited := make(chan error, 1)
	go func() { <-readDone; exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	var health struct {
		Proxy struct{ Endpoints struct{ Egress []string } }
	}
	testpeer.Eventually(t, 10*time.Second, "/healthz", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&health) == nil
	})
	sub := testpeer.Start(t, "sub", map[string]any{"endpoint": health.Proxy.Endpoints.Egress[0], "count": 5})
	if got := sub.Until(t, "done", 10*time.Second); len(got) != 5 {
		t.Fatalf("subscriber got %d demo messages from the binary, want 5", len(got))
	}

	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("gateway exit after SIGTERM: %v, want 0", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("gateway still running 5s after SIGTERM")
	}
	var last map[string]any
	for _, l := range lines { // exited is sent after readDone: lines is complete
		json.Unmarshal([]byte(l), &last)
	}
	if last["message"] != "gateway stopped" {
		t.Errorf("last log line = %v, want a JSON line saying gateway stopped", last)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
}

func TestReadKeyFormats(t *testing.T) {
	dir := t.TempDir()
	const pub, sec = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
	cert := dir + "/server.cert"
	os.WriteFile(cert, []byte("curve\n    public-key = \""+pub+"\"\n    secret-key = \""+sec+"\"\n"), 0o600)
	bare := dir + "/bare.key"
	os.WriteFile(bare, []byte(pub+"\n"), 0o600)
	for _, tc := range []struct{ path, kind, want string }{{cert, "secret", sec}, {cert, "public", pub}, {bare, "public", pub}} {
		t.Run(filepath.Base(tc.path)+"/"+tc.kind, func(t *testing.T) {
			if got, err := readKey(tc.path, tc.kind); got != tc.want || err != nil {
				t.Errorf("readKey(%q, %q) = %q, %v, want %q", tc.path, tc.kind, got, err, tc.want)
			}
		})
	}
	os.WriteFile(dir+"/bad", []byte("nope"), 0o600)
	if _, err := readKey(dir+"/bad", "public"); err == nil {
		t.Error("readKey accepted a file without a key")
	}
}
