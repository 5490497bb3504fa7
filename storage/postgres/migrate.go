package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/starling-xmpp/starling/storage/internal/migration"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies every pending migration, each in its own transaction.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migration.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	for {
		applied, err := migrateStep(ctx, pool, ms)
		if err != nil || !applied {
			return err
		}
	}
}

// migrateStep applies the first pending migration and reports whether there
// was one. It fails if the database records a version this build lacks.
func migrateStep(ctx context.Context, pool *pgxpool.Pool, ms []migration.Migration) (applied bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, _ := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		done := make(map[int]bool)
		for _, v := range versions {
			if v < 1 || v > len(ms) {
				return fmt.Errorf("database has schema version %d, newer than this build of Starling knows (1..%d)", v, len(ms))
			}
			done[v] = true
		}
		for _, m := range ms {
			if done[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d: %w", m.Version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.Version); err != nil {
				return fmt.Errorf("migration %d: %w", m.Version, err)
			}
			applied = true
			return nil
		}
		return nil
	})
	return applied, err
}
