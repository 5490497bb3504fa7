package websocket_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/server"
	ws "github.com/starling-xmpp/starling/websocket"
)

const closeEl = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"

// wsURL is the server's WebSocket endpoint on plain HTTP.
func wsURL(srv *testserver.Server) string { return "ws://" + srv.HTTPAddr + ws.Path }

// startServer runs a server with alice, bob and carol.
func startServer(t *testing.T, edit func(*config.Config)) *testserver.Server {
	t.Helper()
	srv := testserver.Start(t, edit)
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.AddUser(t, u, u+"-secret")
	}
	return srv
}

type message struct {
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
	Type string `xml:"type,attr"`
	Body string `xml:"body"`
}

// checkMessage checks a message received as raw XML.
func checkMessage(t *testing.T, raw []byte, from, body string) {
	t.Helper()
	var m message
	if err := xml.Unmarshal(raw, &m); err != nil || m.From != from || m.Body != body {
		t.Fatalf("expected a message from %s with body of %d bytes, got %.300s (%v)", from, len(body), raw, err)
	}
}

// A web client logs in over wss:// with each mechanism the server offers
// there (PLAIN too: the stream is encrypted), with a stream restart after
// SASL (RFC 7395 §3.7), and chats with a TCP client both ways; every
// message it gets is a standalone element (§3.3.3). Closing the stream
// closes the connection (§3.6).
func TestLoginAndChat(t *testing.T) {
	srv := startServer(t, nil)
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			c := xmpptest.DialWebSocket(t, srv.WebSocketURL(), srv.Domain, srv.WebSocketOptions(t))
			c.OpenStream()
			if !c.HasFeature("<mechanism>"+mech+"</mechanism>") || c.HasFeature("<starttls") || c.HasFeature("-PLUS<") {
				t.Fatalf("features over wss: %s", c.Features.Raw)
			}
			if err := c.Auth(mech, "alice", "alice-secret"); err != nil {
				t.Fatalf("auth: %v", err)
			}
			alice := c.Bind("web-" + mech)

			body := "from the web with " + mech + " <&> ☃"
			c.Send(fmt.Sprintf("<message xmlns='jabber:client' to='%s' type='chat' id='m1'><body>%s</body></message>", bob.JID, xmlEscape(body)))
			checkMessage(t, bob.MustNext().Raw, alice, body)

			// bob's stanza carries no xmlns (his stream header gives it);
			// the web client gets it declared.
			reply := "to the web " + mech
			bob.Send(fmt.Sprintf("<message to='%s' type='chat' id='m2'><body>%s</body></message>", alice, reply))
			f := c.Expect("jabber:client", "message")
			checkMessage(t, f.Raw, bob.JID, reply)

			c.Send(closeEl)
			c.Expect(ws.NSFraming, "close")
			c.ExpectClosure(websocket.StatusNormalClosure)
		})
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// A stanza of any size travels in one WebSocket message, both ways (the
// bug of mellium's websocket package: stanzas over 4 KiB split).
func TestLargeStanzas(t *testing.T) {
	srv := startServer(t, nil)
	opts := srv.WebSocketOptions(t)
	alice := xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, opts, "SCRAM-SHA-1", "alice", "alice-secret", "web")
	carol := xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, opts, "PLAIN", "carol", "carol-secret", "web")
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	for _, size := range []int{4097, 70000, 200000} {
		body := strings.Repeat("0123456789", size/10)
		alice.Send(fmt.Sprintf("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>", carol.JID, body))
		checkMessage(t, carol.Expect("jabber:client", "message").Raw, alice.JID, body)
		bob.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", carol.JID, body))
		checkMessage(t, carol.Expect("jabber:client", "message").Raw, bob.JID, body)
		carol.Send(fmt.Sprintf("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>", bob.JID, body))
		checkMessage(t, bob.MustNext().Raw, carol.JID, body)
	}
	// What follows is its own message.
	alice.Send(fmt.Sprintf("<message xmlns='jabber:client' to='%s' type='chat'><body>small</body></message>", carol.JID))
	checkMessage(t, carol.Expect("jabber:client", "message").Raw, alice.JID, "small")
}

