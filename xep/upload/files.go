package upload

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// Files serves the uploaded files at Path (XEP-0363 §6): PUT with a
// slot's token, GET and HEAD for anyone with the URL, OPTIONS for CORS;
// and keeps the slots handed out until their files come.
// Each file is Dir/<host>/<account>/<id>; while it is being written,
// <id>.part.
type Files struct {
	Dir   string
	Store storage.Uploads
	// Key signs the PUT tokens; a restart makes a new one, so the slots
	// handed out before it can no longer be used.
	Key []byte
	Log *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// IdleTimeout cuts off a PUT whose body has not moved for that long
	// (0: 30 seconds); MinRate (0: 16 KiB/s) bounds the whole body's
	// time to IdleTimeout + size/MinRate, so a body that trickles in
	// (slow loris) does not hold its connection and file forever.
	IdleTimeout time.Duration
	MinRate     int64

	mu      sync.Mutex // guards pending and swept
	pending map[string]pendingSlot
	swept   int // len(pending) after the last sweep of expired slots
}

// pendingSlot is a slot handed out whose file has not come yet. Such
// slots are kept in memory, not in storage.Uploads: their tokens are good
// for this process only, and a slot request then costs no write to the
// database; the row is written when the file is complete.
type pendingSlot struct {
	u       storage.Upload
	expires time.Time
}

// maxPending is the most slots an account may hold whose files have not
// come yet.
const maxPending = 100

// reserve records u as handed out until expires if the account holds
// fewer than maxPending slots still pending at now and fits accepts the
// bytes of those slots; it reports whether it did.
func (f *Files) reserve(u storage.Upload, expires, now time.Time, fits func(pending int64) bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending == nil {
		f.pending = make(map[string]pendingSlot)
	}
	// Expired slots go now and then: when the map has doubled since.
	if len(f.pending) >= 2*f.swept+64 {
		for id, p := range f.pending {
			if now.After(p.expires) {
				delete(f.pending, id)
			}
		}
		f.swept = len(f.pending)
	}
	var bytes int64
	n := 0
	for _, p := range f.pending {
		if p.u.Host == u.Host && p.u.Username == u.Username && !now.After(p.expires) {
			bytes += p.u.Size
			n++
		}
	}
	if n >= maxPending || !fits(bytes) {
		return false
	}
	f.pending[u.ID] = pendingSlot{u, expires}
	return true
}

// slot returns the pending slot with id.
func (f *Files) slot(id string) (storage.Upload, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pending[id]
	return p.u, ok
}

// used forgets the pending slot with id, whose file has come.
func (f *Files) used(id string) {
	f.mu.Lock()
	delete(f.pending, id)
	f.mu.Unlock()
}

func (f *Files) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// sign returns the token of u's PUT URL, valid until expires: the expiry
// and an HMAC-SHA-256 over the slot's ID, size, content type and expiry.
func (f *Files) sign(u storage.Upload, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "-" + base64.RawURLEncoding.EncodeToString(f.mac(u, exp))
}

func (f *Files) mac(u storage.Upload, exp string) []byte {
	m := hmac.New(sha256.New, f.Key)
	m.Write([]byte(u.ID + "\x00" + strconv.FormatInt(u.Size, 10) + "\x00" + u.ContentType + "\x00" + exp))
	return m.Sum(nil)
}

// verify checks token for u at now.
func (f *Files) verify(u storage.Upload, token string, now time.Time) error {
	exp, sig, ok := strings.Cut(token, "-")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, f.mac(u, exp)) {
		return errors.New("the token is not valid for this slot")
	}
	if t, err := strconv.ParseInt(exp, 10, 64); err != nil || now.Unix() > t {
		return errors.New("the token has expired: request a new slot")
	}
	return nil
}

// accountDir is where an account's files are: its username escaped, so
// that no username names another directory.
func (f *Files) accountDir(host, username string) string {
	return filepath.Join(f.Dir, host, "@"+url.PathEscape(username))
}

func (f *Files) path(u storage.Upload) string {
	return filepath.Join(f.accountDir(u.Host, u.Username), u.ID)
}

