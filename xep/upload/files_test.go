package upload

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// files returns Files on a fresh SQLite store with the accounts alice and
// bob of example.org, and an HTTPS server for them.
func files(t testing.TB) (*Files, storage.Store, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, user := range []string{"alice", "bob"} {
		if err := store.CreateAccount(ctx, storage.Account{Host: "example.org", Username: user, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	f := &Files{Dir: t.TempDir(), Store: store, Key: []byte("key"), Log: slog.New(slog.DiscardHandler)}
	mux := http.NewServeMux()
	mux.Handle(Path, f)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return f, store, srv
}

func addSlot(t *testing.T, store storage.Store, user string, size int64, created time.Time) storage.Upload {
	t.Helper()
	u := storage.Upload{ID: newID(), Host: "example.org", Username: user, Name: "f.bin", Size: size, Created: created}
	if err := store.AddUpload(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// reserveSlot hands out a slot to user, as a slot request does.
func reserveSlot(t testing.TB, f *Files, user string, size int64, now time.Time) storage.Upload {
	t.Helper()
	u := storage.Upload{ID: newID(), Host: "example.org", Username: user, Name: "f.bin", Size: size, Created: now}
	if !f.reserve(u, now.Add(slotLifetime), now, func(int64) bool { return true }) {
		t.Fatal("slot not reserved")
	}
	return u
}

// TestPutToken: a token is good for its slot only, until it expires.
func TestPutToken(t *testing.T) {
	f, _, srv := files(t)
	now := time.Now()
	u := reserveSlot(t, f, "alice", 3, now)
	other := reserveSlot(t, f, "alice", 3, now)
	put := func(u storage.Upload, token string) int {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+Path+u.ID+"/f.bin?token="+token, strings.NewReader("abc"))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put(u, f.sign(u, now.Add(-time.Second))); got != http.StatusForbidden {
		t.Errorf("expired token: %d", got)
	}
	if got := put(other, f.sign(u, now.Add(time.Minute))); got != http.StatusForbidden {
		t.Errorf("another slot's token: %d", got)
	}
	f2 := &Files{Key: []byte("another key")}
	if got := put(u, f2.sign(u, now.Add(time.Minute))); got != http.StatusForbidden {
		t.Errorf("token of another key (before a restart): %d", got)
	}
	if got := put(u, f.sign(u, now.Add(time.Minute))); got != http.StatusCreated {
		t.Errorf("good token: %d", got)
	}
}

// TestPutSlowLoris: a PUT whose body stalls is cut off after
// IdleTimeout, its partial file removed, while other requests are
// served.
func TestPutSlowLoris(t *testing.T) {
	f, _, srv := files(t)
	f.IdleTimeout = 300 * time.Millisecond
	now := time.Now()
	u := reserveSlot(t, f, "alice", 1000, now)
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s%s/f.bin?token=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s", Path, u.ID, f.sign(u, now.Add(time.Minute)), strings.Repeat("a", 10))

	// Meanwhile, another upload goes through.
	v := reserveSlot(t, f, "bob", 3, now)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+Path+v.ID+"/f.bin?token="+f.sign(v, now.Add(time.Minute)), strings.NewReader("abc"))
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("another PUT: %v %v", resp, err)
	}
	resp.Body.Close()

	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("stalled PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled PUT: %s", resp.Status)
	}
	if _, err := os.Stat(f.path(u) + ".part"); !os.IsNotExist(err) {
		t.Errorf("the partial file is left: %v", err)
	}
	if _, err := os.Stat(f.path(u)); !os.IsNotExist(err) {
		t.Errorf("a file was stored: %v", err)
	}
}

// TestPutTrickle: a body that keeps coming, but slower than MinRate,
// is cut off at IdleTimeout + size/MinRate.
func TestPutTrickle(t *testing.T) {
	f, _, srv := files(t)
	f.IdleTimeout, f.MinRate = 200*time.Millisecond, 1<<20
	now := time.Now()
	u := reserveSlot(t, f, "alice", 1000, now)
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s%s/f.bin?token=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", Path, u.ID, f.sign(u, now.Add(time.Minute)))
	// One byte at a time, each well within IdleTimeout, until the
	// server answers.
	answered := make(chan *http.Response, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, _ := http.ReadResponse(bufio.NewReader(conn), nil)
		answered <- resp
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case resp := <-answered:
			if resp == nil || resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("trickled PUT: %v", resp)
			}
			return
		case <-tick.C:
			conn.Write([]byte("a"))
		}
	}
}

