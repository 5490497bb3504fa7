package browser

// The file upload check of TestBrowser (issue 16): Converse.js attaches a
// file in the chat with bob, uploads it (XEP-0363) and sends him its URL;
// the test downloads it and compares the bytes.

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// uploadNS is XEP-0363's namespace.
const uploadNS = "urn:xmpp:http:upload:0"

// upload is the file of one run of the driver (--upload-file).
type upload struct {
	// skip says why the check does not run: the server has no upload
	// service (an anchor; the check does not configure one).
	skip string
	// The file: random bytes under a name with non-ASCII characters and
	// spaces, of a declared type.
	data                    []byte
	path, name, contentType string
	// origins are the upload service's HTTPS origins, which the page may
	// reach; ca is the certificate (PEM) the download trusts.
	origins []string
	ca      string
}

// newUpload finds the upload service among the server's disco#items, as
// Converse does, with a session of bob's, and where its URLs are, from a
// slot of one byte it asks for (never used); without an upload service an
// anchor's check is skipped.
func newUpload(t *testing.T, srv *server) *upload {
	t.Helper()
	tag := randomTag()
	u := &upload{name: "Ünïcödé ファイル " + tag + ".bin", contentType: "application/octet-stream", ca: srv.ca}
	c := xmpptest.Login(t, srv.starttls, srv.domain, "bob", srv.passwords["bob"], srv.mech, "browser-upload-"+tag)
	service := uploadService(t, c, srv.domain)
	if service == "" {
		if srv.name != "Starling" {
			u.skip = fmt.Sprintf("%s lists no upload service (%s) in its disco#items; the check does not configure an anchor's components", srv.name, uploadNS)
			return u
		}
		t.Fatalf("no item of the disco#items of %s has the feature %s (XEP-0363 §2)", srv.domain, uploadNS)
	}
	var slot struct {
		Put struct {
			URL string `xml:"url,attr"`
		} `xml:"slot>put"`
		Get struct {
			URL string `xml:"url,attr"`
		} `xml:"slot>get"`
	}
	el := iq(t, c, "get", service, fmt.Sprintf("<request xmlns='%s' filename='origin-%s.txt' size='1' content-type='text/plain'/>", uploadNS, tag))
	if err := xml.Unmarshal(el.Raw, &slot); err != nil {
		t.Fatalf("the slot %s: %v", el.Raw, err)
	}
	for _, s := range []string{slot.Put.URL, slot.Get.URL} {
		p, err := url.Parse(s)
		if err != nil || p.Scheme != "https" {
			t.Fatalf("the slot %s has the URL %q, not an https URL (%v)", el.Raw, s, err)
		}
		if o := p.Scheme + "://" + p.Host; !slices.Contains(u.origins, o) {
			u.origins = append(u.origins, o)
		}
	}
	if srv.upload != "" && (len(u.origins) != 1 || u.origins[0] != srv.upload) {
		t.Fatalf("the upload service %s gives URLs at %q, want them on Starling's HTTPS listener, %s", service, u.origins, srv.upload)
	}
	u.data = make([]byte, 250*1024+5)
	rand.Read(u.data)
	u.path = filepath.Join(t.TempDir(), "upload-"+tag)
	if err := os.WriteFile(u.path, u.data, 0o600); err != nil {
		t.Fatal(err)
	}
	return u
}

