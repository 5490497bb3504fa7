package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
)

// Pending connects to the database at dsn and returns the migrations Open
// would apply, in order, as "aggregate/NNNN_what", without applying them:
// it only reads. An error when the database cannot be reached.
func Pending(ctx context.Context, dsn string) ([]string, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := pgxDB{pgxQuerier{pool}, pool}
	pending, err := sqlstore.New(dialect{}, db, db).Pending(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pending, nil
}
