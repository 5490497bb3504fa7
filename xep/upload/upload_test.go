package upload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// start runs a server with the upload module's table set to table (TOML
// lines) and registration on (so an account can delete itself).
func start(t *testing.T, table string) *testserver.Server {
	t.Helper()
	parsed, err := config.Parse([]byte("[modules.upload]\n" + table + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, func(c *config.Config) {
		c.Registration.Enabled = true
		if c.Modules == nil {
			c.Modules = map[string]config.ModuleTable{}
		}
		c.Modules["upload"] = parsed.Modules["upload"]
	})
	srv.AddUser(t, "alice", "alice-secret")
	return srv
}

// iq sends a request and returns the answer with its id.
func iq(t *testing.T, c *xmpptest.Client, id, raw string) string {
	t.Helper()
	c.Send(raw)
	for {
		el := c.MustNext()
		if el.Name.Local == "iq" && bytes.Contains(el.Raw, []byte("id='"+id+"'")) || bytes.Contains(el.Raw, []byte(`id="`+id+`"`)) {
			return string(el.Raw)
		}
	}
}

type slotXML struct {
	Put struct {
		URL string `xml:"url,attr"`
	} `xml:"slot>put"`
	Get struct {
		URL string `xml:"url,attr"`
	} `xml:"slot>get"`
}

// slot asks for a slot and returns its PUT and GET URLs.
func slot(t *testing.T, c *xmpptest.Client, srv *testserver.Server, name string, size int, ctype string) (put, get string) {
	t.Helper()
	id := "s" + strconv.Itoa(size)
	answer := iq(t, c, id, "<iq type='get' id='"+id+"' to='upload."+srv.Domain+"'><request xmlns='urn:xmpp:http:upload:0' filename='"+name+"' size='"+strconv.Itoa(size)+"' content-type='"+ctype+"'/></iq>")
	var s slotXML
	if err := xml.Unmarshal([]byte(answer), &s); err != nil || s.Put.URL == "" || s.Get.URL == "" {
		t.Fatalf("slot request: %s (%v)", answer, err)
	}
	return s.Put.URL, s.Get.URL
}

func do(t *testing.T, hc *http.Client, method, url, ctype string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp, got
}

// TestUploadDownload: a slot (XEP-0363 §4), the PUT (§6) and the GET,
// with ranges, validators and CORS; a slot takes one upload.
func TestUploadDownload(t *testing.T) {
	srv := start(t, "max_file_size = 100000")
	c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
	hc := srv.HTTPClient(t, 10*time.Second)

	items := iq(t, c, "i1", "<iq type='get' id='i1' to='"+srv.Domain+"'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if !strings.Contains(items, "jid='upload."+srv.Domain+"'") {
		t.Fatalf("server disco#items without the upload service: %s", items)
	}
	info := iq(t, c, "i2", "<iq type='get' id='i2' to='upload."+srv.Domain+"'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	for _, want := range []string{"category='store' type='file'", "var='urn:xmpp:http:upload:0'", "<field var='max-file-size'><value>100000</value>"} {
		if !strings.Contains(info, want) {
			t.Errorf("service disco#info without %s: %s", want, info)
		}
	}

	data := make([]byte, 50000)
	rand.Read(data)
	put, get := slot(t, c, srv, "photo été.jpg", len(data), "image/jpeg")
	if !strings.HasPrefix(get, "https://"+srv.Domain+":") || !strings.HasPrefix(put, get+"?") {
		t.Errorf("URLs put %s get %s", put, get)
	}
	if resp, _ := do(t, hc, http.MethodGet, get, "", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET before the PUT: %s", resp.Status)
	}
	if resp, body := do(t, hc, http.MethodPut, put, "image/jpeg", data, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	// The token is used: the slot takes no second upload.
	if resp, _ := do(t, hc, http.MethodPut, put, "image/jpeg", data, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("second PUT: %s, want 409", resp.Status)
	}

	resp, body := do(t, hc, http.MethodGet, get, "", nil, http.Header{"Origin": {"https://chat.example"}})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET: %s, %d bytes, same: %v", resp.Status, len(body), bytes.Equal(body, data))
	}
	for k, want := range map[string]string{
		"Content-Type":                "image/jpeg",
		"X-Content-Type-Options":      "nosniff",
		"Access-Control-Allow-Origin": "*",
		"Content-Disposition":         "inline; filename*=utf-8''photo%20%C3%A9t%C3%A9.jpg",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET %s: %q, want %q", k, got, want)
		}
	}
	etag := resp.Header.Get("ETag")
	if resp, _ := do(t, hc, http.MethodGet, get, "", nil, http.Header{"If-None-Match": {etag}}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET If-None-Match: %s", resp.Status)
	}
	resp, body = do(t, hc, http.MethodGet, get, "", nil, http.Header{"Range": {"bytes=100-199"}})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
		t.Errorf("GET range: %s, %d bytes", resp.Status, len(body))
	}
	resp, _ = do(t, hc, http.MethodOptions, put, "", nil, http.Header{"Origin": {"https://chat.example"}, "Access-Control-Request-Method": {"PUT"}})
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("preflight: %s %v", resp.Status, resp.Header)
	}
	if resp, _ := do(t, hc, http.MethodDelete, get, "", nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %s", resp.Status)
	}

	// An HTML page is never shown inline, so it runs nothing on this
	// origin.
	page := []byte("<script>alert(1)</script>")
	put, get = slot(t, c, srv, "x.html", len(page), "text/html")
	if resp, body := do(t, hc, http.MethodPut, put, "text/html", page, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	resp, _ = do(t, hc, http.MethodGet, get, "", nil, nil)
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("HTML served with Content-Disposition %q, CSP %q", cd, resp.Header.Get("Content-Security-Policy"))
	}
}

