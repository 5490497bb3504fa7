package postgres

import (
	"fmt"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/pgtest"
)

// TestPending: the migrations a database lacks are listed without being
// applied.
func TestPending(t *testing.T) {
	want := latest(t)
	total := 0
	for _, n := range want {
		total += n
	}
	dsn := pgtest.DSN(t)
	p, err := Pending(t.Context(), dsn)
	if err != nil || len(p) != total || p[0] != "accounts/0001_accounts" {
		t.Fatalf("Pending of an empty schema: %q, %v; want all %d, accounts first", p, err, total)
	}
	if p, err := Pending(t.Context(), dsn); err != nil || len(p) != total {
		t.Fatalf("Pending applied something: %q, %v", p, err)
	}
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if p, err := Pending(t.Context(), dsn); err != nil || len(p) != 0 {
		t.Errorf("Pending of a current database: %q, %v; want none", p, err)
	}
	exec(t, dsn, fmt.Sprintf(`DELETE FROM schema_versions WHERE aggregate = 'roster' AND version = %d`, want["roster"]))
	p, err = Pending(t.Context(), dsn)
	if err != nil || len(p) != 1 || !strings.HasPrefix(p[0], fmt.Sprintf("roster/%04d_", want["roster"])) {
		t.Errorf("Pending with roster's last migration undone: %q, %v", p, err)
	}
	if _, err := Pending(t.Context(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=5"); err == nil {
		t.Error("Pending of an unreachable server succeeded")
	}
}
