package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is SQLite's sqlstore.Dialect: ? parameters, times as Unix
// seconds or milliseconds, lists as JSON text, and no row locks (the one
// writer connection, whose transactions begin IMMEDIATE, excludes every
// other writer).
type dialect struct{}

func (dialect) Name() string   { return "sqlite" }
func (dialect) Numbered() bool { return false }
func (dialect) Lock(sqlstore.LockMode) string {
	return ""
}

func (dialect) Time(t time.Time, unit time.Duration) any {
	if unit == time.Second {
		return t.Unix()
	}
	return t.UnixMilli()
}

func (dialect) ScanTime(dst *time.Time, unit time.Duration) sql.Scanner {
	return unixTime{dst, unit}
}

// unixTime scans Unix seconds or milliseconds into a time in UTC.
type unixTime struct {
	dst  *time.Time
	unit time.Duration
}

func (u unixTime) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("stored time %v (%T): want an integer", src, src)
	}
	if u.unit == time.Second {
		*u.dst = time.Unix(v, 0).UTC()
	} else {
		*u.dst = time.UnixMilli(v).UTC()
	}
	return nil
}

func (dialect) Strings(v []string) (any, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func (dialect) StringsJSON(column string) string { return column }

func (dialect) IsConflict(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) &&
		(e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

func (dialect) IsForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// LockMigrations does nothing: the transaction began IMMEDIATE.
func (dialect) LockMigrations(context.Context, sqlstore.Querier) error { return nil }