// uploadService is the first item of domain's disco#items whose
// disco#info has XEP-0363's feature, or "".
func uploadService(t *testing.T, c *xmpptest.Client, domain string) string {
	t.Helper()
	var items struct {
		Items []struct {
			JID string `xml:"jid,attr"`
		} `xml:"query>item"`
	}
	el := iq(t, c, "get", domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	if err := xml.Unmarshal(el.Raw, &items); err != nil {
		t.Fatalf("disco#items of %s: %s: %v", domain, el.Raw, err)
	}
	for _, it := range items.Items {
		var info struct {
			Features []struct {
				Var string `xml:"var,attr"`
			} `xml:"query>feature"`
		}
		el := iq(t, c, "get", it.JID, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
		if err := xml.Unmarshal(el.Raw, &info); err != nil {
			t.Fatalf("disco#info of %s: %s: %v", it.JID, el.Raw, err)
		}
		for _, f := range info.Features {
			if f.Var == uploadNS {
				return it.JID
			}
		}
	}
	return ""
}

// args are the driver's arguments for the file.
func (u *upload) args() []string {
	if u.skip != "" {
		return nil
	}
	args := []string{"--upload-file", u.path, "--upload-name", u.name, "--upload-type", u.contentType}
	for _, o := range u.origins {
		args = append(args, "--upload-origin", o)
	}
	return args
}

// oobMessage is what bob reads of a message with an uploaded file's URL.
type oobMessage struct {
	From string `xml:"from,attr"`
	Type string `xml:"type,attr"`
	Body string `xml:"body"`
	OOB  string `xml:"jabber:x:oob x>url"`
}

// check: the user attached the file in the chat with bob (the paperclip,
// then the browser's file chooser); Converse found the upload service,
// got a slot for the file's name, size and type (XEP-0363 §4), PUT it
// from the page, a cross-origin request the service's CORS headers must
// allow, and sent the GET URL; bob receives it from alice's full JID
// (full) as the body and the jabber:x:oob URL (XEP-0066), as Converse
// sends it; the test downloads it over HTTPS, trusting only the
// server's certificate: the bytes chosen, with the declared type.
func (u *upload) check(t *testing.T, d *driver, bob *xmpptest.Client, full string) {
	if u.skip != "" {
		t.Skip(u.skip)
	}
	e := d.next(t, "uploaded")
	checkPNG(t, e.Path)
	t.Logf("Converse uploaded %q (PUT: HTTP %d) and sent %s; screenshot: %s", u.name, e.PutStatus, e.URL, e.Path)
	if e.PutStatus != http.StatusOK && e.PutStatus != http.StatusCreated {
		t.Errorf("Converse's PUT of the file was answered with HTTP %d, want 200 or 201", e.PutStatus)
	}

	var m oobMessage
	deadline := time.Now().Add(stepTimeout)
	for m.OOB == "" {
		if time.Now().After(deadline) {
			t.Fatalf("bob did not receive a message with a jabber:x:oob URL within %v", stepTimeout)
		}
		el, err := bob.Next()
		if err != nil {
			t.Fatalf("bob waiting for the file's URL: %v", err)
		}
		if el.Name.Local != "message" {
			continue
		}
		m = oobMessage{}
		if err := xml.Unmarshal(el.Raw, &m); err != nil {
			t.Fatalf("bob received %s: %v", el.Raw, err)
		}
		t.Logf("bob: %s", el.Raw)
	}
	if m.From != full || m.Type != "chat" || m.Body != e.URL || m.OOB != e.URL {
		t.Errorf("bob received the file's URL from %q, type %q, body %q, jabber:x:oob URL %q; want from %s, chat, %s as both", m.From, m.Type, m.Body, m.OOB, full, e.URL)
	}

	pem, err := os.ReadFile(u.ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", u.ca)
	}
	client := &http.Client{Timeout: stepTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(m.OOB)
	if err != nil {
		t.Fatalf("downloading %s: %v", m.OOB, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("downloading %s: %v", m.OOB, err)
	}
	t.Logf("GET %s: %s, %d bytes of %s", m.OOB, resp.Status, len(body), resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, u.data) {
		t.Errorf("GET %s: %s with %d bytes; want 200 OK with the %d bytes Converse uploaded (equal: %v)", m.OOB, resp.Status, len(body), len(u.data), bytes.Equal(body, u.data))
	}
	if typ, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); typ != u.contentType {
		t.Errorf("GET %s: Content-Type %q, want %q as declared for the slot", m.OOB, resp.Header.Get("Content-Type"), u.contentType)
	}
}
