// Package pgtest gives tests a throwaway PostgreSQL schema or database on
// the server named by STARLING_TEST_POSTGRES.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the server's DSN, such as
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvDSN = "STARLING_TEST_POSTGRES"

// DSN creates a fresh schema, dropped with everything in it when the test
// ends, and returns a DSN whose search_path selects it. Without
// STARLING_TEST_POSTGRES the test is skipped (fails under
// STARLING_REQUIRE_ALL=1).
func DSN(t testing.TB) string {
	t.Helper()
	base := baseDSN(t)
	name := randomName()
	exec(t, base, "CREATE SCHEMA "+name)
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA "+name+" CASCADE") })
	return withParam(t, base, "search_path", name)
}

// Database creates a fresh database, dropped when the test ends, and
// returns its DSN. Use it where a schema is not enough, e.g. for a server
// binary. Skips like DSN.
func Database(t testing.TB) string {
	t.Helper()
	base := baseDSN(t)
	name := randomName()
	exec(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { exec(t, base, "DROP DATABASE "+name+" WITH (FORCE)") })
	return withParam(t, base, "dbname", name)
}

func baseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("STARLING_REQUIRE_ALL") == "1" {
			t.Fatal(EnvDSN + " is not set, and STARLING_REQUIRE_ALL=1 forbids skipping")
		}
		t.Skip(EnvDSN + " is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL test")
	}
	return dsn
}

// randomName returns a lowercase identifier that needs no quoting.
func randomName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "starling_test_" + hex.EncodeToString(b)
}

// exec runs one statement on its own connection. It does not use the test's
// context, which is already done when cleanups run.
func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// withParam sets one connection parameter in a URL or keyword/value DSN.
func withParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " " + key + "=" + value // the last setting wins
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvDSN, err)
	}
	if key == "dbname" {
		u.Path = "/" + value
		u.RawPath = ""
	} else {
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
	}
	return u.String()
}
