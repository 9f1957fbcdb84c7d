package config

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// FuzzApplyFile: any config file gives settings or errors naming the file
// and line, never a panic.
func FuzzApplyFile(f *testing.F) {
	f.Add("http = :8080\n# comment\nmax-frames = 16\n")
	f.Add("= x\nnope\nhttp =\n")
	f.Add("ingress-bind = tcp://a, tcp://b # trailing\n")
	f.Fuzz(func(t *testing.T, file string) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("http", ":8080", "")
		fs.Int("max-frames", 16, "")
		fs.Var(NewList(), "ingress-bind", "")
		err := applyFile(fs, strings.NewReader(file), "gw.conf", func(string) bool { return false })
		if err != nil && !strings.Contains(err.Error(), "gw.conf") {
			t.Fatalf("error %q does not name the file", err)
		}
	})
}
