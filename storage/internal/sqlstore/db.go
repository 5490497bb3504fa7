package sqlstore

import (
	"context"
	"database/sql"
)

// DB is what the core needs of a database: database/sql's through SQLDB,
// or a backend's own driver (PostgreSQL's pgx pool, whose stdlib adapter
// costs about 15% on the write paths). A Row's Scan reports a missing row
// with sql.ErrNoRows.
type DB interface {
	Querier
	// Begin starts a write transaction or, with snapshot, a read-only one
	// whose statements all see one snapshot.
	Begin(ctx context.Context, snapshot bool) (Tx, error)
}

// Querier runs statements, written in the dialect's parameter markers.
type Querier interface {
	// Exec returns the number of rows affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Tx is a transaction; Rollback after Commit does nothing.
type Tx interface {
	Querier
	Commit() error
	Rollback() error
}

// Rows is the result of Query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the result of QueryRow.
type Row interface {
	Scan(dest ...any) error
}

// SQLDB adapts a database/sql pool; snapshot are the options of a
// read-only transaction that sees one snapshot.
func SQLDB(db *sql.DB, snapshot *sql.TxOptions) DB {
	return sqlDB{sqlQuerier{db}, db, snapshot}
}

type sqlQuerier struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	return q.q.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ r *sql.Rows }

func (r sqlRows) Next() bool             { return r.r.Next() }
func (r sqlRows) Scan(dest ...any) error { return r.r.Scan(dest...) }
func (r sqlRows) Err() error             { return r.r.Err() }
func (r sqlRows) Close()                 { r.r.Close() }

type sqlDB struct {
	sqlQuerier
	db       *sql.DB
	snapshot *sql.TxOptions
}

func (d sqlDB) Begin(ctx context.Context, snapshot bool) (Tx, error) {
	var opts *sql.TxOptions
	if snapshot {
		opts = d.snapshot
	}
	tx, err := d.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return sqlTx{sqlQuerier{tx}, tx}, nil
}

type sqlTx struct {
	sqlQuerier
	tx *sql.Tx
}

func (t sqlTx) Commit() error   { return t.tx.Commit() }
func (t sqlTx) Rollback() error { return t.tx.Rollback() }
