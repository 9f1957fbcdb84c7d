package tap_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mdgate/mdgate/tap"
	"github.com/mdgate/mdgate/tick"
)

func TestFormat(t *testing.T) {
	now := time.Unix(100, 0)
	ingress := now.Add(-250 * time.Microsecond).UnixNano()
	stamp := tick.AppendStamp(nil, tick.Stamp{Epoch: 0xab, Seq: 7, Ingress: ingress})
	flagged := func(f uint8) []byte {
		return tick.AppendStamp(nil, tick.Stamp{Epoch: 0xab, Seq: 7, Ingress: ingress, Flags: f})
	}
	tests := []struct {
		frames [][]byte
		want   string
	}{
		{[][]byte{[]byte("msg"), stamp, []byte("md.eq.AAPL"), []byte(`{"px":1}`)},
			`msg   md.eq.AAPL seq=7 epoch=00000000000000ab age=250µs frames=2 | {"px":1}`},
		{[][]byte{[]byte("msg"), stamp, []byte("bin"), {0, 1, 0xff}},
			`msg   bin seq=7 epoch=00000000000000ab age=250µs frames=2 | 0x0001ff`},
		{[][]byte{[]byte("msg"), flagged(tick.FlagReplay), []byte("t"), []byte("1")},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=2 flags=replay | 1`},
		{[][]byte{[]byte("msg"), flagged(tick.FlagReplay | tick.FlagStale), []byte("t"), []byte("1")},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=2 flags=replay,stale | 1`},
		{[][]byte{[]byte("msg"), flagged(tick.FlagDelete), []byte("t"), {}},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=2 flags=delete | `},
		{[][]byte{[]byte("msg"), flagged(tick.FlagReplay | tick.FlagStale | tick.FlagDelete | 0x80), []byte("t")},
			`msg   t seq=7 epoch=00000000000000ab age=250µs frames=1 flags=replay,stale,delete,0x80`},
		{[][]byte{[]byte("sub"), []byte("raw"), []byte("md.")}, `sub   egress=raw prefix="md."`},
		{[][]byte{[]byte("unsub"), []byte("stamped"), {}}, `unsub egress=stamped prefix=""`},
		{[][]byte{[]byte("msg"), []byte("nostamp"), []byte("t")}, `???  capture message without a stamp`},
		{[][]byte{[]byte("x")}, `???  1 frame(s): not a capture message`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tap.Format(tt.frames, now); got != tt.want {
				t.Errorf("Format(%q) = %q, want %q", tt.frames, got, tt.want)
			}
		})
	}
}

func ExampleFormat() {
	now := time.Unix(0, 2_000_000)
	stamp := tick.AppendStamp(nil, tick.Stamp{Epoch: 1, Seq: 42, Ingress: 1_000_000})
	fmt.Println(tap.Format([][]byte{[]byte("msg"), stamp, []byte("md.fx.EURUSD"), []byte("1.0841")}, now))
	// Output: msg   md.fx.EURUSD seq=42 epoch=0000000000000001 age=1ms frames=2 | 1.0841
}