// RemoveAccount removes an account's files.
func (f *Files) RemoveAccount(host, username string) error {
	return os.RemoveAll(f.accountDir(host, username))
}

// Expire removes the files of the slots created before t, then the
// slots, and returns how many it removed.
func (f *Files) Expire(ctx context.Context, t time.Time) (int, error) {
	f.mu.Lock()
	for id, p := range f.pending {
		if p.expires.Before(t) {
			delete(f.pending, id)
		}
	}
	f.swept = len(f.pending)
	f.mu.Unlock()
	n := 0
	for {
		us, err := f.Store.UploadsBefore(ctx, t, 500)
		if err != nil || len(us) == 0 {
			return n, err
		}
		for _, u := range us {
			if err := os.Remove(f.path(u)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, err
			}
			if err := f.Store.DeleteUpload(ctx, u.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return n, err
			}
			n++
		}
	}
}

// Clean runs at start: it removes the files of accounts that no longer
// exist (deleted while the server was down) and the partial files of
// uploads cut off by a stop.
func (f *Files) Clean(ctx context.Context, accounts storage.Accounts) error {
	hosts, err := os.ReadDir(f.Dir)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if !h.IsDir() {
			continue
		}
		users, err := os.ReadDir(filepath.Join(f.Dir, h.Name()))
		if err != nil {
			return err
		}
		for _, u := range users {
			dir := filepath.Join(f.Dir, h.Name(), u.Name())
			name, err := url.PathUnescape(strings.TrimPrefix(u.Name(), "@"))
			if err != nil || !strings.HasPrefix(u.Name(), "@") {
				continue // not ours
			}
			if _, err := accounts.Account(ctx, h.Name(), name); errors.Is(err, storage.ErrNotFound) {
				if err := os.RemoveAll(dir); err != nil {
					return err
				}
				continue
			}
			parts, _ := filepath.Glob(filepath.Join(dir, "*.part"))
			for _, p := range parts {
				os.Remove(p)
			}
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (f *Files) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Web clients upload and fetch from their own page's origin (CORS);
	// the URL is the capability, so any origin may.
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, Path), "/")
	if !validID(id) {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut:
	default:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodPut {
		if u, ok := f.slot(id); ok {
			f.put(w, r, u)
			return
		}
	}
	u, err := f.Store.Upload(r.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		http.NotFound(w, r)
	case err != nil:
		f.Log.Error("reading an upload slot", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
	case r.Method == http.MethodPut:
		http.Error(w, "this slot has been used: request a new one", http.StatusConflict)
	default:
		f.get(w, r, u)
	}
}

// get serves a file with its content type, ranges and validators
// (http.ServeContent); inline only for types a browser shows without
// running anything, and never sniffed.
func (f *Files) get(w http.ResponseWriter, r *http.Request, u storage.Upload) {
	file, err := os.Open(f.path(u))
	if err != nil {
		http.NotFound(w, r) // a slot not used yet, or a file expired
		return
	}
	defer file.Close()
	h := w.Header()
	ct := u.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	disposition := "attachment"
	if inline(ct) {
		disposition = "inline"
	}
	if cd := mime.FormatMediaType(disposition, map[string]string{"filename": u.Name}); cd != "" {
		h.Set("Content-Disposition", cd)
	} else {
		h.Set("Content-Disposition", disposition)
	}
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", `"`+u.ID+`"`)
	http.ServeContent(w, r, "", u.Created, file)
}

// inline reports whether a type may be shown in the browser: images other
// than SVG (which runs scripts), audio, video and plain text.
func inline(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case mt == "image/svg+xml":
		return false
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"), mt == "text/plain":
		return true
	}
	return false
}

