package c2s_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// BenchmarkChatMessage measures the hot path for one-to-one chat: the
// server reads a message from alice's TLS stream, stamps 'from', routes it
// to bob's session and writes it to bob's TLS stream. The clients send
// prebuilt bytes and only count what arrives, so the allocations reported
// are essentially the server's.
func BenchmarkChatMessage(b *testing.B) { benchmarkChatMessage(b, false) }

// BenchmarkChatMessageSM is BenchmarkChatMessage with stream management
// (XEP-0198) on bob's stream: the server keeps what it writes until bob
// acknowledges it, asks for acks, and bob answers each request.
func BenchmarkChatMessageSM(b *testing.B) { benchmarkChatMessage(b, true) }

func benchmarkChatMessage(b *testing.B, sm bool) {
	srv := testserver.Start(b, nil)
	srv.AddUser(b, "alice", "alice-secret")
	srv.AddUser(b, "bob", "bob-secret")
	alice := xmpptest.Login(b, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
	bob := xmpptest.Login(b, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "phone")
	if sm {
		bob.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
		if el := bob.MustNext(); el.Name.Local != "enabled" {
			b.Fatalf("enable: %s", el.Raw)
		}
	}

	msg := []byte(fmt.Sprintf("<message to='%s' type='chat' id='m1'><body>Hello Bob, this is a typical short chat message of a realistic length.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='8a7d2e1c-7f4b-4c39-9b1e-3c0f5c2f9d11'/></message>", bob.JID))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()

	// At most window messages are in flight, as with a client that
	// expects receipts: a sender that outruns its recipient's queue ends
	// the recipient's stream by design (the queue is bounded).
	const window = 100
	inflight := make(chan struct{}, window)
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			inflight <- struct{}{}
			if _, err := alice.Conn.Write(msg); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	end := []byte("</message>")
	req := []byte("<r xmlns='urn:xmpp:sm:3'/>")
	buf := make([]byte, 64<<10)
	var carry []byte
	for got := 0; got < b.N; {
		n, err := bob.Conn.Read(buf)
		if err != nil {
			b.Fatalf("bob read after %d messages: %v", got, err)
		}
		data := append(carry, buf[:n]...)
		k := bytes.Count(data, end)
		for range k {
			<-inflight
		}
		if i := bytes.LastIndex(data, req); sm && i >= 0 {
			// The count is of the stanzas handled before the
			// request: the messages before it.
			fmt.Fprintf(bob.Conn, "<a xmlns='urn:xmpp:sm:3' h='%d'/>", got+bytes.Count(data[:i], end))
		}
		got += k
		carry = append(carry[:0], data[max(0, len(data)-len(end)+1):]...)
	}
	b.StopTimer()
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
}
