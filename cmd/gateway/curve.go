package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	zmq "github.com/pebbe/zmq4"
)

var certLine = regexp.MustCompile(`(?m)^\s*(public|secret)-key\s*=\s*"([^"]{40})"`)

// readKey reads a Z85 key from a file holding just the key, or a czmq
// certificate (`public-key = "..."`, `secret-key = "..."`); kind picks one.
func readKey(path, kind string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, m := range certLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] == kind {
			return m[2], nil
		}
	}
	if k := strings.TrimSpace(string(b)); isZ85Key(k) {
		return k, nil
	}
	return "", fmt.Errorf("%s: no %s-key (a 40-character Z85 key, alone or as a czmq certificate line)", path, kind)
}

// z85 is the Z85 alphabet (ZeroMQ RFC 32); '=' is one of its characters.
const z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// isZ85Key reports whether k is a 40-character Z85 key (32 bytes).
func isZ85Key(k string) bool {
	if len(k) != 40 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if strings.IndexByte(z85, k[i]) < 0 {
			return false
		}
	}
	return true
}

// readClientKeys reads every allowed client public key from dir.
func readClientKeys(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		k, err := readKey(filepath.Join(dir, e.Name()), "public")
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New(dir + ": no client public keys")
	}
	return keys, nil
}

// runKeygen prints a new CURVE key pair as a czmq-style certificate: keep
// the secret line private; the public line goes to peers.
func runKeygen() int {
	pub, sec, err := zmq.NewCurveKeypair()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway keygen:", err)
		return 1
	}
	fmt.Printf("# mdgate CURVE key pair\ncurve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", pub, sec)
	return 0
}
