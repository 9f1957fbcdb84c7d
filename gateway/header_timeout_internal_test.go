package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// A request whose headers do not arrive within ReadHeaderTimeout (slowloris)
// is counted as mdgate_http_refused_total{reason="header_timeout"}, once;
// a connection closed for being idle between requests, or served, is not.
func TestHeaderTimeoutCounted(t *testing.T) {
	const timeout = 200 * time.Millisecond
	get := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name string
		send []string // written in turn, each answer read when it is a whole request
		want float64
	}{
		{"half a request line", []string{"GET /hea"}, 1},
		{"headers never ended", []string{"GET / HTTP/1.1\r\nHost: x\r\n"}, 1},
		{"nothing sent", nil, 1},
		{"served, then idle", []string{get}, 0},
		{"served, then half a next request", []string{get, "GET / HTTP/1.1\r\nHo"}, 1},
		{"served, Connection: close", []string{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := newLimitListener(ln, 0, prometheus.NewRegistry(), zerolog.Nop())
			closed := make(chan struct{}) // the one connection's StateClosed hook ran (after l's, which counts)
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
				ReadHeaderTimeout: timeout, IdleTimeout: timeout,
				ConnState: func(_ net.Conn, st http.ConnState) {
					if st == http.StateClosed {
						close(closed)
					}
				}}
			l.instrument(srv)
			go srv.Serve(l)
			defer srv.Close()

			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			for _, s := range tc.send {
				if _, err := io.WriteString(c, s); err != nil {
					t.Fatal(err)
				}
				if s[len(s)-4:] == "\r\n\r\n" {
					resp, err := http.ReadResponse(r, nil)
					if err != nil {
						t.Fatalf("answer to %q: %v", s, err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			// The server closes the connection past the timeout (after a
			// 408 if it had a part of the request).
			c.SetReadDeadline(time.Now().Add(20 * timeout))
			if b, err := io.ReadAll(r); err != nil {
				t.Fatalf("after %q: read %q, %v; want the server's close", tc.send, b, err)
			} else if len(b) > 0 {
				t.Logf("after %q: the server wrote %q", tc.send, b)
			}
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatalf("after %q: the connection's close not reported within 5s", tc.send)
			}
			if got := testutil.ToFloat64(l.refused[refuseHeaderTimeout]); got != tc.want {
				t.Errorf("after %q: refused{reason=header_timeout} = %v, want %v", tc.send, got, tc.want)
			}
			if got := testutil.ToFloat64(l.refused[refuseMaxConns]); got != 0 {
				t.Errorf("refused{reason=max_conns} = %v, want 0", got)
			}
		})
	}
}

// Every refusal reason is exported, at 0, under its documented label.
func TestRefusedCounters(t *testing.T) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"reason"})
	c := genRefusedCounters(v)
	want := []string{"max_conns", "header_timeout"}
	if n := testutil.CollectAndCount(v); n != len(want) {
		t.Fatalf("%d reasons exported, want %d", n, len(want))
	}
	for r, name := range want {
		c[r].Inc()
		if got := testutil.ToFloat64(v.WithLabelValues(name)); got != 1 {
			t.Errorf("refuseReason(%d) does not count under %q", r, name)
		}
	}
}
