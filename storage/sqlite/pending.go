package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
)

// Pending returns the migrations Open would apply to the database at path,
// in order, as "aggregate/NNNN_what", without applying them: the file is
// opened read-only and nothing is written. A file that does not exist is
// an error (matching fs.ErrNotExist): Open would create it.
func Pending(ctx context.Context, path string) ([]string, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	ro := sqlstore.SQLDB(db, &sql.TxOptions{ReadOnly: true})
	pending, err := sqlstore.New(dialect{}, ro, ro).Pending(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return pending, nil
}
