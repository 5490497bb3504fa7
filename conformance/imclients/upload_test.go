package imclients

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// uploadLimit is the max_file_size of Starling's upload module here
// ([modules.upload]): above the files shared, far below its default.
const uploadLimit = 1 << 20

// sharedFile is a file one client shares with the other: random bytes
// under a name with non-ASCII characters and spaces.
type sharedFile struct {
	path, name, contentType string
	size                    int
	sha256                  string
}

func newSharedFile(c *check, name, contentType string, size int) sharedFile {
	c.t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(c.t.TempDir(), "shared-"+c.tag)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		c.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return sharedFile{path: p, name: name, contentType: contentType, size: size, sha256: hex.EncodeToString(sum[:])}
}

// checkUpload: HTTP file upload (XEP-0363) as clients share a file. alice
// on the check's library uploads a file with its own call for it
// (slixmpp's xep_0363 upload_file(), which finds the service by service
// discovery; on nbxmpp, Gajim's discovery, HTTPUpload.request_slot() and
// a PUT with nbxmpp's HTTP session and the slot's headers), and sends
// bob the GET URL as clients do, as the body and in a jabber:x:oob
// element (XEP-0066); bob, on the other library, gets it and downloads
// it over HTTPS, trusting only the server's certificate as for XMPP:
// the same bytes (SHA-256), with the content type declared for the slot
// (§4). Then the other way round, bob uploading and alice downloading.
// Last, alice asks for a slot of exactly the max-file-size the service
// advertised in its disco#info form (§3), which is granted, and for one
// byte more, which is refused with <not-acceptable/> and
// <file-too-large/> carrying the limit, as the library reads it (§5;
// nbxmpp's HTTPUploadStanzaError.get_max_file_size(); slixmpp does not
// parse it, so the script reads the error).
//
// On Starling the service is upload.<domain> with the configured limit,
// and the GET URLs are on its HTTPS listener under /upload/; anywhere,
// a URL's last path segment is the file's name.
func checkUpload(c *check) {
	t := c.t
	other := "nbxmpp"
	if c.lib == other {
		other = "slixmpp"
	}
	requireLibrary(t, other)
	requireLibrary(t, "aiohttp")
	a := c.loginArgs(c.lib, []string{"--upload"}, "alice/1")[0]
	b := c.loginArgs(other, []string{"--upload"}, "bob/1")[0]
	for _, ag := range []*agent{a, b} {
		ag.ok(cmd("presence", "status", ""))
	}

	fromAlice := newSharedFile(c, "Übersicht für Ævar — 文件 "+c.tag+".bin", "application/octet-stream", 300*1024+17)
	fromBob := newSharedFile(c, "résumé 写真 "+c.tag+".jpg", "image/jpeg", 200*1024+3)
	max := share(c, a, b, fromAlice, "alice-"+c.tag)
	share(c, b, a, fromBob, "bob-"+c.tag)

	if max <= 0 {
		t.Fatalf("%s found no max-file-size in the upload service's disco#info (XEP-0363 §3): the refusal is not checked", a)
	}
	if r := a.do(cmd("upload-slot", "name", "at-the-limit-"+c.tag+".bin", "size", max, "type", "application/octet-stream")); r.Error != "" || r.URL == "" {
		t.Errorf("%s asked for a slot of %d bytes, the advertised max-file-size: got %+v, want a slot", a, max, r)
	}
	r := a.do(cmd("upload-slot", "name", "too-large-"+c.tag+".bin", "size", max+1, "type", "application/octet-stream"))
	if r.Error != "not-acceptable" || r.AppError != "file-too-large" || r.MaxFileSize != max {
		t.Errorf("%s asked for a slot of %d bytes, one more than the max-file-size: got error %q, %q with max-file-size %d; want not-acceptable, file-too-large with %d (XEP-0363 §5)", a, max+1, r.Error, r.AppError, r.MaxFileSize, max)
	}
	a.quit()
	b.quit()
}

// share has from upload f with its library's upload call and send the GET
// URL to to, which downloads it; it returns the max-file-size from found
// with the service (-1 for none).
func share(c *check, from, to *agent, f sharedFile, id string) int64 {
	t := c.t
	t.Helper()
	up := from.do(cmd("upload", "path", f.path, "name", f.name, "type", f.contentType))
	if up.Error != "" || up.URL == "" {
		t.Fatalf("%s could not upload %q (%d bytes, %s): %+v", from, f.name, f.size, f.contentType, up)
	}
	t.Logf("%s uploaded %q to %s (service %s, max-file-size %d)", from, f.name, up.URL, up.Service, up.MaxFileSize)
	u, err := url.Parse(up.URL)
	if err != nil || u.Scheme != "https" {
		t.Errorf("the GET URL %q of %s's upload is not an https URL (%v)", up.URL, from, err)
	} else if last, err := url.PathUnescape(path.Base(u.EscapedPath())); err != nil || last != f.name {
		t.Errorf("the GET URL %q of %s's upload ends in %q (%v), want the file's name %q", up.URL, from, last, err, f.name)
	}
	if c.srv.proc != nil {
		if want := "upload." + c.srv.domain; up.Service != want {
			t.Errorf("%s found the upload service at %s, want %s", from, up.Service, want)
		}
		if up.MaxFileSize != uploadLimit {
			t.Errorf("%s found the max-file-size %d, want the configured %d", from, up.MaxFileSize, uploadLimit)
		}
		if u != nil && (u.Host != c.srv.domain+":"+strconv.Itoa(c.srv.httpsPort) || !strings.HasPrefix(u.Path, "/upload/")) {
			t.Errorf("the GET URL %q is not under https://%s:%d/upload/, Starling's HTTPS listener", up.URL, c.srv.domain, c.srv.httpsPort)
		}
	}

	from.ok(cmd("send", "to", to.jid, "body", up.URL, "id", id, "oob", up.URL))
	m := to.wait("the message "+id+" with the URL", func(e event) bool { return e.Event == "message" && e.ID == id })
	if m.From != from.jid || m.Body != up.URL || m.OOB != up.URL {
		t.Errorf("%s got the message with the URL as %+v, want it from %s with the URL %s as its body and jabber:x:oob URL", to, m, from.jid, up.URL)
	}
	got := to.ok(cmd("download", "url", m.OOB))
	t.Logf("%s downloaded %s: HTTP %d, %d bytes of %s, SHA-256 %s", to, m.OOB, got.HTTPStatus, got.Size, got.ContentType, got.SHA256)
	if got.HTTPStatus != 200 || got.Size != int64(f.size) || got.SHA256 != f.sha256 {
		t.Errorf("%s downloaded %s's upload as HTTP %d, %d bytes with SHA-256 %s; want 200, the %d bytes uploaded, %s", to, from, got.HTTPStatus, got.Size, got.SHA256, f.size, f.sha256)
	}
	if typ, _, _ := mime.ParseMediaType(got.ContentType); typ != f.contentType {
		t.Errorf("%s downloaded %s's upload with the content type %q, want %q as declared for the slot (XEP-0363 §4)", to, from, got.ContentType, f.contentType)
	}
	return up.MaxFileSize
}
