package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// setRosterAndVCard has alice add bob to her roster in a group and set
// her vCard, over XMPP.
func setRosterAndVCard(t *testing.T, c *xmpptest.Client) {
	t.Helper()
	c.Send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bobby'><group>Friends</group></item></query></iq>")
	c.Send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>")
	for got := 0; got < 2; {
		el := c.MustNext()
		if el.Name.Local == "iq" && (el.AttrValue("id") == "r1" || el.AttrValue("id") == "v1") {
			if el.AttrValue("type") != "result" {
				t.Fatalf("%s", el.Raw)
			}
			got++
		}
	}
}

// checkRosterAndVCard logs alice in and checks what setRosterAndVCard set.
func checkRosterAndVCard(t *testing.T, addr, password string) {
	t.Helper()
	c := xmpptest.Login(t, addr, "localhost", "alice", password, "SCRAM-SHA-256", "check")
	c.Send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
	if el := c.MustNext(); !strings.Contains(string(el.Raw), "bob@localhost") || !strings.Contains(string(el.Raw), "<group>Friends</group>") {
		t.Errorf("roster: %s", el.Raw)
	}
	c.Send("<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>")
	if el := c.MustNext(); !strings.Contains(string(el.Raw), "Alice Liddell") {
		t.Errorf("vCard: %s", el.Raw)
	}
}

// TestBackupExportImport: `starling backup` copies the database and the
// generated certificates of a running server into a directory another
// server runs from; `starling export` and `starling import` move alice
// to another server with her password, roster and vCard (issue 17 part 5).
func TestBackupExportImport(t *testing.T) {
	a := testbin.NewSetup(t, "")
	dest := filepath.Join(t.TempDir(), "backup")
	if out, ok := starling(t, "", "backup", "--config", a.Config, dest); ok || !strings.Contains(out, "no database to back up") {
		t.Errorf("backup with no database: %s", out)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("backup with no database created its directory")
	}
	if out, ok := starling(t, "alice-secret\n", "user", "add", "--config", a.Config, "alice@localhost"); !ok {
		t.Fatalf("user add: %s", out)
	}
	if out, ok := starling(t, "bob-secret\n", "user", "add", "--config", a.Config, "bob@localhost"); !ok {
		t.Fatalf("user add: %s", out)
	}
	srv := testbin.Start(t, testbin.Build(t), a.Config)
	alice := xmpptest.Login(t, a.StartTLS, "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
	setRosterAndVCard(t, alice)

	// Backup, while the server runs.
	out, ok := starling(t, "", "backup", "--config", a.Config, dest)
	if !ok {
		t.Fatalf("backup: %s", out)
	}
	for _, f := range []string{"starling.db", "certs/localhost.crt", "certs/localhost.key"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("backup: %v\n%s", err, out)
		}
	}
	if _, ok := starling(t, "", "backup", "--config", a.Config, dest); ok {
		t.Error("a backup into an existing directory succeeded")
	}

	// Export, while the server runs.
	file := filepath.Join(t.TempDir(), "export.xml")
	out, ok = starling(t, "", "export", "--config", a.Config, file)
	if !ok || !strings.Contains(out, "2 accounts, 1 roster items, 1 vCards") {
		t.Fatalf("export: %s", out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file: %v, %v", fi, err)
	}
	srv.Stop()

	// The backup is a data directory a server runs from.
	restored := testbin.NewSetup(t, "")
	restored.DataDir = dest
	restored.Write(t, "")
	testbin.Start(t, testbin.Build(t), restored.Config)
	checkRosterAndVCard(t, restored.StartTLS, "alice-secret")

	// The export, imported into an empty server.
	b := testbin.NewSetup(t, "")
	out, ok = starling(t, "", "import", "--config", b.Config, file)
	if !ok || !strings.Contains(out, "2 accounts, 1 roster items, 1 vCards") {
		t.Fatalf("import: %s", out)
	}
	out, ok = starling(t, "", "import", "--config", b.Config, file)
	if !ok || !strings.Contains(out, "0 accounts, 2 skipped") || !strings.Contains(out, "exists already") {
		t.Fatalf("second import: %s", out)
	}
	testbin.Start(t, testbin.Build(t), b.Config)
	checkRosterAndVCard(t, b.StartTLS, "alice-secret")
}

// TestBackupPostgres: with PostgreSQL, backup copies nothing and says
// which pg_dump to run.
func TestBackupPostgres(t *testing.T) {
	s := testbin.NewSetup(t, "[storage]\ndriver = \"postgres\"\ndsn = \"postgres://starling@db.example/starling?sslmode=require\"\n")
	dest := filepath.Join(t.TempDir(), "backup")
	out, ok := starling(t, "", "backup", "--config", s.Config, dest)
	if ok {
		t.Fatalf("backup succeeded with PostgreSQL: %s", out)
	}
	want := "pg_dump --format=custom --file=" + dest + ".pgdump --dbname='postgres://starling@db.example/starling?sslmode=require'"
	if !strings.Contains(out, want) {
		t.Errorf("backup does not say %q:\n%s", want, out)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("backup created its directory")
	}
}
