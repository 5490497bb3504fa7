package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithParam(t *testing.T) {
	tests := []struct{ dsn, key, value, want string }{
		{"postgres://u@h:5432/test?sslmode=disable", "search_path", "s1", "postgres://u@h:5432/test?search_path=s1&sslmode=disable"},
		{"postgres://u@h:5432/test?sslmode=disable", "dbname", "d1", "postgres://u@h:5432/d1?sslmode=disable"},
		{"postgresql://u@h/test", "dbname", "d1", "postgresql://u@h/d1"},
		{"host=h dbname=test", "dbname", "d1", "host=h dbname=test dbname=d1"},
		{"host=h dbname=test", "search_path", "s1", "host=h dbname=test search_path=s1"},
	}
	for _, tt := range tests {
		if got := withParam(t, tt.dsn, tt.key, tt.value); got != tt.want {
			t.Errorf("withParam(%q, %s, %s) = %q, want %q", tt.dsn, tt.key, tt.value, got, tt.want)
		}
	}
}

// query runs a one-value query on a new connection.
func query(t *testing.T, dsn, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestDSN(t *testing.T) {
	base := baseDSN(t)
	var schema string
	t.Run("use", func(t *testing.T) {
		dsn := DSN(t)
		schema = query(t, dsn, `SELECT current_schema()`)
		if !strings.HasPrefix(schema, "starling_test_") {
			t.Fatalf("current_schema() = %q", schema)
		}
		exec(t, dsn, `CREATE TABLE t (x int)`) // dropped by CASCADE
	})
	if n := query(t, base, `SELECT count(*)::text FROM pg_namespace WHERE nspname = $1`, schema); n != "0" {
		t.Errorf("schema %s still exists after the test", schema)
	}
}

func TestDatabase(t *testing.T) {
	base := baseDSN(t)
	var (
		db   string
		conn *pgx.Conn
	)
	t.Run("use", func(t *testing.T) {
		dsn := Database(t)
		db = query(t, dsn, `SELECT current_database()`)
		if !strings.HasPrefix(db, "starling_test_") {
			t.Fatalf("current_database() = %q", db)
		}
		// A connection still open must not stop the drop.
		var err error
		if conn, err = pgx.Connect(context.Background(), dsn); err != nil {
			t.Fatal(err)
		}
	})
	if conn != nil {
		defer conn.Close(context.Background())
	}
	if n := query(t, base, `SELECT count(*)::text FROM pg_database WHERE datname = $1`, db); n != "0" {
		t.Errorf("database %s still exists after the test", db)
	}
}