// Stanzas queued for a web client at once — here a TCP client's burst in
// one write — go out in batches (one write to the connection each), and
// the web client still gets each stanza as a standalone message of its
// own (RFC 7395 §3.3.3), in order.
func TestBurst(t *testing.T) {
	srv := startServer(t, nil)
	alice := xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, srv.WebSocketOptions(t), "PLAIN", "alice", "alice-secret", "web")
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	const n = 200
	var burst strings.Builder
	for i := range n {
		fmt.Fprintf(&burst, "<message to='%s' type='chat' id='b%d'><body>burst %d</body></message>", alice.JID, i, i)
	}
	bob.Send(burst.String())
	for i := range n {
		f := alice.Expect("jabber:client", "message") // one element per message, or it fails
		if id := xmpptest.Attr(f, "id"); id != fmt.Sprint("b", i) {
			t.Fatalf("message %d: id %q", i, id)
		}
		checkMessage(t, f.Raw, bob.JID, fmt.Sprint("burst ", i))
	}
}

// Each kind of bad input gets its stream error, after the server's <open/>
// when it comes first (RFC 7395 §3.5, RFC 6120 §4.9.1.2), then <close/>
// and the end of the connection; sessions of other clients, on WebSocket
// and TCP, go on.
func TestBadInput(t *testing.T) {
	srv := startServer(t, func(c *config.Config) { c.Limits.MaxStanzaBytes = config.MinStanzaBytes })
	opts := srv.WebSocketOptions(t)
	alice := xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, opts, "PLAIN", "alice", "alice-secret", "web")
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	big := "<message xmlns='jabber:client' to='bob@localhost'><body>" + strings.Repeat("x", config.MinStanzaBytes) + "</body></message>"
	for _, tc := range []struct {
		name   string
		opened bool // the stream is opened before the bad input
		input  []string
		binary bool
		cond   string
	}{
		{"text before open", false, []string{"hello"}, false, "not-well-formed"},
		{"stanza before open", false, []string{"<message xmlns='jabber:client' to='bob@localhost'/>"}, false, "bad-format"},
		{"TCP stream header", false, []string{"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"}, false, "not-well-formed"},
		{"open in another namespace", false, []string{"<open xmlns='jabber:client' to='localhost' version='1.0'/>"}, false, "invalid-namespace"},
		{"open without version", false, []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost'/>"}, false, "unsupported-version"},
		{"open for another host", false, []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.net' version='1.0'/>"}, false, "host-unknown"},
		{"binary message", true, []string{"<presence xmlns='jabber:client'/>"}, true, "unsupported-encoding"},
		{"partial element", true, []string{"<message xmlns='jabber:client' to='bob@localhost'><body>hi"}, false, "not-well-formed"},
		{"element split over two messages", true, []string{"<message xmlns='jabber:client' to='bob@localhost'><body>hi", "</body></message>"}, false, "not-well-formed"},
		{"two elements", true, []string{"<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>"}, false, "bad-format"},
		{"text after the element", true, []string{"<presence xmlns='jabber:client'/>hello"}, false, "bad-format"},
		{"whitespace keepalive", true, []string{" "}, false, "not-well-formed"},
		{"comment", true, []string{"<!-- hello -->"}, false, "restricted-xml"},
		{"oversized message", true, []string{big}, false, "policy-violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := xmpptest.DialWebSocket(t, srv.WebSocketURL(), srv.Domain, opts)
			if tc.opened {
				c.OpenStream()
			}
			for _, in := range tc.input {
				if tc.binary {
					c.SendMessage(websocket.MessageBinary, in)
				} else {
					c.Send(in)
				}
			}
			if !tc.opened {
				c.Expect(ws.NSFraming, "open")
			}
			c.ExpectStreamError(tc.cond)

			// The other sessions are untouched.
			alice.Send("<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
			if f := alice.Expect("jabber:client", "iq"); xmpptest.Attr(f, "type") != "result" || xmpptest.Attr(f, "id") != "p1" {
				t.Fatalf("alice's ping: %s", f.Raw)
			}
			bob.Send(fmt.Sprintf("<message to='%s' type='chat'><body>still here</body></message>", alice.JID))
			checkMessage(t, alice.Expect("jabber:client", "message").Raw, bob.JID, "still here")
		})
	}
}

// Upgrades are refused before the WebSocket handshake: without the
// subprotocol "xmpp" (RFC 7395 §3.1), from a page of an origin not
// allowed, and when not a WebSocket handshake at all (RFC 6455 §4.2.1).
func TestUpgradeRefused(t *testing.T) {
	srv := startServer(t, func(c *config.Config) { c.HTTP.AllowedOrigins = []string{"https://chat.example.org"} })
	status := func(t *testing.T, protocols []string, origin string) int {
		t.Helper()
		opts := srv.WebSocketOptions(t)
		opts.Subprotocols = protocols
		if origin != "" {
			opts.HTTPHeader.Set("Origin", origin)
		}
		c, resp := xmpptest.DialWebSocketResult(t, srv.WebSocketURL(), srv.Domain, opts)
		if c != nil {
			c.Close()
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name      string
		protocols []string
		origin    string
		want      int
	}{
		{"no subprotocol", nil, "", http.StatusBadRequest},
		{"another subprotocol", []string{"chat"}, "", http.StatusBadRequest},
		{"xmpp among others", []string{"chat", "xmpp"}, "", http.StatusSwitchingProtocols},
		{"origin not allowed", []string{"xmpp"}, "https://evil.example", http.StatusForbidden},
		{"null origin", []string{"xmpp"}, "null", http.StatusForbidden},
		{"allowed origin", []string{"xmpp"}, "https://chat.example.org", http.StatusSwitchingProtocols},
		{"allowed origin with its default port", []string{"xmpp"}, "https://chat.example.org:443", http.StatusSwitchingProtocols},
		{"allowed host, other scheme", []string{"xmpp"}, "http://chat.example.org", http.StatusForbidden},
		{"the server's own origin", []string{"xmpp"}, "https://" + srv.HTTPSAddr, http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status(t, tc.protocols, tc.origin); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}

	t.Run("any origin", func(t *testing.T) {
		cfg := srv.Config.Clone()
		cfg.HTTP.AllowedOrigins = []string{"*"}
		if err := srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		if got := status(t, []string{"xmpp"}, "https://evil.example"); got != http.StatusSwitchingProtocols {
			t.Errorf("status %d after allowing any origin", got)
		}
	})

	t.Run("not a WebSocket handshake", func(t *testing.T) {
		for method, want := range map[string]int{http.MethodGet: http.StatusUpgradeRequired, http.MethodPost: http.StatusMethodNotAllowed} {
			req, _ := http.NewRequest(method, "http://"+srv.HTTPAddr+ws.Path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s: status %d, want %d", method, resp.StatusCode, want)
			}
		}
	})
}

// On plain HTTP a stream is encrypted only when a trusted proxy says the
// client used https: only then is PLAIN offered, and with require_tls
// nothing else is.
func TestEncryptionBehindProxy(t *testing.T) {
	srv := startServer(t, nil) // trusted_proxies: loopback
	proto := func(p string) *websocket.DialOptions {
		opts := &websocket.DialOptions{Subprotocols: []string{ws.Subprotocol}, HTTPHeader: http.Header{}}
		if p != "" {
			opts.HTTPHeader.Set("X-Forwarded-Proto", p)
			opts.HTTPHeader.Set("X-Forwarded-For", "192.0.2.10")
		}
		return opts
	}
	mechs := func(t *testing.T, opts *websocket.DialOptions) *xmpptest.WebSocket {
		t.Helper()
		c := xmpptest.DialWebSocket(t, wsURL(srv), srv.Domain, opts)
		c.OpenStream()
		if c.HasFeature("<starttls") {
			t.Fatalf("STARTTLS offered on a WebSocket: %s", c.Features.Raw)
		}
		return c
	}

	t.Run("not encrypted", func(t *testing.T) {
		for _, p := range []string{"", "http"} {
			c := mechs(t, proto(p))
			if m := c.Mechanisms(); len(m) != 0 {
				t.Fatalf("X-Forwarded-Proto %q: mechanisms %v offered despite require_tls", p, m)
			}
			// PLAIN anyway: refused (RFC 6120 §6.4.5? encryption-required).
			if err := c.Auth("PLAIN", "alice", "alice-secret"); !errors.Is(err, xmpptest.ErrAuth) || !strings.Contains(err.Error(), "<encryption-required") {
				t.Fatalf("PLAIN on an unencrypted stream was not refused: %v", err)
			}
		}
	})
	t.Run("https at the proxy", func(t *testing.T) {
		c := mechs(t, proto("https"))
		if !c.HasFeature("<mechanism>PLAIN</mechanism>") {
			t.Fatalf("no PLAIN: %s", c.Features.Raw)
		}
		if err := c.Auth("PLAIN", "alice", "alice-secret"); err != nil {
			t.Fatalf("PLAIN: %v", err)
		}
		c.Bind("proxied")
	})
	t.Run("untrusted proxy", func(t *testing.T) {
		cfg := srv.Config.Clone()
		cfg.HTTP.TrustedProxies = []string{}
		if err := srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		if m := mechs(t, proto("https")).Mechanisms(); len(m) != 0 {
			t.Fatalf("X-Forwarded-Proto believed from an untrusted peer: %v", m)
		}
	})
	t.Run("require_tls off", func(t *testing.T) {
		cfg := srv.Config.Clone()
		cfg.C2S.RequireTLS = false
		if err := srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		c := mechs(t, proto(""))
		if c.HasFeature("<mechanism>PLAIN</mechanism>") || !c.HasFeature("<mechanism>SCRAM-SHA-1</mechanism>") {
			t.Fatalf("features of an unencrypted stream: %s", c.Features.Raw)
		}
		if err := c.Auth("SCRAM-SHA-1", "alice", "alice-secret"); err != nil {
			t.Fatalf("SCRAM-SHA-1: %v", err)
		}
		c.Bind("plain")
	})
}

// A stream the server ends gets the stream error and <close/>; the server
// closes the connection once the client has answered with its own
// <close/> (RFC 7395 §3.6).
func TestServerCloses(t *testing.T) {
	srv := startServer(t, nil)
	opts := srv.WebSocketOptions(t)
	first := xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, opts, "PLAIN", "alice", "alice-secret", "same")
	xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, opts, "PLAIN", "alice", "alice-secret", "same")
	// RFC 6120 §7.7.2.2: the new session replaces the old one.
	first.ExpectStreamError("conflict")
}

// When the server stops, WebSocket streams end as TCP ones do, with
// <system-shutdown/> (RFC 6120 §4.9.3.20), and Run returns.
func TestShutdown(t *testing.T) {
	cfg := config.Default()
	cfg.Server.DataDir = t.TempDir()
	cfg.C2S.Listen, cfg.C2S.DirectTLSListen = []string{"127.0.0.1:0"}, nil
	cfg.HTTP.TLSListen = []string{"127.0.0.1:0"}
	cfg.S2S.Enabled = false // it would listen on 5269
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	_, https := srv.HTTPAddrs()
	ts := &testserver.Server{Server: srv, Config: cfg, Domain: "localhost", HTTPSAddr: https[0].String()}
	ts.AddUser(t, "alice", "alice-secret")
	opts := ts.WebSocketOptions(t)
	alice := xmpptest.LoginWebSocket(t, ts.WebSocketURL(), ts.Domain, opts, "PLAIN", "alice", "alice-secret", "web")
	pending := xmpptest.DialWebSocket(t, ts.WebSocketURL(), ts.Domain, opts)
	pending.OpenStream()

	cancel()
	alice.ExpectStreamError("system-shutdown")
	pending.ExpectStreamError("system-shutdown")
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// The server pings each stream (RFC 7395 §3.8); a client that answers
// stays, one that does not is disconnected after limits.ping_timeout.
func TestWebSocketPing(t *testing.T) {
	srv := startServer(t, func(c *config.Config) {
		c.HTTP.WebSocketPingInterval.Duration = 20 * time.Millisecond
		c.Limits.PingTimeout.Duration = 300 * time.Millisecond
	})
	var pings atomic.Int32
	opts := srv.WebSocketOptions(t)
	opts.OnPingReceived = func(context.Context, []byte) bool { pings.Add(1); return true }
	alice := xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, opts, "PLAIN", "alice", "alice-secret", "web")
	// Pings are answered while reading: read until several have come.
	deadline := time.Now().Add(xmpptest.Timeout)
	for i := 0; pings.Load() < 5; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d pings within %v", pings.Load(), xmpptest.Timeout)
		}
		id := fmt.Sprint("p", i)
		alice.Send("<iq xmlns='jabber:client' type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		if f := alice.Expect("jabber:client", "iq"); xmpptest.Attr(f, "id") != id || xmpptest.Attr(f, "type") != "result" {
			t.Fatalf("ping %s: %s", id, f.Raw)
		}
	}

	silent := srv.WebSocketOptions(t)
	silent.OnPingReceived = func(context.Context, []byte) bool { return false } // no pong
	c := xmpptest.DialWebSocket(t, srv.WebSocketURL(), srv.Domain, silent)
	c.OpenStream()
	if msg, err := c.Read(); err == nil {
		t.Fatalf("a client that does not answer pings got %q", msg)
	}
}

