package snapshot

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unicode/utf8"
)

// FuzzParseRequest: any frames (split on 0xff) give a request or a known
// error code with a readable text, never a panic.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("SNAP\xffmd.eq."))
	f.Add([]byte("SNAP"))
	f.Add([]byte("HELLO\xff\xff"))
	f.Add(append([]byte("SNAP\xff"), bytes.Repeat([]byte("a"), MaxPrefix+1)...))
	f.Add([]byte("SINCE\xffmd.eq.A\xff\x00\x00\x00\x00\x00\x00\x00\x07\xff\x00\x00\x00\x00\x00\x00\x00\x09"))
	f.Add([]byte("SINCE\xffmd.eq.A\xff\x07\xff\x09"))
	f.Add([]byte("SINCE\xffmd.eq.A"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req [][]byte
		if len(b) > 0 {
			req = bytes.Split(b, []byte{0xff})
		}
		q, code, text := parseRequest(req)
		switch code {
		case "":
			switch {
			case !q.since && (len(req) != 2 || string(req[0]) != CmdSnap || q.prefix != string(req[1])):
				t.Fatalf("parseRequest(%q) accepted as SNAP %+v", req, q)
			case q.since && (len(req) != 4 || string(req[0]) != CmdSince || q.prefix != string(req[1]) ||
				q.epoch != binary.BigEndian.Uint64(req[2]) || q.seq != binary.BigEndian.Uint64(req[3])):
				t.Fatalf("parseRequest(%q) accepted as SINCE %+v", req, q)
			}
		case ErrUnknownCommand, ErrBadRequest, ErrPrefixTooLong, ErrTopicTooLong, ErrBadSeq:
			if text == "" || len(text) > 200 || !utf8.ValidString(text) {
				t.Fatalf("parseRequest(%q) error text %q", req, text)
			}
		default:
			t.Fatalf("parseRequest(%q) code %q is not documented", req, code)
		}
	})
}
