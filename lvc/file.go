package lvc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/tick"
)

// The cache file:
//
//	"MDGLVC01"                        8 bytes
//	records, each:
//	  uint32 length of the rest of the record
//	  stamp                           32 bytes (tick.AppendStamp)
//	  uint16 frame count
//	  per frame: uint32 length, bytes
//	uint32 0xFFFFFFFF                 end marker
//	uint64 record count
//	uint32 CRC-32 (IEEE) of every byte before it
//
// Integers are big-endian.
const fileMagic = "MDGLVC01"

// ErrCorrupt is wrapped by Load for a file that is not a whole cache file.
var ErrCorrupt = errors.New("lvc: cache file corrupt or truncated")

// maxRecord bounds one record when loading (a corrupt length must not make
// us allocate gigabytes).
const maxRecord = 64 << 20

// Save writes every value atomically to path: a temporary file in the same
// directory, fsynced, renamed over path, and the directory fsynced. A crash
// at any point leaves the previous file intact.
func (c *Cache) Save(path string) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("lvc save: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			c.met.saves.WithLabelValues("error").Inc()
		} else {
			c.met.saves.WithLabelValues("ok").Inc()
		}
	}()
	crc := crc32.NewIEEE()
	w := bufio.NewWriterSize(io.MultiWriter(tmp, crc), 1<<16)
	if err := c.encode(w); err != nil {
		return fmt.Errorf("lvc save: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("lvc save: %w", err)
	}
	if err := binary.Write(tmp, binary.BigEndian, crc.Sum32()); err != nil {
		return fmt.Errorf("lvc save: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("lvc save: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lvc save: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("lvc save: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (c *Cache) encode(w *bufio.Writer) error {
	w.WriteString(fileMagic)
	var n uint64
	var rec []byte
	var err error
	c.Scan("", func(m *tick.Message) {
		if err != nil {
			return
		}
		rec = tick.AppendStamp(rec[:0], m.Stamp)
		rec = binary.BigEndian.AppendUint16(rec, uint16(len(m.Frames)))
		for _, f := range m.Frames {
			rec = binary.BigEndian.AppendUint32(rec, uint32(len(f)))
			rec = append(rec, f...)
		}
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(rec)))
		w.Write(hdr[:])
		_, err = w.Write(rec)
		n++
	})
	if err != nil {
		return err
	}
	var tail [12]byte
	binary.BigEndian.PutUint32(tail[:], 0xFFFFFFFF)
	binary.BigEndian.PutUint64(tail[4:], n)
	_, err = w.Write(tail[:])
	return err
}

// Load reads a cache file written by Save. Every value comes back marked
// stale (tick.FlagStale), with its original epoch and seq. An error wraps
// ErrCorrupt when the file is not a whole cache file.
func Load(path string) ([]*tick.Message, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lvc load: %w", err)
	}
	msgs, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("lvc load %s: %w: %v", path, ErrCorrupt, err)
	}
	return msgs, nil
}

func decode(data []byte) ([]*tick.Message, error) {
	if len(data) < len(fileMagic)+16 || string(data[:len(fileMagic)]) != fileMagic {
		return nil, errors.New("no header")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, errors.New("checksum mismatch")
	}
	p := body[len(fileMagic):]
	var out []*tick.Message
	for {
		if len(p) < 4 {
			return nil, errors.New("short record header")
		}
		n := binary.BigEndian.Uint32(p)
		p = p[4:]
		if n == 0xFFFFFFFF {
			if len(p) != 8 || binary.BigEndian.Uint64(p) != uint64(len(out)) {
				return nil, errors.New("bad end marker")
			}
			return out, nil
		}
		if n > maxRecord || int(n) > len(p) {
			return nil, fmt.Errorf("record length %d past the end", n)
		}
		m, err := decodeRecord(p[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		p = p[n:]
	}
}

func decodeRecord(r []byte) (*tick.Message, error) {
	if len(r) < tick.StampSize+2 {
		return nil, errors.New("short record")
	}
	st, err := tick.ParseStamp(r[:tick.StampSize])
	if err != nil {
		return nil, err
	}
	r = r[tick.StampSize:]
	nf := int(binary.BigEndian.Uint16(r))
	r = r[2:]
	if nf == 0 {
		return nil, errors.New("record without frames")
	}
	frames := make([][]byte, nf)
	for i := range frames {
		if len(r) < 4 {
			return nil, errors.New("short frame header")
		}
		l := int(binary.BigEndian.Uint32(r))
		r = r[4:]
		if l > len(r) {
			return nil, errors.New("frame past the record")
		}
		frames[i] = append([]byte(nil), r[:l]...)
		r = r[l:]
	}
	if len(r) != 0 || len(frames[0]) == 0 {
		return nil, errors.New("bad record")
	}
	st.Flags |= tick.FlagStale
	return &tick.Message{Topic: string(frames[0]), Frames: frames, Stamp: st}, nil
}

// LoadOrQuarantine loads path into the cache. A missing file is a clean
// start. A corrupt one is logged, moved aside to path.corrupt-TIME, and the
// cache starts empty: it never stops the gateway.
func (c *Cache) LoadOrQuarantine(path string, log zerolog.Logger, now time.Time) {
	msgs, err := Load(path)
	switch {
	case err == nil:
		c.Restore(msgs)
		t, b := c.Len()
		log.Info().Str("file", path).Int("topics", t).Int64("bytes", b).Msg("cache loaded; values are marked stale until updated")
	case errors.Is(err, os.ErrNotExist):
		log.Info().Str("file", path).Msg("no cache file yet; starting empty")
	default:
		aside := fmt.Sprintf("%s.corrupt-%s", path, now.UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			log.Error().Err(err).AnErr("rename_error", rerr).Str("file", path).Msg("cache file unreadable and could not be moved aside; starting empty")
			return
		}
		log.Error().Err(err).Str("file", path).Str("moved_to", aside).Msg("cache file unreadable; moved aside, starting empty")
	}
}

// Persist saves the cache to path every interval and once more when ctx is
// done. Save errors are logged and counted; they never stop the gateway.
func (c *Cache) Persist(ctx context.Context, path string, interval time.Duration, log zerolog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := c.Save(path); err != nil {
				log.Error().Err(err).Msg("final cache save failed")
			} else {
				log.Info().Str("file", path).Msg("cache saved")
			}
			return nil
		case <-t.C:
			if err := c.Save(path); err != nil {
				log.Error().Err(err).Msg("cache save failed")
			}
		}
	}
}
