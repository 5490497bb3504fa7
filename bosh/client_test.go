package bosh_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/starling-xmpp/starling/bosh"
	"github.com/starling-xmpp/starling/internal/testserver"
)

// timeout bounds every request of a test client, and every wait for a
// state of the server.
const timeout = 10 * time.Second

const (
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsStreams = "http://etherx.jabber.org/streams"
)

// client is a BOSH test client on net/http: each request is built by
// hand, each response parsed as a standalone document.
type client struct {
	t    testing.TB
	http *http.Client
	url  string
	sid  string
	rid  int64
	jid  string
	// created is the session creation response.
	created response
}

// response is one response: its HTTP status, the attributes of its
// <body/> and its children.
type response struct {
	status int
	attrs  map[string]string // by local name, prefixed ones as "prefix:local"
	els    []child
	raw    []byte
}

// child is an element of a response's body, its namespace resolved
// against the body's declarations.
type child struct {
	name xml.Name
	raw  []byte
}

func (c child) is(space, local string) bool { return c.name.Space == space && c.name.Local == local }

// find returns the first child named space, local.
func (r response) find(space, local string) (child, bool) {
	for _, el := range r.els {
		if el.is(space, local) {
			return el, true
		}
	}
	return child{}, false
}

// parseResponse parses a response body, which must be one <body/> of
// NSHTTPBind.
func parseResponse(status int, raw []byte) (response, error) {
	r := response{status: status, attrs: map[string]string{}, raw: raw}
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	var start int64
	var name xml.Name
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 || len(r.attrs) == 0 {
				return r, fmt.Errorf("incomplete body: %s", raw)
			}
			return r, nil
		}
		if err != nil {
			return r, fmt.Errorf("%v: %s", err, raw)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if t.Name != (xml.Name{Space: bosh.NSHTTPBind, Local: "body"}) {
					return r, fmt.Errorf("not a body: %s", raw)
				}
				for _, a := range t.Attr {
					switch a.Name.Space {
					case "", "xmlns":
						r.attrs[a.Name.Local] = a.Value
					case bosh.NSXBOSH:
						r.attrs["xmpp:"+a.Name.Local] = a.Value
					}
				}
			}
			if depth == 1 {
				start, name = off, t.Name
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 1 {
				r.els = append(r.els, child{name: name, raw: raw[start:d.InputOffset()]})
			}
		}
	}
}

// httpClient trusts the server's self-signed certificate for "localhost".
func httpClient(t testing.TB, srv *testserver.Server) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(srv.Config.Server.DataDir, "certs", "localhost.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
	}}
}

// boshURL is the server's BOSH endpoint over HTTPS.
func boshURL(srv *testserver.Server) string { return "https://" + srv.HTTPSAddr + bosh.Path }

// do posts raw to url and parses the response.
func do(t testing.TB, hc *http.Client, url, raw string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	r, err := parseResponse(resp.StatusCode, b)
	if err != nil {
		t.Fatalf("response %s: %v", resp.Status, err)
	}
	return r
}

// create starts a session with wait and hold (XEP-0124 §7.1, XEP-0206
// §3) at rid 1000.
func create(t testing.TB, srv *testserver.Server, wait, hold int) *client {
	t.Helper()
	return createWith(t, srv, wait, hold, "")
}

// createWith is create with more attributes in the creation request.
func createWith(t testing.TB, srv *testserver.Server, wait, hold int, attrs string) *client {
	t.Helper()
	c := &client{t: t, http: httpClient(t, srv), url: boshURL(srv), rid: 1000}
	c.created = do(t, c.http, c.url, fmt.Sprintf("<body xmlns='%s' xmlns:xmpp='%s' content='text/xml; charset=utf-8' rid='%d' to='%s' xml:lang='en' wait='%d' hold='%d' ver='1.6' xmpp:version='1.0'%s/>",
		bosh.NSHTTPBind, bosh.NSXBOSH, c.rid, srv.Domain, wait, hold, attrs), nil)
	c.rid++
	c.sid = c.created.attrs["sid"]
	if c.created.status != http.StatusOK || c.sid == "" || c.created.attrs["type"] != "" {
		t.Fatalf("session creation: %d %s", c.created.status, c.created.raw)
	}
	return c
}

// post sends a request of the session with payload and extra attributes,
// at the next rid, and returns its response.
func (c *client) post(attrs, payload string) response {
	c.t.Helper()
	r := c.postRID(c.rid, attrs, payload)
	c.rid++
	return r
}