// TestUploadRefusals: what does not match the slot is refused and
// stores nothing.
func TestUploadRefusals(t *testing.T) {
	srv := start(t, "max_file_size = 100000")
	c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
	hc := srv.HTTPClient(t, 10*time.Second)
	data := bytes.Repeat([]byte("x"), 1000)
	put, get := slot(t, c, srv, "a.txt", len(data), "text/plain")

	for _, tc := range []struct {
		name   string
		url    string
		ctype  string
		body   []byte
		status int
	}{
		{"no token", get, "text/plain", data, http.StatusForbidden},
		{"wrong token", get + "?token=4102444800-AAAA", "text/plain", data, http.StatusForbidden},
		{"another slot's token", strings.Replace(put, strings.Split(get, "/")[4], "AAAAAAAAAAAAAAAAAAAAAAAA", 1), "text/plain", data, http.StatusNotFound},
		{"larger body", put, "text/plain", append(data, 'x'), http.StatusRequestEntityTooLarge},
		{"shorter body", put, "text/plain", data[:999], http.StatusBadRequest},
		{"other type", put, "application/zip", data, http.StatusUnsupportedMediaType},
	} {
		if resp, body := do(t, hc, http.MethodPut, tc.url, tc.ctype, tc.body, nil); resp.StatusCode != tc.status {
			t.Errorf("%s: %s %s, want %d", tc.name, resp.Status, body, tc.status)
		}
	}
	if resp, _ := do(t, hc, http.MethodGet, get, "", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after refused PUTs: %s", resp.Status)
	}
	// Paths outside the upload directory name no file.
	base := strings.TrimSuffix(get, strings.Join(strings.Split(get, "/")[3:], "/"))
	for _, p := range []string{"upload/..%2f..%2fetc%2fpasswd", "upload/%2e%2e/%2e%2e/etc/passwd", "upload/../../etc/passwd", "upload/" + strings.Repeat(".", 24) + "/x"} {
		if resp, body := do(t, hc, http.MethodGet, base+p, "", nil, nil); resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s: %s %q", p, resp.Status, body)
		}
	}
	// The slot is still good for the right body.
	if resp, body := do(t, hc, http.MethodPut, put, "text/plain; charset=utf-8", data, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
}

// TestUploadDeletedWithAccount: the files go with the account
// (XEP-0077 §3.2 cancellation fires auth.AccountDeleted).
func TestUploadDeletedWithAccount(t *testing.T) {
	srv := start(t, "")
	c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
	hc := srv.HTTPClient(t, 10*time.Second)
	data := []byte("hello")
	put, get := slot(t, c, srv, "a.txt", len(data), "text/plain")
	if resp, body := do(t, hc, http.MethodPut, put, "text/plain", data, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, body)
	}
	dir := filepath.Join(srv.Config.Server.DataDir, "upload", srv.Domain, "@alice")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the account's directory: %v", err)
	}
	c.Send("<iq type='set' id='r1'><query xmlns='jabber:iq:register'><remove/></query></iq>")
	// The sessions end after the files are removed (the event's handlers
	// run in priority order, c2s's last): read until the stream ends.
	c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := c.Next(); err != nil {
			break
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the account's directory is still there: %v", err)
	}
	if resp, _ := do(t, hc, http.MethodGet, get, "", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after the account's deletion: %s", resp.Status)
	}
}

// TestUploadOtherHost: a host's service gives slots to its own users
// only (§5, not-allowed); another host has its own service.
func TestUploadOtherHost(t *testing.T) {
	parsed, _ := config.Parse([]byte("[server]\nhosts = [\"localhost\", \"other.test\"]\n"))
	srv := testserver.Start(t, func(c *config.Config) { c.Server.Hosts = parsed.Server.Hosts })
	j, _ := jid.New("olga", "other.test", "")
	if err := auth.CreateAccount(context.Background(), srv.Store(), j, "olga-secret", srv.Config.Auth.SCRAMIterations); err != nil {
		t.Fatal(err)
	}
	c := xmpptest.Login(t, srv.Addr, "other.test", "olga", "olga-secret", "SCRAM-SHA-256", "phone")
	answer := iq(t, c, "o1", "<iq type='get' id='o1' to='upload.localhost'><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'/></iq>")
	if !strings.Contains(answer, "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>") || !strings.Contains(answer, "type='cancel'") {
		t.Errorf("slot of another host's service: %s", answer)
	}
	answer = iq(t, c, "o2", "<iq type='get' id='o2' to='upload.other.test'><request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='5'/></iq>")
	if !strings.Contains(answer, "<slot xmlns='urn:xmpp:http:upload:0'><put url='https://other.test:") {
		t.Errorf("slot of the user's own host: %s", answer)
	}
}
