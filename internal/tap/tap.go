package tap

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
	"github.com/mdgate/mdgate/tick"
)

// maxShown bounds how much of each payload frame a line shows.
const maxShown = 120

// Format renders one capture message as a line (no newline). now is used for
// the message's age since ingress.
func Format(frames [][]byte, now time.Time) string {
	if len(frames) < 2 {
		return fmt.Sprintf("???  %d frame(s): not a capture message", len(frames))
	}
	var b strings.Builder
	switch kind := string(frames[0]); kind {
	case "sub", "unsub":
		fmt.Fprintf(&b, "%-5s egress=%s prefix=%q", kind, frames[1], prefix(frames))
	case "msg":
		st, err := tick.ParseStamp(frames[1])
		if err != nil || len(frames) < 3 {
			return "???  capture message without a stamp"
		}
		fmt.Fprintf(&b, "msg   %s seq=%d epoch=%016x age=%s frames=%d",
			show(frames[2]), st.Seq, st.Epoch, now.Sub(time.Unix(0, st.Ingress)).Round(time.Microsecond), len(frames)-2)
		if st.Flags != 0 {
			b.WriteString(" flags=")
			b.WriteString(flags(st.Flags))
		}
		for _, f := range frames[3:] {
			b.WriteString(" | ")
			b.WriteString(show(f))
		}
	default:
		fmt.Fprintf(&b, "???  unknown kind %q", kind)
	}
	return b.String()
}

// flagNames names the stamp's flag bits, in bit order.
var flagNames = []struct {
	bit  uint8
	name string
}{{tick.FlagReplay, "replay"}, {tick.FlagStale, "stale"}, {tick.FlagDelete, "delete"}}

// flags names the set bits of f, comma-separated; bits without a name are
// shown together in hex.
func flags(f uint8) string {
	var names []string
	for _, n := range flagNames {
		if f&n.bit != 0 {
			names = append(names, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("0x%02x", f))
	}
	return strings.Join(names, ",")
}

func prefix(frames [][]byte) string {
	if len(frames) > 2 {
		return string(frames[2])
	}
	return ""
}

// show prints text as it is and anything else as hex, cut at maxShown.
func show(f []byte) string {
	cut := ""
	if len(f) > maxShown {
		f, cut = f[:maxShown], "…("+strconv.Itoa(len(f))+" bytes)"
	}
	if utf8.Valid(f) && bytes.IndexFunc(f, func(r rune) bool { return r < 0x20 }) < 0 {
		return string(f) + cut
	}
	return fmt.Sprintf("0x%x", f) + cut
}

// Run subscribes to a capture endpoint and prints every line whose topic (or
// subscription prefix) starts with topicPrefix, until ctx is done (it
// returns nil) or the socket fails. Lines are buffered and written whenever
// no more messages are waiting.
func Run(ctx context.Context, endpoint, topicPrefix string, w io.Writer) error {
	out := bufio.NewWriter(w)
	defer out.Flush()
	err := zsock.Loop{
		Wait: 100 * time.Millisecond,
		Handle: func(sock *zmq.Socket, frames [][]byte) error {
			if len(frames) > 2 && !bytes.HasPrefix(frames[2], []byte(topicPrefix)) {
				return nil
			}
			fmt.Fprintln(out, Format(frames, time.Now()))
			if ev, _ := sock.GetEvents(); ev&zmq.POLLIN == 0 { // idle: show it now
				out.Flush()
			}
			return nil
		},
		Idle: func() error { out.Flush(); return nil },
	}.Run(ctx, func() (*zmq.Socket, error) {
		return zsock.Sub(zsock.SubConfig{Connect: []string{endpoint}})
	})
	if err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	return nil
}
