package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/starling-xmpp/starling/storage/internal/migration"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies every pending migration, each in its own transaction.
// Write transactions begin IMMEDIATE, so concurrent starters serialize.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migration.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	for {
		applied, err := migrateStep(ctx, db, ms)
		if err != nil || !applied {
			return err
		}
	}
}

// migrateStep applies the first pending migration and reports whether there
// was one. It fails if the database records a version this build lacks.
func migrateStep(ctx context.Context, db *sql.DB, ms []migration.Migration) (applied bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return false, fmt.Errorf("read schema_migrations: %w", err)
	}
	done := make(map[int]bool)
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return false, err
		}
		if v < 1 || v > len(ms) {
			rows.Close()
			return false, fmt.Errorf("database has schema version %d, newer than this build of Starling knows (1..%d)", v, len(ms))
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return false, fmt.Errorf("migration %d: %w", m.Version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, m.Version); err != nil {
			return false, fmt.Errorf("migration %d: %w", m.Version, err)
		}
		if err := tx.Commit(); err != nil {
			return false, fmt.Errorf("migration %d: %w", m.Version, err)
		}
		return true, nil
	}
	return false, tx.Commit()
}
