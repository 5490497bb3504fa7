package c2s

import (
	"log/slog"
	"sync"
	"time"
)

// failLogInterval is how often a failed login is logged per client
// address at most.
const failLogInterval = time.Minute

// failLog logs failed logins, at most one line per client address per
// failLogInterval, so that an attacker cannot flood the log while
// fail2ban-style tools still see every address that fails (README, "Failed
// logins"). A line says how many failures of that address went unlogged
// before it. mu guards every field below it.
type failLog struct {
	now func() time.Time

	mu        sync.Mutex
	last      map[string]*failRecord // by client key
	lastSweep time.Time
}

// failRecord is when a client key's last line was logged, and how many
// failures have not been logged since.
type failRecord struct {
	at       time.Time
	unlogged int
}

// failure describes one failed login. It never holds a password or a
// SASL payload (DESIGN.md, Logging).
type failure struct {
	addr      string // the client's IP address (after trusted proxies)
	account   string // bare JID, "" if the client never named one
	mechanism string
	reason    string // the SASL condition sent
	limit     string // "address" or "account" for a throttled attempt
}

// log writes f unless a line for key was written within the interval.
func (l *failLog) log(log *slog.Logger, key string, f failure) {
	l.mu.Lock()
	now := l.now()
	if l.last == nil {
		l.last = make(map[string]*failRecord)
		l.lastSweep = now
	}
	r := l.last[key]
	if r != nil && now.Sub(r.at) < failLogInterval {
		r.unlogged++
		l.mu.Unlock()
		return
	}
	unlogged := 0
	if r == nil {
		r = &failRecord{}
		l.last[key] = r
	} else {
		unlogged = r.unlogged
	}
	r.at, r.unlogged = now, 0
	if now.Sub(l.lastSweep) >= failLogInterval {
		// A count not reported within ten intervals is dropped.
		for k, r := range l.last {
			if age := now.Sub(r.at); age >= failLogInterval && r.unlogged == 0 || age >= 10*failLogInterval {
				delete(l.last, k)
			}
		}
		l.lastSweep = now
	}
	l.mu.Unlock()

	attrs := []any{"addr", f.addr, "account", f.account, "mechanism", f.mechanism, "reason", f.reason}
	if f.limit != "" {
		attrs = append(attrs, "limit", f.limit)
	}
	if unlogged > 0 {
		attrs = append(attrs, "unlogged", unlogged)
	}
	log.Warn("authentication failed", attrs...)
}
