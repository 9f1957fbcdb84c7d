package bridge

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/mdgate/mdgate/tick"
)

// FuzzParseRequest: any input gives a request or a ProtoError with a known
// code, never a panic; accepted requests satisfy the documented bounds.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"op":"ping"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			var pe *ProtoError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseRequest(%q) error %v is not a ProtoError", b, err)
			}
			if pe.Code >= numErrorCodes {
				t.Fatalf("ParseRequest(%q) code %q is not a documented code", b, pe.Code)
			}
			if reply := errorReply(r.ID, pe); !json.Valid(reply) {
				t.Fatalf("error reply %q is not JSON", reply)
			}
			return
		}
		switch r.Op {
		case "subscribe", "unsubscribe", "ping", "resume":
		default:
			t.Fatalf("ParseRequest(%q) accepted op %q", b, r.Op)
		}
		for _, list := range [][]string{r.Topics, r.Prefixes} {
			for _, s := range list {
				if len(s) > MaxTopicLen {
					t.Fatalf("accepted a %d-byte topic", len(s))
				}
			}
		}
	})
}

// FuzzEncodeUpdate: whatever a publisher sends, the update is one line of
// valid JSON.
func FuzzEncodeUpdate(f *testing.F) {
	f.Add("md.eq.AAPL", []byte(`{"px":1}`), uint8(0))
	f.Add("t\n\"x", []byte("\x00\xff"), uint8(tick.FlagDelete))
	f.Add("t", []byte("{\n\"a\":\n1}"), uint8(tick.FlagStale))
	f.Fuzz(func(t *testing.T, topic string, payload []byte, flags uint8) {
		m := &tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), payload}, Stamp: tick.Stamp{Seq: 1, Flags: flags}}
		b := EncodeUpdate(m)
		if !json.Valid(b) {
			t.Fatalf("EncodeUpdate(%q, %q) = %q: not JSON", topic, payload, b)
		}
		for _, c := range b {
			if c == '\n' || c == '\r' {
				t.Fatalf("EncodeUpdate(%q, %q) = %q: more than one line", topic, payload, b)
			}
		}
		var v struct{ Topic string }
		json.Unmarshal(b, &v)
		if utf8.ValidString(topic) && v.Topic != topic {
			t.Fatalf("topic %q came back as %q", topic, v.Topic)
		}
	})
}
