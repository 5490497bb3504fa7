package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// TestBackup copies a database in use: the copy opens as a store with
// the same accounts, while the original stays open and writable.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "starling.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := auth.CreateAccount(ctx, s, jid.MustParse("alice@example.org"), "pw", auth.MinIterations); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "copy.db")
	if err := sqlite.Backup(ctx, path, dest); err != nil {
		t.Fatal(err)
	}
	if err := auth.CreateAccount(ctx, s, jid.MustParse("bob@example.org"), "pw", auth.MinIterations); err != nil {
		t.Fatalf("writing after the backup: %v", err)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copy: %v, %v", fi, err)
	}
	c, err := sqlite.Open(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	users, err := c.ListAccounts(ctx, "example.org")
	if err != nil || len(users) != 1 || users[0] != "alice" {
		t.Errorf("accounts in the copy: %q, %v", users, err)
	}
	if err := sqlite.Backup(ctx, path, dest); err == nil {
		t.Error("a backup over an existing file succeeded")
	}
}
