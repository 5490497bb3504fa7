package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
)

// dialect is PostgreSQL's sqlstore.Dialect: $n parameters, timestamptz,
// text[] lists, row locks by SELECT … FOR.
type dialect struct{}

func (dialect) Name() string   { return "postgres" }
func (dialect) Numbered() bool { return true }

func (dialect) Lock(m sqlstore.LockMode) string {
	switch m {
	case sqlstore.LockShare:
		return "FOR KEY SHARE"
	case sqlstore.LockWrite:
		return "FOR NO KEY UPDATE"
	}
	return "FOR UPDATE"
}

func (dialect) Time(t time.Time, unit time.Duration) any { return t.Truncate(unit) }

func (dialect) ScanTime(dst *time.Time, _ time.Duration) sql.Scanner { return utcTime{dst} }

// utcTime scans a timestamptz into a time in UTC.
type utcTime struct{ dst *time.Time }

func (u utcTime) Scan(src any) error {
	t, ok := src.(time.Time)
	if !ok {
		return fmt.Errorf("stored time %v (%T): want a timestamp", src, src)
	}
	*u.dst = t.UTC()
	return nil
}

func (dialect) Strings(v []string) (any, error) { return v, nil }

func (dialect) StringsJSON(column string) string { return "array_to_json(" + column + ")" }

func (dialect) IsConflict(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

func (dialect) IsForeignKey(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23503"
}

// migrationLock is the pg_advisory_xact_lock key that serialises
// concurrent starters ("starling" in ASCII).
const migrationLock = 0x737461726c696e67

func (dialect) LockMigrations(ctx context.Context, tx sqlstore.Querier) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}
