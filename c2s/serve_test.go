package c2s

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/starling-xmpp/starling/config"
)

// flakyListener fails its first accepts with errs, then hands out conns,
// then reports itself closed.
type flakyListener struct {
	errs  []error
	conns []net.Conn
	done  chan struct{}
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	if len(l.conns) > 0 {
		c := l.conns[0]
		l.conns = l.conns[1:]
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *flakyListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5222} }

// TestServeBacksOff: accept errors such as EMFILE (out of file
// descriptors) do not stop the listener: it pauses, doubling the pause up
// to a second, and goes on serving (issue 11 part 5).
func TestServeBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
		var errs []error
		for range 12 {
			errs = append(errs, emfile)
		}
		errs = append(errs, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)})
		server, client := net.Pipe()
		ln := &flakyListener{errs: errs, conns: []net.Conn{server}, done: make(chan struct{})}
		s := NewServer(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		start := time.Now()
		go func() { served <- s.Serve(ctx, ln, false) }()
		// The session reads the client's stream header: the pipe's other
		// end is written to once the conn has been accepted.
		client.Write([]byte("<"))
		if took := time.Since(start); took < 5*time.Second || took > 10*time.Second {
			t.Errorf("13 failed accepts paused %v in all, want 5ms doubling up to 1s each (about 7s)", took)
		}
		client.Close()
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("Serve returned %v", err)
		}
		synctest.Wait()
	})
}
