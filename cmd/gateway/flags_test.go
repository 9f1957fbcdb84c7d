package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdgate/mdgate/lvc"
)

// TestParseRejects: every bad flag set is refused by parse, in process, with
// an error naming the option; run then exits 2 (TestRunBadConfigExits2).
func TestParseRejects(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep"), []byte("the operator's"), 0o600)
	file := filepath.Join(dir, "cache.lvc")
	tests := []struct {
		name string
		args []string
		want string // a piece of the error
	}{
		{"save interval 0", []string{"--lvc-file", file, "--lvc-save-interval", "0"}, "lvc save interval 0s"},
		{"save interval negative", []string{"--lvc-file", file, "--lvc-save-interval", "-1s"}, "lvc save interval -1s"},
		{"tcp port past 65535", []string{"--egress-bind", "tcp://127.0.0.1:99999"}, `port "99999"`},
		{"ingress port past 65535", []string{"--ingress-bind", "tcp://*:65536"}, `port "65536"`},
		{"snapshot port past 65535", []string{"--snapshot-bind", "tcp://*:70000"}, `snapshot bind: endpoint "tcp://*:70000"`},
		{"capture port not a number", []string{"--capture-bind", "tcp://*:http"}, `port "http"`},
		{"tcp without port", []string{"--stamped-bind", "tcp://127.0.0.1"}, "no port"},
		{"log level", []string{"--log-level", "bogus"}, `log level "bogus"`},
		{"pong wait below heartbeat", []string{"--ws-pong-wait", "10s"}, "ws pong wait 10s: want more than ws heartbeat (15s)"},
		{"pong wait equal to heartbeat", []string{"--ws-heartbeat", "5s", "--ws-pong-wait", "5s"}, "ws pong wait 5s: want more than ws heartbeat (5s)"},
		{"slow rule off", []string{"--slow-max-bytes", "0", "--slow-max-lag", "0"}, "slow max bytes and slow max lag both 0"},
		{"lvc file is a directory", []string{"--lvc-file", dir}, "is a directory"},
		{"lvc file in a missing directory", []string{"--lvc-file", filepath.Join(dir, "nope", "cache.lvc")}, "does not exist"},
		{"lvc file under a file", []string{"--lvc-file", filepath.Join(dir, "keep", "cache.lvc")}, "not a directory"},
		{"lvc file not regular", []string{"--lvc-file", os.DevNull}, "not a regular file"},
		{"lvc file with the cache off", []string{"--lvc-file", file, "--lvc=false"}, "cache off"},
		{"lvc ttl negative", []string{"--lvc-ttl", "q.=-1s"}, "--lvc-ttl"},
		{"history without =", []string{"--history", "trades."}, `--history "trades.": no =`},
		{"history count negative", []string{"--history", "t.=-1"}, "count is not a whole number"},
		{"history bytes 0", []string{"--history", "t.=10,0"}, "bytes is not a whole number of 1 or more"},
		{"history age bogus", []string{"--history", "t.=10,100,soon"}, "age is not a duration"},
		{"history too many values", []string{"--history", "t.=1,2,3s,4"}, "more than three values"},
		{"history max bytes negative", []string{"--history-max-bytes", "-1"}, "history max bytes -1"},

		// Every numeric option below its range.
		{"slow-max-bytes", []string{"--slow-max-bytes", "-1"}, "slow max bytes -1"},
		{"slow-max-lag", []string{"--slow-max-lag", "-1s"}, "slow max lag -1s"},
		{"lvc-max-topics", []string{"--lvc-max-topics", "-1"}, "lvc max topics -1"},
		{"lvc-max-topics 0", []string{"--lvc-max-topics", "0"}, "lvc max topics 0"},
		{"lvc-max-bytes", []string{"--lvc-max-bytes", "-1"}, "lvc max bytes -1"},
		{"fanout-shards", []string{"--fanout-shards", "-1"}, "fanout shards -1"},
		{"fanout-queue", []string{"--fanout-queue", "-1"}, "fanout queue -1"},
		{"write-timeout", []string{"--write-timeout", "-1s"}, "write timeout -1s"},
		{"ws-inflight-bytes", []string{"--ws-inflight-bytes", "-1"}, "ws inflight bytes -1"},
		{"ws-inflight-conflate-bytes", []string{"--ws-inflight-conflate-bytes", "-1"}, "ws inflight conflate bytes -1"},
		{"ws-heartbeat", []string{"--ws-heartbeat", "-1s"}, "ws heartbeat -1s"},
		{"ws-read-limit", []string{"--ws-read-limit", "-1"}, "ws read limit -1"},
		{"ws-max-subscriptions", []string{"--ws-max-subscriptions", "-1"}, "ws max subscriptions -1"},
		{"ws-subscribe-rate", []string{"--ws-subscribe-rate", "-1"}, "ws subscribe rate -1"},
		{"ws-subscribe-burst", []string{"--ws-subscribe-burst", "-1"}, "ws subscribe burst -1"},
		{"ws-abuse-limit", []string{"--ws-abuse-limit", "-1"}, "ws abuse limit -1"},
		{"ws-handshake-timeout", []string{"--ws-handshake-timeout", "-1s"}, "ws handshake timeout -1s"},
		{"ws-pong-wait", []string{"--ws-pong-wait", "-1s"}, "ws pong wait -1s"},
		{"ws-close-grace", []string{"--ws-close-grace", "-1s"}, "ws close grace -1s"},
		{"ws-send-buffer", []string{"--ws-send-buffer", "-1"}, "ws send buffer -1"},
		{"ws-max-conns", []string{"--ws-max-conns", "-1"}, "ws max conns -1"},
		{"ws-max-conns-per-ip", []string{"--ws-max-conns-per-ip", "-1"}, "ws max conns per ip -1"},
		{"demo-rate", []string{"--demo-rate", "-1"}, "demo rate -1"},
		{"demo-instruments", []string{"--demo-instruments", "-1"}, "demo instruments -1"},
		{"shutdown-timeout", []string{"--shutdown-timeout", "-1s"}, "shutdown timeout -1s"},
		{"snapshot-max-requests", []string{"--snapshot-max-requests", "-1"}, "snapshot MaxRequests -1"},
		{"snapshot-max-per-peer", []string{"--snapshot-max-per-peer", "-1"}, "snapshot MaxPerPeer -1"},
		{"snapshot-hwm", []string{"--snapshot-hwm", "-1"}, "snapshot HWM -1"},
		{"snapshot-stall-timeout", []string{"--snapshot-stall-timeout", "-1s"}, "snapshot StallTimeout -1s"},
		{"http-idle-timeout", []string{"--http-idle-timeout", "-1s"}, "http idle timeout -1s"},
		{"http-read-timeout", []string{"--http-read-timeout", "-1s"}, "http read timeout -1s"},
		{"http-max-conns", []string{"--http-max-conns", "-1"}, "http max conns -1"},
		{"ingress-hwm", []string{"--ingress-hwm", "-1"}, "ingress hwm -1"},
		{"egress-hwm", []string{"--egress-hwm", "-1"}, "egress hwm -1"},
		{"egress-max-bytes", []string{"--egress-max-bytes", "-1"}, "egress max bytes -1"},
		{"egress-max-subscriptions", []string{"--egress-max-subscriptions", "-1"}, "egress max subscriptions -1"},
		{"replay-interval", []string{"--replay-interval", "-1s"}, "replay interval -1s"},
		{"replay-batch", []string{"--replay-batch", "-1"}, "replay batch -1"},
		{"replay-rate", []string{"--replay-rate", "-1"}, "replay rate -1"},
		{"replay-max-pending", []string{"--replay-max-pending", "-1"}, "replay max pending -1"},
		{"zmq-heartbeat", []string{"--zmq-heartbeat", "-1s"}, "zmq heartbeat -1s"},
		{"zmq-heartbeat-timeout", []string{"--zmq-heartbeat-timeout", "-1s"}, "zmq heartbeat timeout -1s"},
		{"zmq-heartbeat-ttl", []string{"--zmq-heartbeat-ttl", "-1s"}, "zmq heartbeat ttl -1s"},
		{"zmq-handshake-timeout", []string{"--zmq-handshake-timeout", "-1s"}, "ZeroMQ handshake timeout -1s"},
		{"max-msg-size", []string{"--max-msg-size", "-2"}, "max message size -2"},
		{"max-msg-bytes", []string{"--max-msg-bytes", "-1"}, "max message bytes -1"},
		{"max-topic-bytes", []string{"--max-topic-bytes", "-1"}, "max topic bytes -1"},
		{"max-frames", []string{"--max-frames", "-1"}, "max frames -1"},
		{"max-topics", []string{"--max-topics", "-1"}, "max topics -1"},
		{"multicast-rate", []string{"--multicast-rate", "-1"}, "multicast rate -1"},
		{"multicast-hops", []string{"--multicast-hops", "-1"}, "multicast hops -1"},
		{"multicast-recovery", []string{"--multicast-recovery", "-1s"}, "multicast recovery interval -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parse(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("after the refusals %s holds %d entries, want the operator's one file untouched", dir, len(entries))
	}
}

// TestParseReportsEveryProblemOnce: all problems in one error, a limit the
// fan-out and the WebSocket bridge share named once.
func TestParseReportsEveryProblemOnce(t *testing.T) {
	args := []string{"--slow-max-bytes", "-1", "--ws-read-limit", "-1", "--log-level", "loud", "--lvc-save-interval", "0"}
	_, err := parse(args, io.Discard)
	if err == nil {
		t.Fatalf("parse(%q) = nil, want an error", args)
	}
	for _, want := range []string{"slow max bytes -1", "ws read limit -1", `log level "loud"`, "lvc save interval 0s"} {
		if n := strings.Count(err.Error(), want); n != 1 {
			t.Errorf("parse(%q) = %q: %q appears %d times, want once", args, err, want, n)
		}
	}
}

// TestParseAccepts: the zero values that mean something, and the edges.
func TestParseAccepts(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"no byte bound, lag bound kept", []string{"--slow-max-bytes", "0"}},
		{"no lag bound, byte bound kept", []string{"--slow-max-lag", "0"}},
		{"heartbeats off", []string{"--ws-heartbeat", "0"}},
		{"pong wait just above heartbeat", []string{"--ws-heartbeat", "5s", "--ws-pong-wait", "6s"}},
		{"no connection limits", []string{"--ws-max-conns", "0", "--ws-max-conns-per-ip", "0", "--http-max-conns", "0"}},
		{"kernel send buffer", []string{"--ws-send-buffer", "0"}},
		{"a shard per core", []string{"--fanout-shards", "0"}},
		{"highest port, any port", []string{"--egress-bind", "tcp://127.0.0.1:65535", "--stamped-bind", "tcp://127.0.0.1:*"}},
		{"ipv6 and multicast", []string{"--egress-bind", "tcp://[::1]:5557", "--ingress-connect", "epgm://eth0;239.192.1.1:5555"}},
		{"lvc file to create", []string{"--lvc-file", filepath.Join(dir, "new.lvc"), "--lvc-save-interval", "1ms"}},
		{"log level debug", []string{"--log-level", "debug"}},
		{"history", []string{"--history", "ev.=1000", "--history", "ev.px.=0", "--history", "trades.=10000,4194304,1h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parse(tt.args, io.Discard); err != nil {
				t.Errorf("parse(%q) = %v, want nil", tt.args, err)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("checking --lvc-file left %d files in %s, want none", len(entries), dir)
	}
}

// TestParseLVCFileUnreadable: a cache file the gateway may not read is
// refused, not moved aside. Root reads every file of a plain file system
// (chmod cannot show it); procfs's write-only sysctls deny even root.
func TestParseLVCFileUnreadable(t *testing.T) {
	const path = "/proc/sys/vm/compact_memory" // mode 0200
	if f, err := os.Open(path); err == nil || !os.IsPermission(err) {
		if f != nil {
			f.Close()
		}
		t.Skipf("cannot produce EACCES here: open %s = %v (no procfs, or no CONFIG_COMPACTION)", path, err)
	}
	args := []string{"--lvc-file", path}
	if _, err := parse(args, io.Discard); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("parse(%q) = %v, want permission denied", args, err)
	}
}

