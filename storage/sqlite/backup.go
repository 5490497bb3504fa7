package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// Backup writes a copy of the database at path to dest with VACUUM INTO:
// one read transaction, so the copy is the database at one moment while a
// running server goes on writing (WAL lets it), compacted, with nothing
// left in a -wal file. The database is opened read-only; dest must not
// exist, and is created readable by its owner only.
func Backup(ctx context.Context, path, dest string) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	// VACUUM INTO takes an empty file: made here, so that it is private.
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	f.Close()
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		os.Remove(dest)
		return fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dest); err != nil {
		return errors.Join(fmt.Errorf("sqlite: backup of %s: %w", path, err), os.Remove(dest))
	}
	return nil
}
