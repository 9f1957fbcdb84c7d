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
	"sync/atomic"
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
// at any point leaves the previous file intact. Every call is counted in
// mdgate_lvc_saves_total by result and recorded in FileStatus, a failure to
// create the temporary file included.
func (c *Cache) Save(path string) error {
	err := c.save(path)
	c.recordSave(path, err, c.cfg.Clock.Now())
	return err
}

// saveHook, when set (tests), runs at the start of every save.
var saveHook atomic.Pointer[func()]

func (c *Cache) save(path string) (err error) {
	if h := saveHook.Load(); h != nil {
		(*h)()
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("lvc save: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
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

// FileStatus is what the cache file has been through since start, for
// /healthz.
type FileStatus struct {
	Path        string     `json:"path"`
	Saves       uint64     `json:"saves"`                   // successful saves
	Failures    uint64     `json:"failures"`                // failed saves, every cause
	LastSave    *time.Time `json:"last_save,omitempty"`     // the last successful save
	LastError   string     `json:"last_error,omitempty"`    // the last failed save's error
	LastErrorAt *time.Time `json:"last_error_at,omitempty"` // ... and when
	Failing     bool       `json:"failing"`                 // the latest save failed
	MovedAside  string     `json:"moved_aside,omitempty"`   // where a corrupt file found at start was moved
}

// FileStatus returns what the cache file has been through: saves and
// failures, the last error, a corrupt file moved aside at start.
func (c *Cache) FileStatus() FileStatus {
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	return c.file
}

func (c *Cache) recordSave(path string, err error, now time.Time) {
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	c.file.Path = path
	c.file.Failing = err != nil
	if err != nil {
		c.met.saves.WithLabelValues("error").Inc()
		c.file.Failures++
		c.file.LastError, c.file.LastErrorAt = err.Error(), &now
		return
	}
	c.met.saves.WithLabelValues("ok").Inc()
	c.file.Saves++
	c.file.LastSave = &now
}

// CheckFile reports why path cannot be the cache file, before anything is
// loaded or saved: it is a directory or not a regular file, it cannot be
// read (permission denied), its directory is missing, or no file can be
// created there (permission denied, read-only file system: a save creates a
// temporary file beside path, so CheckFile creates and removes one). A
// missing file in a usable directory is fine: the first save creates it.
func CheckFile(path string) error {
	if path == "" {
		return errors.New("no path")
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory; want a file path, e.g. %s", path, filepath.Join(path, "cache.lvc"))
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	case err == nil:
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		f.Close()
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("directory %s does not exist (the gateway does not create it)", dir)
	}
	if err != nil {
		return err
	}
	if !di.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create files in %s: %w", dir, err)
	}
	tmp.Close()
	os.Remove(tmp.Name())
	return nil
}

func (c *Cache) encode(w *bufio.Writer) error {
	w.WriteString(fileMagic)
	var n uint64
	var rec []byte
	var err error
	write := func(m *tick.Message) {
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
	}
	// A topic with history is written as its retained updates, oldest
	// first, then its latest value unless that is the newest retained:
	// loading Updates them in file order, which rebuilds both.
	c.View().ascendEntries("", func(e *entry, m *tick.Message) {
		if e.hist == nil {
			write(m)
			return
		}
		var last *tick.Message
		historyOf(e, func(h *tick.Message) { write(h); last = h })
		if last == nil || last.Stamp != m.Stamp {
			write(m)
		}
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
// start. A corrupt one (ErrCorrupt: the file was read and is not a whole
// cache file) is logged, moved aside to path.corrupt-TIME
// (FileStatus.MovedAside), and the cache starts empty. Any other error
// (a directory, permission denied, an I/O error) is returned and nothing is
// moved: the gateway does not judge what it cannot read. So is a corrupt
// file that cannot be moved aside, which the next save would overwrite.
func (c *Cache) LoadOrQuarantine(path string, log zerolog.Logger, now time.Time) error {
	msgs, err := Load(path)
	switch {
	case err == nil:
		c.Restore(msgs)
		t, b := c.Len()
		log.Info().Str("file", path).Int("topics", t).Int64("bytes", b).Msg("cache loaded; values are marked stale until updated")
	case errors.Is(err, os.ErrNotExist):
		log.Info().Str("file", path).Msg("no cache file yet; starting empty")
	case errors.Is(err, ErrCorrupt):
		aside := fmt.Sprintf("%s.corrupt-%s", path, now.UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			return fmt.Errorf("%w; moving it aside: %v", err, rerr)
		}
		c.fileMu.Lock()
		c.file.Path, c.file.MovedAside = path, aside
		c.fileMu.Unlock()
		log.Error().Err(err).Str("file", path).Str("moved_to", aside).Msg("cache file corrupt; moved aside, starting empty")
	default:
		return err
	}
	return nil
}

// Persist saves the cache to path every interval and once more when ctx is
// done. That last save is bounded by final (the shutdown bound, counted
// from ctx's end; 0: no bound): past it Persist returns, the save carries
// on until the process exits, and the previous file stays whole. Save errors
// are logged and counted (mdgate_lvc_saves_total{result="error"},
// FileStatus); they never stop the gateway. The interval and the bound are
// timed by Config.Clock.
func (c *Cache) Persist(ctx context.Context, path string, interval, final time.Duration, log zerolog.Logger) error {
	if interval <= 0 {
		return fmt.Errorf("lvc persist: save interval %v: want more than 0", interval)
	}
	var ended atomic.Int64 // when ctx ended, unix ns
	stop := context.AfterFunc(ctx, func() { ended.Store(c.cfg.Clock.Now().UnixNano()) })
	defer stop()
	t := c.cfg.Clock.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return c.finalSave(path, final, ended.Load(), log)
		case <-t.C():
			if err := c.Save(path); err != nil {
				log.Error().Err(err).Msg("cache save failed")
			}
		}
	}
}

func (c *Cache) finalSave(path string, final time.Duration, endedNS int64, log zerolog.Logger) error {
	var bound <-chan time.Time
	if final > 0 {
		left := final
		if endedNS != 0 { // a periodic save may have run past ctx's end
			left -= c.cfg.Clock.Now().Sub(time.Unix(0, endedNS))
		}
		if left <= 0 {
			log.Error().Dur("bound", final).Msg("no time left for the final cache save within the shutdown bound; the last periodic save stands")
			return nil
		}
		timer := c.cfg.Clock.NewTimer(left)
		defer timer.Stop()
		bound = timer.C()
	}
	done := make(chan error, 1)
	go func() { done <- c.Save(path) }()
	select {
	case err := <-done:
		if err != nil {
			log.Error().Err(err).Msg("final cache save failed")
		} else {
			log.Info().Str("file", path).Msg("cache saved")
		}
	case <-bound:
		log.Error().Dur("bound", final).Str("file", path).Msg("final cache save still running at the shutdown bound; not waited for (the previous file stays whole)")
	}
	return nil
}
