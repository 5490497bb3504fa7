package server

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestAdminSocketMode: the admin socket never exists at its path with a
// mode other than 0600, even with a umask of 0 in a data directory anyone
// may enter (issue 10 part 5): it is made in a private directory and moved
// into place, replacing a stale one; closing removes it.
func TestAdminSocketMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "admin.sock")
	if err := os.WriteFile(path, nil, 0o666); err != nil { // stale
		t.Fatal(err)
	}

	hooked := false
	beforeAdminRename = func(tmp string) {
		hooked = true
		if fi, err := os.Stat(filepath.Dir(tmp)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("private directory: %v, %v", fi.Mode(), err)
		}
		if fi, err := os.Stat(tmp); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
			t.Errorf("socket before the rename: %v, %v", fi.Mode(), err)
		}
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("the stale file was touched before the rename: %v", err)
		}
	}
	defer func() { beforeAdminRename = nil }()

	ln, err := listenAdmin(path)
	if err != nil {
		t.Fatal(err)
	}
	if !hooked {
		t.Fatal("the socket was not moved into place")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("admin socket: %v, %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data directory holds %d entries, want only admin.sock", len(entries))
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := listenAdmin(path); err == nil {
		t.Error("a second server took the socket of a running one")
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}