// host-meta lists the WebSocket and BOSH endpoints as clients reach
// them, wss:// and https:// over TLS or behind a proxy that says https,
// readable from any page (XEP-0156).
func TestHostMeta(t *testing.T) {
	srv := startServer(t, nil)
	hc := srv.HTTPClient(t, xmpptest.Timeout)
	get := func(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("GET %s: %s %v", url, resp.Status, resp.Header)
		}
		return resp, body
	}
	type xrd struct {
		XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
		Links   []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"Link"`
	}
	const relWS, relBOSH = "urn:xmpp:alt-connections:websocket", "urn:xmpp:alt-connections:xbosh"
	for _, tc := range []struct {
		name, url     string
		header        http.Header
		wantWS, wantB string
	}{
		{"https", "https://" + srv.HTTPSAddr, nil, srv.WebSocketURL(), srv.BOSHURL()},
		{"http", "http://" + srv.HTTPAddr, nil, wsURL(srv), "http://" + srv.HTTPAddr + "/http-bind"},
		{"behind a proxy", "http://" + srv.HTTPAddr, http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"example.org"}}, "wss://example.org/xmpp-websocket", "https://example.org/http-bind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tc.url+ws.HostMeta, tc.header)
			var doc xrd
			if err := xml.Unmarshal(body, &doc); err != nil || len(doc.Links) != 2 || doc.Links[0].Rel != relWS || doc.Links[0].Href != tc.wantWS || doc.Links[1].Rel != relBOSH || doc.Links[1].Href != tc.wantB {
				t.Fatalf("host-meta (%s): %s", resp.Header.Get("Content-Type"), body)
			}
			resp, body = get(t, tc.url+ws.HostMetaJSON, tc.header)
			var jrd struct {
				Links []struct{ Rel, Href string } `json:"links"`
			}
			if err := json.Unmarshal(body, &jrd); err != nil || len(jrd.Links) != 2 || jrd.Links[0].Rel != relWS || jrd.Links[0].Href != tc.wantWS || jrd.Links[1].Rel != relBOSH || jrd.Links[1].Href != tc.wantB || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("host-meta.json (%s): %s", resp.Header.Get("Content-Type"), body)
			}
		})
	}
	// The link advertised over TLS works.
	xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, srv.WebSocketOptions(t), "SCRAM-SHA-1", "alice", "alice-secret", "discovered")
}