// TestExpire: files and slots older than the limit go; others stay.
func TestExpire(t *testing.T) {
	f, store, _ := files(t)
	ctx := context.Background()
	now := time.Now()
	old, recent := addSlot(t, store, "alice", 1, now.Add(-48*time.Hour)), addSlot(t, store, "alice", 1, now)
	unused := addSlot(t, store, "bob", 1, now.Add(-48*time.Hour)) // never uploaded
	for _, u := range []storage.Upload{old, recent} {
		os.MkdirAll(filepath.Dir(f.path(u)), 0o700)
		if err := os.WriteFile(f.path(u), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := f.Expire(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Expire: %d, %v; want 2", n, err)
	}
	for _, u := range []storage.Upload{old, unused} {
		if _, err := store.Upload(ctx, u.ID); err == nil {
			t.Errorf("slot %s kept", u.ID)
		}
	}
	if _, err := os.Stat(f.path(old)); !os.IsNotExist(err) {
		t.Errorf("expired file kept: %v", err)
	}
	if _, err := os.Stat(f.path(recent)); err != nil {
		t.Errorf("recent file: %v", err)
	}
}

// TestClean: at start, the files of accounts deleted while the server
// was down go, and partial uploads.
func TestClean(t *testing.T) {
	f, store, _ := files(t)
	ctx := context.Background()
	write := func(path string) {
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := addSlot(t, store, "alice", 1, time.Now())
	write(f.path(a))
	write(f.path(a) + "2.part")
	write(filepath.Join(f.accountDir("example.org", "gone"), newID()))
	write(filepath.Join(f.accountDir("example.org", ".."), newID()))
	if err := f.Clean(ctx, store); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.path(a)); err != nil {
		t.Errorf("alice's file: %v", err)
	}
	for _, p := range []string{f.path(a) + "2.part", f.accountDir("example.org", "gone"), f.accountDir("example.org", "..")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s kept: %v", p, err)
		}
	}
	if !strings.HasPrefix(f.accountDir("example.org", ".."), filepath.Join(f.Dir, "example.org")+string(filepath.Separator)) {
		t.Errorf("the directory of user '..' is %s", f.accountDir("example.org", ".."))
	}
}

// TestCheckName: names that could leave the directory or confuse a
// terminal are refused.
func TestCheckName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "../etc/passwd", `..\x`, "a/b", "a\tb", "a\x7fb", "a\u202eb", strings.Repeat("a", 256), "\xff"} {
		if checkName(name) == nil {
			t.Errorf("%q accepted", name)
		}
	}
	for _, name := range []string{"photo.jpg", "été 2026.png", "..hidden", "a..b", strings.Repeat("a", 255)} {
		if err := checkName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// BenchmarkPut1MiB and BenchmarkGet1MiB: one slot's file through the
// handler over TLS on loopback, as a client does it.
func BenchmarkPut1MiB(b *testing.B) {
	f, _, srv := files(b)
	data := make([]byte, 1<<20)
	hc := srv.Client()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		u := reserveSlot(b, f, "alice", int64(len(data)), time.Now())
		req, _ := http.NewRequest(http.MethodPut, srv.URL+Path+u.ID+"/f.bin?token="+f.sign(u, time.Now().Add(time.Minute)), bytes.NewReader(data))
		b.StartTimer()
		resp, err := hc.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			b.Fatal(resp, err)
		}
		resp.Body.Close()
	}
}

func BenchmarkGet1MiB(b *testing.B) {
	f, store, srv := files(b)
	data := make([]byte, 1<<20)
	u := storage.Upload{ID: newID(), Host: "example.org", Username: "alice", Name: "f.bin", Size: int64(len(data)), Created: time.Now()}
	if err := store.AddUpload(context.Background(), u); err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(f.path(u)), 0o700)
	if err := os.WriteFile(f.path(u), data, 0o600); err != nil {
		b.Fatal(err)
	}
	hc := srv.Client()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Get(srv.URL + Path + u.ID + "/f.bin")
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatal(resp, err)
		}
		if n, _ := io.Copy(io.Discard, resp.Body); n != int64(len(data)) {
			b.Fatal(n)
		}
		resp.Body.Close()
	}
}

// TestReserve: an account holds at most maxPending slots whose files have
// not come, each counted until it expires.
func TestReserve(t *testing.T) {
	f := &Files{}
	now := time.Now()
	var seen int64
	for range maxPending {
		reserveSlot(t, f, "alice", 10, now)
	}
	u := storage.Upload{ID: newID(), Host: "example.org", Username: "alice", Size: 10}
	if f.reserve(u, now.Add(slotLifetime), now, func(int64) bool { return true }) {
		t.Errorf("slot %d reserved", maxPending+1)
	}
	v := storage.Upload{ID: newID(), Host: "example.org", Username: "bob", Size: 10}
	if !f.reserve(v, now.Add(slotLifetime), now, func(p int64) bool { seen = p; return true }) || seen != 0 {
		t.Errorf("bob's slot: pending %d", seen)
	}
	later := now.Add(slotLifetime + time.Second)
	if !f.reserve(u, later.Add(slotLifetime), later, func(p int64) bool { seen = p; return true }) || seen != 0 {
		t.Errorf("alice's slot once the others expired: pending %d", seen)
	}
	w := storage.Upload{ID: newID(), Host: "example.org", Username: "alice", Size: 10}
	if f.reserve(w, later.Add(slotLifetime), later, func(p int64) bool { seen = p; return false }) || seen != 10 {
		t.Errorf("a refused slot: pending %d", seen)
	}
}
