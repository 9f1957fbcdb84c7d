package tick_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mdgate/mdgate/tick"
)

// FuzzParseStamp: any frame parses or is refused with ErrNotStamp, never a
// panic; a frame that parses re-encodes (AppendStamp) to exactly its bytes,
// so no two frames parse to the same stamp. Seeds in testdata/fuzz.
func FuzzParseStamp(f *testing.F) {
	f.Add(tick.AppendStamp(nil, tick.Stamp{Epoch: 1, Seq: 1, Ingress: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := tick.ParseStamp(b)
		if err != nil {
			if !errors.Is(err, tick.ErrNotStamp) {
				t.Fatalf("ParseStamp(%x) error = %v, want ErrNotStamp", b, err)
			}
			return
		}
		if got := tick.AppendStamp(nil, s); !bytes.Equal(got, b) {
			t.Fatalf("AppendStamp(ParseStamp(%x)) = %x, want the input", b, got)
		}
	})
}
