package ha_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mdgate/mdgate/ha"
)

func TestTermFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "term")
	if got, err := ha.LoadTerm(path); got != 0 || err != nil {
		t.Fatalf("LoadTerm(missing) = %d, %v, want 0, nil", got, err)
	}
	for _, term := range []uint64{1, 4, 65535} {
		if err := ha.SaveTerm(path, term); err != nil {
			t.Fatal(err)
		}
		if got, err := ha.LoadTerm(path); got != term || err != nil {
			t.Errorf("LoadTerm after SaveTerm(%d) = %d, %v", term, got, err)
		}
	}
	if err := os.WriteFile(path, []byte("seven"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ha.LoadTerm(path); err == nil {
		t.Errorf("LoadTerm(%q) = nil error, want one", "seven")
	}
	if err := ha.SaveTerm(filepath.Join(path, "under-a-file"), 1); err == nil {
		t.Errorf("SaveTerm under a file = nil error, want one")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files left beside the term file, want none", len(entries)-1)
	}
}