// postRID sends a request at rid without advancing the client's rid.
func (c *client) postRID(rid int64, attrs, payload string) response {
	c.t.Helper()
	return do(c.t, c.http, c.url, c.body(rid, attrs, payload), nil)
}

func (c *client) body(rid int64, attrs, payload string) string {
	return fmt.Sprintf("<body xmlns='%s' xmlns:xmpp='%s' sid='%s' rid='%d'%s>%s</body>", bosh.NSHTTPBind, bosh.NSXBOSH, c.sid, rid, attrs, payload)
}

// expect sends empty requests until a response holds an element named
// space, local, and returns it; a terminate response fails the test.
func (c *client) expect(first response, space, local string) child {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	r := first
	for {
		if el, ok := r.find(space, local); ok {
			return el
		}
		if r.attrs["type"] == "terminate" || time.Now().After(deadline) {
			c.t.Fatalf("no <%s xmlns='%s'/>; last response: %s", local, space, r.raw)
		}
		r = c.post("", "")
	}
}

var mechanisms = map[string]sasl.Mechanism{"PLAIN": sasl.Plain, "SCRAM-SHA-1": sasl.ScramSha1, "SCRAM-SHA-256": sasl.ScramSha256}

// features returns the stream features of a response that must hold them.
func (c *client) features(r response) string {
	c.t.Helper()
	return string(c.expect(r, nsStreams, "features").raw)
}

// auth runs SASL with mech, then restarts the stream (XEP-0206 §5) and
// returns the new features.
func (c *client) auth(mech, user, password string) string {
	c.t.Helper()
	var remote []string
	for _, m := range []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"} {
		if strings.Contains(c.features(c.created), "<mechanism>"+m+"</mechanism>") {
			remote = append(remote, m)
		}
	}
	neg := sasl.NewClient(mechanisms[mech], sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }), sasl.RemoteMechanisms(remote...))
	_, resp, err := neg.Step(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	r := c.post("", "<auth xmlns='"+nsSASL+"' mechanism='"+mech+"'>"+base64.StdEncoding.EncodeToString(resp)+"</auth>")
	for {
		var el child
		if len(r.els) > 0 {
			el = r.els[0]
		} else {
			r = c.post("", "")
			continue
		}
		var data string
		xml.Unmarshal(el.raw, &data)
		switch {
		case el.is(nsSASL, "challenge"):
			in, _ := base64.StdEncoding.DecodeString(data)
			_, resp, err := neg.Step(in)
			if err != nil {
				c.t.Fatal(err)
			}
			r = c.post("", "<response xmlns='"+nsSASL+"'>"+base64.StdEncoding.EncodeToString(resp)+"</response>")
		case el.is(nsSASL, "success"):
			if data != "" {
				in, _ := base64.StdEncoding.DecodeString(data)
				if _, _, err := neg.Step(in); err != nil {
					c.t.Fatalf("server signature: %v", err)
				}
			}
			return c.features(c.post(" to='localhost' xml:lang='en' xmpp:restart='true'", ""))
		default:
			c.t.Fatalf("unexpected during SASL: %s", r.raw)
		}
	}
}

// bind binds resource and returns the full JID.
func (c *client) bind(resource string) string {
	c.t.Helper()
	r := c.post("", "<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>")
	el := c.expect(r, "jabber:client", "iq")
	var iq struct {
		Type string `xml:"type,attr"`
		JID  string `xml:"bind>jid"`
	}
	if err := xml.Unmarshal(el.raw, &iq); err != nil || iq.Type != "result" {
		c.t.Fatalf("bind: %s", el.raw)
	}
	c.jid = iq.JID
	return c.jid
}

// login creates a session, authenticates with mech and binds resource.
func login(t testing.TB, srv *testserver.Server, wait int, mech, user, password, resource string) *client {
	t.Helper()
	c := create(t, srv, wait, 1)
	c.auth(mech, user, password)
	c.bind(resource)
	return c
}

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// async runs a request in the background; the response arrives on the
// channel.
func async(c *client, rid int64, attrs, payload string) <-chan response {
	ch := make(chan response, 1)
	raw := c.body(rid, attrs, payload)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, c.url, strings.NewReader(raw))
		resp, err := c.http.Do(req)
		if err != nil {
			ch <- response{status: -1, raw: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r, err := parseResponse(resp.StatusCode, b)
		if err != nil {
			r.status = -1
		}
		ch <- r
	}()
	return ch
}

// await receives a response of async.
func await(t testing.TB, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		if r.status != http.StatusOK {
			t.Fatalf("async request: %d %s", r.status, r.raw)
		}
		return r
	case <-time.After(timeout):
		t.Fatal("no response")
		return response{}
	}
}