func TestRunBadConfigExits2(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--lvc-file", dir},
		{"--lvc-file", filepath.Join(dir, "missing", "cache.lvc")},
		{"--lvc-file", filepath.Join(dir, "cache.lvc"), "--lvc-save-interval", "0"},
		{"--slow-max-bytes", "-1"},
		{"--log-level", "bogus"},
	} {
		if got := run(args); got != 2 {
			t.Errorf("run(%q) = %d, want 2", args, got)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the directory given as --lvc-file: %v, want it still there", err)
	}
}

func TestReadKeyZ85WithEquals(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		ok            bool
	}{
		{"with =", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y=7\n", true},
		{"all =", strings.Repeat("=", 40), true},
		{"space inside", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y 7", false},
		{"not Z85", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y~7", false},
		{"39 characters", strings.Repeat("a", 39), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			os.WriteFile(path, []byte(tt.content), 0o600)
			got, err := readKey(path, "public")
			if want := strings.TrimSpace(tt.content); tt.ok && (got != want || err != nil) {
				t.Errorf("readKey(%q) = %q, %v, want %q", tt.content, got, err, want)
			}
			if !tt.ok && err == nil {
				t.Errorf("readKey(%q) = %q, want an error", tt.content, got)
			}
		})
	}
}

func TestParseHistoryRule(t *testing.T) {
	tests := []struct {
		in   string
		want lvc.HistoryRule
	}{
		{"ev.=1000", lvc.HistoryRule{Prefix: "ev.", MaxCount: 1000, MaxBytes: lvc.DefaultHistoryBytes}},
		{"=5,100", lvc.HistoryRule{Prefix: "", MaxCount: 5, MaxBytes: 100}},
		{"t.=10,4096,1h", lvc.HistoryRule{Prefix: "t.", MaxCount: 10, MaxBytes: 4096, MaxAge: time.Hour}},
		{"px.=0", lvc.HistoryRule{Prefix: "px.", MaxCount: 0, MaxBytes: lvc.DefaultHistoryBytes}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got, err := parseHistoryRule(tt.in); err != nil || got != tt.want {
				t.Errorf("parseHistoryRule(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}
