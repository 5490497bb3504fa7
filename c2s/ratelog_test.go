package c2s

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/fakeclock"
)

// TestRateLog: one line per address per interval, the next one counting
// the events that went unlogged; other addresses are logged apart.
func TestRateLog(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	l := rateLog{now: clk.Now}
	l.log(log, "192.0.2.7", "authentication failed", "addr", "192.0.2.7", "reason", "not-authorized")
	for range 3 {
		clk.Advance(10 * time.Second)
		l.log(log, "192.0.2.7", "authentication failed", "addr", "192.0.2.7", "reason", "not-authorized")
	}
	l.log(log, "198.51.100.1", "authentication failed", "addr", "198.51.100.1", "reason", "temporary-auth-failure")
	clk.Advance(30 * time.Second)
	l.log(log, "192.0.2.7", "authentication failed", "addr", "192.0.2.7", "reason", "not-authorized")
	want := `level=WARN msg="authentication failed" addr=192.0.2.7 reason=not-authorized
level=WARN msg="authentication failed" addr=198.51.100.1 reason=temporary-auth-failure
level=WARN msg="authentication failed" addr=192.0.2.7 reason=not-authorized unlogged=3
`
	if got := buf.String(); got != want {
		t.Fatalf("logged:\n%s\nwant:\n%s", got, want)
	}
	clk.Advance(11 * rateLogInterval)
	l.log(log, "203.0.113.1", "authentication failed")
	if len(l.last) != 1 {
		t.Errorf("%d addresses remembered after a quiet while, want 1", len(l.last))
	}
}
