package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPending: the migrations a database lacks are listed without being
// applied, for new, legacy, current and newer databases.
func TestPending(t *testing.T) {
	want := latest(t)
	total := 0
	for _, n := range want {
		total += n
	}
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.db")
	if _, err := Pending(t.Context(), missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Pending of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("Pending created the missing file")
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Pending(t.Context(), empty)
	if err != nil || len(p) != total || p[0] != "accounts/0001_accounts" {
		t.Errorf("Pending of an empty file: %q, %v; want all %d, accounts first", p, err, total)
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("Pending wrote to the empty file: %v, %v", fi, err)
	}

	path := filepath.Join(dir, "current.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if p, err := Pending(t.Context(), path); err != nil || len(p) != 0 {
		t.Errorf("Pending of a current database: %q, %v; want none", p, err)
	}
	exec(t, path, fmt.Sprintf(`DELETE FROM schema_versions WHERE aggregate = 'roster' AND version = %d`, want["roster"]))
	p, err = Pending(t.Context(), path)
	if err != nil || len(p) != 1 || !strings.HasPrefix(p[0], fmt.Sprintf("roster/%04d_", want["roster"])) {
		t.Errorf("Pending with roster's last migration undone: %q, %v", p, err)
	}
	exec(t, path, fmt.Sprintf(`INSERT INTO schema_versions VALUES ('roster', %d)`, want["roster"]+1))
	if _, err := Pending(t.Context(), path); err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Errorf("Pending of a newer database: %v", err)
	}

	// The single sequence of before: version 1 was the accounts' 0001.
	old := filepath.Join(dir, "legacy.db")
	legacyDB(t, old, 1, "")
	p, err = Pending(t.Context(), old)
	if err != nil || len(p) != total-1 || slices.Contains(p, "accounts/0001_accounts") {
		t.Errorf("Pending of a legacy database at version 1: %q, %v", p, err)
	}
}
