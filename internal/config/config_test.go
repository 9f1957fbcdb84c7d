package config_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdgate/mdgate/internal/config"
)

type opts struct {
	ingress   *config.List
	http      *string
	maxFrames *int
	file      *string
}

func newFlags() (*flag.FlagSet, opts) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	o := opts{ingress: config.NewList("tcp://*:5556")}
	fs.Var(o.ingress, "ingress-bind", "")
	o.http = fs.String("http", ":8080", "")
	o.maxFrames = fs.Int("max-frames", 16, "")
	o.file = fs.String("config", "", "")
	return fs, o
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrecedence(t *testing.T) {
	conf := filepath.Join("testdata", "gateway.conf")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		ingress string
		http    string
		frames  int
	}{
		{"defaults", nil, nil, "tcp://*:5556", ":8080", 16},
		{"file", []string{"--config", conf}, nil, "tcp://127.0.0.1:7001,ipc:///tmp/mdgate.ipc", ":9090", 8},
		{"env over file", []string{"--config", conf}, map[string]string{"MDGATE_HTTP": ":7070", "MDGATE_INGRESS_BIND": "tcp://a:1, tcp://b:2"}, "tcp://a:1,tcp://b:2", ":7070", 8},
		{"flag over env", []string{"--http", ":6060", "--ingress-bind", "tcp://c:3"}, map[string]string{"MDGATE_HTTP": ":7070"}, "tcp://c:3", ":6060", 16},
		{"config file from env", nil, map[string]string{"MDGATE_CONFIG": conf}, "tcp://127.0.0.1:7001,ipc:///tmp/mdgate.ipc", ":9090", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, o := newFlags()
			if err := config.Load(fs, tt.args, env(tt.env), "config"); err != nil {
				t.Fatalf("Load(%q, %v) error: %v", tt.args, tt.env, err)
			}
			got := fmt.Sprintf("%s %s %d", o.ingress, *o.http, *o.maxFrames)
			want := fmt.Sprintf("%s %s %d", tt.ingress, tt.http, tt.frames)
			if got != want {
				t.Errorf("Load(%q, %v) = %q, want %q", tt.args, tt.env, got, want)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"nosuch = 1\n", `:1: unknown option "nosuch"`},
		{"http\n", ":1: want name = value"},
		{"# fine\nmax-frames = many\n", ":2: max-frames: parse error"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.conf")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			fs, _ := newFlags()
			err := config.Load(fs, []string{"--config", path}, env(nil), "config")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%q) error = %v, want it to contain %q", tt.file, err, tt.want)
			}
		})
	}
}

func ExampleEnvName() {
	fmt.Println(config.EnvName("ingress-bind"))
	// Output: MDGATE_INGRESS_BIND
}
