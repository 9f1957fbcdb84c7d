package snapshot

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzParseRequest: any frames (split on 0xff) give a prefix or a known
// error code with a readable text, never a panic.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("SNAP\xffmd.eq."))
	f.Add([]byte("SNAP"))
	f.Add([]byte("HELLO\xff\xff"))
	f.Add(append([]byte("SNAP\xff"), bytes.Repeat([]byte("a"), MaxPrefix+1)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req [][]byte
		if len(b) > 0 {
			req = bytes.Split(b, []byte{0xff})
		}
		prefix, code, text := parseRequest(req)
		switch code {
		case "":
			if len(req) != 2 || prefix != string(req[1]) {
				t.Fatalf("parseRequest(%q) accepted with prefix %q", req, prefix)
			}
		case ErrUnknownCommand, ErrBadRequest, ErrPrefixTooLong:
			if text == "" || len(text) > 200 || !utf8.ValidString(text) {
				t.Fatalf("parseRequest(%q) error text %q", req, text)
			}
		default:
			t.Fatalf("parseRequest(%q) code %q is not documented", req, code)
		}
	})
}
