package ha

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LoadTerm reads the term a gateway saved at path with SaveTerm; 0 when
// the file does not exist (a first start).
func LoadTerm(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ha term file: %w", err)
	}
	t, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ha term file %s: %q is not a term: %w", path, b, err)
	}
	return t, nil
}

// SaveTerm writes term to path atomically: a temporary file in the same
// directory, synced, renamed over path, and the directory synced. A crash
// leaves the old term or the new one, never neither.
func SaveTerm(path string, term uint64) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("ha term file: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename: nothing to remove
	_, err = f.WriteString(strconv.FormatUint(term, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("ha term file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
