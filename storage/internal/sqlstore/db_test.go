package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestStmtCache runs statements on a pool of one connection (SQLite's
// writer), in transactions and outside them, with a cache smaller than
// the statements: a statement first met in a transaction must not wait
// for the connection the transaction holds, every statement's result is
// right whether it was prepared or not, and the cache stays bounded.
func TestStmtCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	d := sqlDB{sqlQuerier{newStmtCache(db, 3), nil}, db, nil}
	if _, err := d.Exec(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		tx, err := d.Begin(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			// Five statements, each its own query.
			q := fmt.Sprintf(`INSERT INTO t (k, v) VALUES (?, ?) /* %d */`, i)
			if _, err := tx.Exec(ctx, q, round*10+i, fmt.Sprint("v", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			q := fmt.Sprintf(`SELECT v FROM t WHERE k = ? /* %d */`, i)
			var v string
			if err := d.QueryRow(ctx, q, round*10+i).Scan(&v); err != nil || v != fmt.Sprint("v", i) {
				t.Fatalf("round %d: %s: %q, %v", round, q, v, err)
			}
		}
		rows, err := d.Query(ctx, `SELECT count(*) FROM t`)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for rows.Next() {
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		rows.Close()
		if n != (round+1)*5 {
			t.Fatalf("round %d: %d rows", round, n)
		}
		if got := d.c.lru.Len(); got > 3 || len(d.c.m) != got {
			t.Fatalf("round %d: %d statements cached, %d in the map", round, got, len(d.c.m))
		}
	}
	// A query that does not prepare is run unprepared, and fails as it
	// would anyway.
	if _, err := d.Exec(ctx, `INSERT INTO nosuchtable VALUES (1)`); err == nil {
		t.Fatal("insert into a missing table succeeded")
	}
}
