package websocket_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// BenchmarkChatMessage is c2s's BenchmarkChatMessage over XMPP over
// WebSocket: the server reads a message from alice's wss stream (one
// WebSocket message), stamps 'from', routes it to bob's session and
// writes it to bob's wss stream as one WebSocket message of its own. The
// clients send prebuilt bytes and only count the messages that arrive, so
// most of the allocations reported are the server's (the clients' masking
// and framing are coder/websocket's).
func BenchmarkChatMessage(b *testing.B) {
	srv := testserver.Start(b, nil)
	srv.AddUser(b, "alice", "alice-secret")
	srv.AddUser(b, "bob", "bob-secret")
	alice := xmpptest.LoginWebSocket(b, srv.WebSocketURL(), srv.Domain, srv.WebSocketOptions(b), "SCRAM-SHA-256", "alice", "alice-secret", "laptop")
	bob := xmpptest.LoginWebSocket(b, srv.WebSocketURL(), srv.Domain, srv.WebSocketOptions(b), "SCRAM-SHA-256", "bob", "bob-secret", "phone")

	msg := []byte(fmt.Sprintf("<message xmlns='jabber:client' to='%s' type='chat' id='m1'><body>Hello Bob, this is a typical short chat message of a realistic length.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='8a7d2e1c-7f4b-4c39-9b1e-3c0f5c2f9d11'/></message>", bob.JID))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()

	// At most window messages in flight, as in c2s's benchmark.
	const window = 100
	inflight := make(chan struct{}, window)
	sent := make(chan error, 1)
	ctx := context.Background()
	go func() {
		for i := 0; i < b.N; i++ {
			inflight <- struct{}{}
			if err := alice.WS.Write(ctx, websocket.MessageText, msg); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	buf := make([]byte, 4096)
	for got := 0; got < b.N; got++ {
		_, r, err := bob.WS.Reader(ctx)
		if err == nil {
			_, err = io.CopyBuffer(io.Discard, r, buf)
		}
		if err != nil {
			b.Fatalf("bob read after %d messages: %v", got, err)
		}
		<-inflight
	}
	b.StopTimer()
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
}
