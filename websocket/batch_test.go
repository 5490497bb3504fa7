package websocket

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/stream"
)

// writeCounter counts the writes to the connections it accepts.
type writeCounter struct {
	net.Listener
	writes *atomic.Int32
}

func (l writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return countedConn{c, l.writes}, err
}

type countedConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// What the server writes between two Flushes goes out in one write to the
// connection, each element still its own message; a control frame —
// a pong to the client's ping, the server's ping, the close frame — goes
// out at once even with a batch open, after what the batch holds.
func TestBatch(t *testing.T) {
	const timeout = 10 * time.Second
	conns := make(chan *Conn)
	done := make(chan struct{})
	defer close(done)
	h := NewHandler(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)), func(ctx context.Context, c *Conn, _ bool) {
		conns <- c
		<-done
	})
	var writes atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = writeCounter{srv.Listener, &writes}
	srv.Start()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var pings atomic.Int32
	client, _, err := websocket.Dial(ctx, "ws://"+srv.Listener.Addr().String()+Path, &websocket.DialOptions{
		Subprotocols:   []string{Subprotocol},
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	c := <-conns

	// The server's reader, which answers the client's pings and its close
	// (there is nothing else to read).
	readEnd := make(chan error, 1)
	go func() {
		_, err := c.Next()
		readEnd <- err
	}()
	// The client's reader: every message, then how reading ended.
	msgs := make(chan string, 10)
	clientEnd := make(chan error, 1)
	go func() {
		for {
			typ, b, err := client.Read(context.Background())
			if err != nil {
				clientEnd <- err
				return
			}
			if typ != websocket.MessageText {
				b = []byte("binary: " + string(b))
			}
			msgs <- string(b)
		}
	}()
	stanza := func(i int) string {
		return "<message to='a@b' id='" + string(rune('0'+i)) + "'><body>hi</body></message>"
	}
	want := func(i int) string {
		return "<message xmlns='jabber:client' to='a@b' id='" + string(rune('0'+i)) + "'><body>hi</body></message>"
	}
	write := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := c.Write([]byte(stanza(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			select {
			case got := <-msgs:
				if got != want(i) {
					t.Fatalf("message %d: %q, want %q", i, got, want(i))
				}
			case err := <-clientEnd:
				t.Fatalf("message %d: the client's reading ended: %v", i, err)
			case <-ctx.Done():
				t.Fatalf("message %d: not received", i)
			}
		}
	}

	t.Run("a batch is one write of one message per element", func(t *testing.T) {
		before := writes.Load()
		write(0, 4)
		if n := writes.Load() - before; n != 0 {
			t.Fatalf("%d writes before Flush", n)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := writes.Load() - before; n != 1 {
			t.Fatalf("a batch of 4 messages took %d writes", n)
		}
		expect(0, 4)
	})

	t.Run("the pong to a client's ping is not held", func(t *testing.T) {
		write(4, 6) // and no Flush
		if err := client.Ping(ctx); err != nil {
			t.Fatalf("client's ping with a batch open: %v", err)
		}
		// The messages went before the pong.
		if len(msgs) != 2 {
			t.Fatalf("%d messages before the pong, want 2", len(msgs))
		}
		expect(4, 6)
	})

	t.Run("the server's ping is not held", func(t *testing.T) {
		write(6, 7)
		if err := c.ws.Ping(ctx); err != nil {
			t.Fatalf("server's ping with a batch open: %v", err)
		}
		if pings.Load() != 1 {
			t.Fatalf("the client saw %d pings", pings.Load())
		}
		expect(6, 7)
	})

	t.Run("the close frame is not held", func(t *testing.T) {
		if _, err := c.Write([]byte(stream.Close)); err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		select {
		case got := <-msgs:
			if got != closeFrame {
				t.Fatalf("got %q, want %q", got, closeFrame)
			}
		case <-ctx.Done():
			t.Fatal("no <close/>")
		}
		if err := <-clientEnd; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Fatalf("the client's reading ended with %v, want a normal closure", err)
		}
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-readEnd; err == nil {
			t.Fatal("the server's reader got an element")
		}
		// Nothing follows the close frame (RFC 6455 §5.5.1).
		if _, err := c.Write([]byte(stanza(7))); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a write after the close frame: %v", err)
		}
	})
}

// The frame header of a text message (RFC 6455 §5.2).
func TestTextHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "\x81\x00"}, {125, "\x81\x7d"}, {126, "\x81\x7e\x00\x7e"}, {0xffff, "\x81\x7e\xff\xff"},
		{0x10000, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"},
	} {
		if got := string(textHeader(nil, tc.n)); got != tc.want {
			t.Errorf("%d: % x, want % x", tc.n, got, tc.want)
		}
	}
}

// Our <close/> answering the client's (RFC 7395 §3.6) waits for the close
// frame, which Close sends next, and both go out in one write; CloseNow
// sends it too, without the close frame.
func TestCloseAnswer(t *testing.T) {
	for _, now := range []bool{false, true} {
		name := "Close"
		if now {
			name = "CloseNow"
		}
		t.Run(name, func(t *testing.T) {
			const timeout = 10 * time.Second
			conns := make(chan *Conn)
			done := make(chan struct{})
			defer close(done)
			h := NewHandler(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)), func(ctx context.Context, c *Conn, _ bool) {
				conns <- c
				<-done
			})
			var writes atomic.Int32
			srv := httptest.NewUnstartedServer(h)
			srv.Listener = writeCounter{srv.Listener, &writes}
			srv.Start()
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			client, _, err := websocket.Dial(ctx, "ws://"+srv.Listener.Addr().String()+Path, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
			if err != nil {
				t.Fatal(err)
			}
			defer client.CloseNow()
			c := <-conns

			if err := client.Write(ctx, websocket.MessageText, []byte(closeFrame)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Next(); !errors.Is(err, stream.ErrClosed) {
				t.Fatalf("the client's <close/> read as %v", err)
			}
			before := writes.Load()
			if _, err := c.Write([]byte(stream.Close)); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			if n := writes.Load() - before; n != 0 {
				t.Fatalf("%d writes before the close frame", n)
			}
			closed := make(chan error, 1)
			go func() {
				if now {
					closed <- c.CloseNow()
				} else {
					closed <- c.Close()
				}
			}()
			typ, msg, err := client.Read(ctx)
			if err != nil || typ != websocket.MessageText || string(msg) != closeFrame {
				t.Fatalf("the client read %v %q %v, want <close/>", typ, msg, err)
			}
			_, _, err = client.Read(ctx)
			if now {
				if err == nil || websocket.CloseStatus(err) != -1 {
					t.Fatalf("after <close/> and CloseNow, the client read %v, want the connection's end", err)
				}
			} else if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Fatalf("after <close/>, the client read %v, want the close frame", err)
			}
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			if n := writes.Load() - before; n != 1 {
				t.Fatalf("<close/> and the close frame took %d writes", n)
			}
		})
	}
}
