package lvc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/mdgate/mdgate/tick"
)

// fileBytes is what Save writes for c, in memory.
func fileBytes(t testing.TB, c *Cache) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := c.encode(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.AppendUint32(buf.Bytes(), crc32.ChecksumIEEE(buf.Bytes()))
}

// withCRC returns data with its last 4 bytes replaced by the CRC of the rest,
// so the fuzzer reaches the record parser and not only the checksum.
func withCRC(data []byte) []byte {
	if len(data) < 4 {
		return data
	}
	body := data[:len(data)-4]
	return binary.BigEndian.AppendUint32(append([]byte(nil), body...), crc32.ChecksumIEEE(body))
}

// FuzzDecode: any file either decodes or is refused, never a panic. What
// decodes is well formed (a non-empty topic that is frame 0, marked stale),
// and saved again decodes again to as many values as the cache kept. Seeds
// in testdata/fuzz: files made by encode, truncated ones and garbage.
func FuzzDecode(f *testing.F) {
	c := New(DefaultConfig(), nil)
	c.Update(&tick.Message{Topic: "md.eq.AAPL", Frames: [][]byte{[]byte("md.eq.AAPL"), []byte(`{"px":1}`)}, Stamp: tick.Stamp{Epoch: 1, Seq: 1, Ingress: 1}})
	f.Add(fileBytes(f, c))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, withCRC(data)} {
			msgs, err := decode(in)
			if err != nil {
				if msgs != nil {
					t.Fatalf("decode(%q) = %d values and error %v", in, len(msgs), err)
				}
				continue
			}
			for _, m := range msgs {
				if m.Topic == "" || len(m.Frames) == 0 || string(m.Frames[0]) != m.Topic {
					t.Fatalf("decode(%q): value with topic %q and frames %q", in, m.Topic, m.Frames)
				}
				if m.Stamp.Flags&tick.FlagStale == 0 {
					t.Fatalf("decode(%q): topic %q not marked stale", in, m.Topic)
				}
			}
			c := New(DefaultConfig(), nil)
			c.Restore(msgs)
			again, err := decode(fileBytes(t, c))
			if n, _ := c.Len(); err != nil || len(again) != n {
				t.Fatalf("decode(save(decode(%q))) = %d values, %v; want %d, nil", in, len(again), err, n)
			}
		}
	})
}
