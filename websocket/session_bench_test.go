package websocket_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/server"
	ws "github.com/starling-xmpp/starling/websocket"
)

// BenchmarkIdleSession measures what an idle, authenticated XMPP over
// WebSocket session holds: each op logs a client in (SASL PLAIN, bind,
// initial presence, roster) and leaves its session open; then, after a GC, the
// growth of the heap's live objects and of goroutine stacks divided by
// the sessions is reported as bytes/session. The clients are raw
// connections with a few hundred bytes of state each (rawClient), on the
// plain listener as if behind a TLS-terminating proxy, so that the figure
// is the server's session — c2s's and this package's — without
// crypto/tls's. ns/op is a login's.
func BenchmarkIdleSession(b *testing.B) {
	srv := startQuiet(b)
	// An account each: the sessions of one account would get each
	// other's presence, which they do not read.
	for i := range b.N {
		srv.AddUser(b, fmt.Sprintf("u%d", i), "secret")
	}
	before := liveBytes()
	clients := make([]*rawClient, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := dialRaw(b, srv.HTTPAddr)
		c.login(b, srv.Domain, fmt.Sprintf("u%d", i), "secret", "idle")
		clients = append(clients, c)
	}
	b.StopTimer()
	after := liveBytes()
	b.ReportMetric(float64(after.heap+after.stacks-before.heap-before.stacks)/float64(b.N), "bytes/session")
	b.ReportMetric(float64(after.stacks-before.stacks)/float64(b.N), "stack-bytes/session")
	for _, c := range clients {
		c.conn.Close()
	}
}

// BenchmarkLogin is one complete login over XMPP over WebSocket, as
// BenchmarkIdleSession's, then the end of the stream and
// of the WebSocket connection (RFC 7395 §3.6). Without TLS (see
// BenchmarkIdleSession), the allocations are the HTTP upgrade's, c2s's,
// the SASL exchange's and this package's.
func BenchmarkLogin(b *testing.B) {
	srv := startQuiet(b)
	srv.AddUser(b, "alice", "alice-secret")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := dialRaw(b, srv.HTTPAddr)
		c.login(b, srv.Domain, "alice", "alice-secret", "bench")
		c.send(b, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
		c.until(b, "<close ")
		c.closeWS(b)
	}
}

// liveBytes is the heap's live objects and the goroutine stacks, after
// a GC.
func liveBytes() (live struct{ heap, stacks int64 }) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	live.heap, live.stacks = int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
	return live
}

// startQuiet runs a server on loopback that logs nothing (the test
// server keeps every line of its log, which would count as the
// sessions').
func startQuiet(b *testing.B) *testserver.Server {
	b.Helper()
	cfg := config.Default()
	cfg.Server.DataDir = b.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLSListen = nil
	cfg.HTTP.Listen = []string{"127.0.0.1:0"}
	cfg.HTTP.TLSListen = nil
	cfg.S2S.Enabled = false
	cfg.S2S.Listen = []string{"127.0.0.1:0"}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	plain, _ := s.HTTPAddrs()
	return &testserver.Server{Server: s, Config: cfg, Domain: cfg.Server.Hosts[0], HTTPAddr: plain[0].String()}
}

// rawClient is the least a WebSocket client can be (RFC 6455): the
// handshake written by hand, masked text frames out (with a zero key),
// frames parsed from a small buffer.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	msg  []byte
}

// dialRaw upgrades a connection to addr's WebSocket endpoint, the
// connection being https at a trusted proxy (the default trusted_proxies
// is loopback), as XMPP requires for SASL.
func dialRaw(b *testing.B, addr string) *rawClient {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 256)}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\nX-Forwarded-Proto: https\r\n\r\n", ws.Path, addr, ws.Subprotocol)
	status, err := c.br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		b.Fatalf("upgrade: %q %v", status, err)
	}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if line == "\r\n" {
			return c
		}
	}
}

// send writes s as one masked text frame.
func (c *rawClient) send(b *testing.B, s string) {
	b.Helper()
	hdr := []byte{0x81, 0}
	switch {
	case len(s) < 126:
		hdr[1] = 0x80 | byte(len(s))
	default:
		hdr[1] = 0x80 | 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(s)))
	}
	hdr = append(hdr, 0, 0, 0, 0) // the masking key: masking is a no-op
	if _, err := c.conn.Write(append(hdr, s...)); err != nil {
		b.Fatal(err)
	}
}

// next reads the next text message, answering pings; a close frame is
// io.EOF.
func (c *rawClient) next() ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			if _, err := io.ReadFull(c.br, l[:]); err != nil {
				return nil, err
			}
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			if _, err := io.ReadFull(c.br, l[:]); err != nil {
				return nil, err
			}
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		c.msg = append(c.msg[:0], make([]byte, n)...)
		if _, err := io.ReadFull(c.br, c.msg); err != nil {
			return nil, err
		}
		switch h[0] & 0x0f {
		case 0x1:
			return c.msg, nil
		case 0x8:
			return nil, io.EOF
		case 0x9: // ping: pong with its payload
			pong := append([]byte{0x8a, 0x80 | byte(n), 0, 0, 0, 0}, c.msg...)
			if _, err := c.conn.Write(pong); err != nil {
				return nil, err
			}
		}
	}
}

// until reads messages up to one containing substr.
func (c *rawClient) until(b *testing.B, substr string) []byte {
	b.Helper()
	for {
		m, err := c.next()
		if err != nil {
			b.Fatalf("waiting for %q: %v", substr, err)
		}
		if bytes.Contains(m, []byte(substr)) {
			return m
		}
	}
}

// login opens the stream, authenticates with PLAIN, binds resource,
// sends initial presence and gets the roster: once the roster has come,
// the server has handled the presence too.
func (c *rawClient) login(b *testing.B, domain, user, password, resource string) {
	b.Helper()
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='" + domain + "' version='1.0'/>"
	c.send(b, open)
	c.until(b, "<stream:features")
	c.send(b, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password))+"</auth>")
	c.until(b, "<success")
	c.send(b, open)
	c.until(b, "<stream:features")
	c.send(b, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>")
	c.until(b, "id='bind'")
	c.send(b, "<presence/>")
	c.send(b, "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	c.until(b, "id='roster'")
}

// closeWS ends the WebSocket connection with the closing handshake.
func (c *rawClient) closeWS(b *testing.B) {
	b.Helper()
	if _, err := c.conn.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}); err != nil {
		b.Fatal(err)
	}
	for {
		if _, err := c.next(); err != nil {
			break
		}
	}
	c.conn.Close()
}
