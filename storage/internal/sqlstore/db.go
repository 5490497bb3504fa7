package sqlstore

import (
	"container/list"
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
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
// read-only transaction that sees one snapshot. Statements are prepared
// once and reused (stmtCache), which a driver without a statement cache
// of its own (SQLite's) would otherwise parse again at every call.
func SQLDB(db *sql.DB, snapshot *sql.TxOptions) DB {
	c := newStmtCache(db, maxStmts)
	return sqlDB{sqlQuerier{c, nil}, db, snapshot}
}

// maxStmts bounds each pool's prepared statements: the core has fewer
// distinct statements than that, and a query built from a request (an
// archive query's conditions) takes a slot only until it is the least
// recently used.
const maxStmts = 256

// sqlQuerier runs statements prepared by c, on the pool or, with tx, in
// that transaction.
type sqlQuerier struct {
	c  *stmtCache
	tx *sql.Tx
}

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	var (
		res sql.Result
		err error
	)
	switch st := q.stmt(ctx, query); {
	case st != nil:
		res, err = st.ExecContext(ctx, args...)
	case q.tx != nil:
		res, err = q.tx.ExecContext(ctx, query, args...)
	default:
		res, err = q.c.db.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	var (
		rows *sql.Rows
		err  error
	)
	switch st := q.stmt(ctx, query); {
	case st != nil:
		rows, err = st.QueryContext(ctx, args...)
	case q.tx != nil:
		rows, err = q.tx.QueryContext(ctx, query, args...)
	default:
		rows, err = q.c.db.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	switch st := q.stmt(ctx, query); {
	case st != nil:
		return st.QueryRowContext(ctx, args...)
	case q.tx != nil:
		return q.tx.QueryRowContext(ctx, query, args...)
	default:
		return q.c.db.QueryRowContext(ctx, query, args...)
	}
}

// stmt returns query's prepared statement, for the transaction if there
// is one (the same statement, already prepared on its connection but the
// first time), or nil to run query unprepared.
func (q sqlQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	if q.tx == nil {
		return q.c.get(ctx, query)
	}
	st := q.c.cached(query)
	if st == nil {
		return nil
	}
	return q.tx.StmtContext(ctx, st)
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
	// What a transaction ran unprepared is prepared now, while this
	// goroutine holds no connection (see stmtCache).
	d.c.preparePending(ctx)
	tx, err := d.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return sqlTx{sqlQuerier{d.c, tx}, tx}, nil
}

type sqlTx struct {
	sqlQuerier
	tx *sql.Tx
}

func (t sqlTx) Commit() error   { return t.tx.Commit() }
func (t sqlTx) Rollback() error { return t.tx.Rollback() }

// stmtCache holds a pool's prepared statements by query, the most
// recently used max of them. A statement is prepared on the pool
// (database/sql prepares it again on each connection that runs it, once)
// and used in a transaction through Tx.StmtContext, which reuses what
// its connection prepared. Preparing on the pool needs a connection of
// its own, which a transaction holding the pool's only one (SQLite's
// writer) would wait for forever: a statement first met in a transaction
// is run unprepared there and prepared before the next transaction
// begins. A query that fails to prepare is remembered as such and always
// run unprepared.
type stmtCache struct {
	db  *sql.DB
	max int

	mu      sync.Mutex // guards the fields below
	m       map[string]*list.Element
	lru     list.List // of *cachedStmt, most recently used first
	pending map[string]struct{}
	waiting atomic.Bool // pending is not empty
}

type cachedStmt struct {
	query string
	stmt  *sql.Stmt // nil: the query does not prepare
}

func newStmtCache(db *sql.DB, max int) *stmtCache {
	return &stmtCache{db: db, max: max, m: make(map[string]*list.Element), pending: make(map[string]struct{})}
}

// cached returns query's statement if it is prepared; if it is not known
// yet, it is marked for preparePending.
func (c *stmtCache) cached(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[query]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*cachedStmt).stmt
	}
	if len(c.pending) < c.max {
		c.pending[query] = struct{}{}
		c.waiting.Store(true)
	}
	return nil
}

// get returns query's statement, preparing it on the pool if it is not
// known yet; nil if it does not prepare.
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.preparePending(ctx)
	c.mu.Lock()
	if el, ok := c.m[query]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*cachedStmt).stmt
	}
	c.mu.Unlock()
	return c.prepare(ctx, query)
}

// preparePending prepares the statements transactions met unprepared.
func (c *stmtCache) preparePending(ctx context.Context) {
	if !c.waiting.Load() {
		return
	}
	c.mu.Lock()
	queries := make([]string, 0, len(c.pending))
	for q := range c.pending {
		queries = append(queries, q)
	}
	clear(c.pending)
	c.waiting.Store(false)
	c.mu.Unlock()
	for _, q := range queries {
		c.prepare(ctx, q)
	}
}

// prepare prepares query and caches the outcome, evicting the least
// recently used statement if the cache is full.
func (c *stmtCache) prepare(ctx context.Context, query string) *sql.Stmt {
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		if ctx.Err() != nil {
			return nil // not the query's fault: try again next time
		}
		st = nil
	}
	var evicted *sql.Stmt
	c.mu.Lock()
	if el, ok := c.m[query]; ok {
		// Prepared meanwhile by another goroutine: keep that one.
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		if st != nil {
			st.Close()
		}
		return el.Value.(*cachedStmt).stmt
	}
	if c.lru.Len() >= c.max {
		old := c.lru.Remove(c.lru.Back()).(*cachedStmt)
		delete(c.m, old.query)
		evicted = old.stmt
	}
	c.m[query] = c.lru.PushFront(&cachedStmt{query, st})
	c.mu.Unlock()
	if evicted != nil {
		// database/sql closes it once the statements running it and
		// the transactions using it are done.
		evicted.Close()
	}
	return st
}
