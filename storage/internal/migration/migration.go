// Package migration reads a storage backend's embedded schema migrations:
// files named NNNN_what.sql, numbered 1..n without gaps, applied in order
// and never edited once released (new changes are new files).
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Migration is one schema change.
type Migration struct {
	Version int
	Name    string // the file's name without .sql: 0002_disabled
	SQL     string
}

// Load reads dir/*.sql from fsys, checking that the versions run 1..n.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql") // sorted
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		num, _, _ := strings.Cut(path.Base(name), "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: want version %d", name, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(path.Base(name), ".sql"), SQL: string(b)})
	}
	return ms, nil
}