// put stores a slot's file (§6): the token, the size and the content type
// checked, the body read within the time limits, written beside the file
// and renamed into place once complete. A slot takes one upload: a second
// PUT is refused with 409.
func (f *Files) put(w http.ResponseWriter, r *http.Request, u storage.Upload) {
	if err := f.verify(u, r.URL.Query().Get("token"), f.now()); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	switch {
	case r.ContentLength > u.Size:
		http.Error(w, "the body is larger than the slot's size, "+strconv.FormatInt(u.Size, 10)+" bytes", http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength >= 0 && r.ContentLength != u.Size:
		http.Error(w, "Content-Length must be the slot's size, "+strconv.FormatInt(u.Size, 10)+" bytes", http.StatusBadRequest)
		return
	}
	if u.ContentType != "" && !sameType(r.Header.Get("Content-Type"), u.ContentType) {
		http.Error(w, "Content-Type must be the slot's, "+u.ContentType, http.StatusUnsupportedMediaType)
		return
	}
	final := f.path(u)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		f.Log.Error("creating an upload directory", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	part := final + ".part"
	file, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		http.Error(w, "this slot is being uploaded already", http.StatusConflict)
		return
	}
	if err != nil {
		f.Log.Error("creating an upload file", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	done := false
	defer func() {
		if !done {
			file.Close()
			os.Remove(part)
		}
	}()
	if _, err := os.Lstat(final); err == nil {
		http.Error(w, "this slot has been used: request a new one", http.StatusConflict)
		return
	}
	body := f.limited(w, r, u.Size)
	if _, err := io.CopyN(file, body, u.Size); err != nil {
		f.refuseBody(w, err, "the body is shorter than the slot's size, "+strconv.FormatInt(u.Size, 10)+" bytes")
		return
	}
	var one [1]byte
	if n, _ := body.Read(one[:]); n > 0 {
		http.Error(w, "the body is larger than the slot's size, "+strconv.FormatInt(u.Size, 10)+" bytes", http.StatusRequestEntityTooLarge)
		return
	}
	if err := file.Close(); err != nil {
		f.Log.Error("writing an upload file", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	// The slot is recorded now that its file is complete, then the file
	// put in place: a GET finds either nothing or all of it.
	switch err := f.Store.AddUpload(r.Context(), u); {
	case errors.Is(err, storage.ErrNotFound):
		http.Error(w, "the account is gone", http.StatusNotFound)
		return
	case errors.Is(err, storage.ErrConflict):
		http.Error(w, "this slot has been used: request a new one", http.StatusConflict)
		return
	case err != nil:
		f.Log.Error("recording an upload", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	if err := os.Rename(part, final); err != nil {
		f.Log.Error("writing an upload file", "err", err)
		f.Store.DeleteUpload(context.WithoutCancel(r.Context()), u.ID)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	done = true
	f.used(u.ID)
	w.WriteHeader(http.StatusCreated)
}

// refuseBody answers a body that ended early: 408 when it timed out.
func (f *Files) refuseBody(w http.ResponseWriter, err error, short string) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		http.Error(w, "the body came too slowly", http.StatusRequestTimeout)
		return
	}
	http.Error(w, short, http.StatusBadRequest)
}

// sameType compares media types, leaving parameters aside (a browser may
// add a charset).
func sameType(got, want string) bool {
	g, _, err1 := mime.ParseMediaType(got)
	w, _, err2 := mime.ParseMediaType(want)
	return err1 == nil && err2 == nil && g == w
}

// limited returns r's body with the read deadlines of IdleTimeout and
// MinRate applied to each read.
func (f *Files) limited(w http.ResponseWriter, r *http.Request, size int64) io.Reader {
	idle := f.IdleTimeout
	if idle <= 0 {
		idle = 30 * time.Second
	}
	rate := f.MinRate
	if rate <= 0 {
		rate = 16 << 10
	}
	end := time.Now().Add(idle + time.Duration(size/rate)*time.Second)
	return &deadlineReader{body: r.Body, rc: http.NewResponseController(w), idle: idle, end: end}
}

// deadlineReader sets the connection's read deadline before each read:
// IdleTimeout from now, and never past the body's end.
type deadlineReader struct {
	body io.Reader
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := time.Now().Add(d.idle)
	if dl.After(d.end) {
		dl = d.end
	}
	d.rc.SetReadDeadline(dl)
	return d.body.Read(p)
}
