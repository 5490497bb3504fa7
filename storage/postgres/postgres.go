// Package postgres is the PostgreSQL storage backend: the SQL core of
// storage/internal/sqlstore with PostgreSQL's dialect, on a pgx connection
// pool. Tables live in the first schema of the DSN's search_path.
package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
)

// Store is a storage.Store on a PostgreSQL database.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database at dsn (a URL or keyword/value string) and
// applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := pgxDB{pgxQuerier{pool}, pool}
	s := &Store{Store: sqlstore.New(dialect{}, db, db), pool: pool}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
