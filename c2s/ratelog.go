package c2s

import (
	"log/slog"
	"sync"
	"time"
)

// rateLogInterval is how often an event is logged per client address at
// most.
const rateLogInterval = time.Minute

// rateLog logs an event about clients, such as a failed login, at most
// once per client address per rateLogInterval, so that an attacker cannot
// flood the log while fail2ban-style tools still see every address
// (README, "Failed logins"). A line says in "unlogged" how many events of
// that address went unlogged before it. mu guards every field below it.
type rateLog struct {
	now func() time.Time

	mu        sync.Mutex
	last      map[string]*rateRecord // by client key
	lastSweep time.Time
}

// rateRecord is when a client key's last line was logged, and how many
// events have not been logged since.
type rateRecord struct {
	at       time.Time
	unlogged int
}

// log writes msg with attrs at level Warn unless a line for key was
// written within the interval.
func (l *rateLog) log(log *slog.Logger, key, msg string, attrs ...any) {
	l.mu.Lock()
	now := l.now()
	if l.last == nil {
		l.last = make(map[string]*rateRecord)
		l.lastSweep = now
	}
	r := l.last[key]
	if r != nil && now.Sub(r.at) < rateLogInterval {
		r.unlogged++
		l.mu.Unlock()
		return
	}
	unlogged := 0
	if r == nil {
		r = &rateRecord{}
		l.last[key] = r
	} else {
		unlogged = r.unlogged
	}
	r.at, r.unlogged = now, 0
	if now.Sub(l.lastSweep) >= rateLogInterval {
		// A count not reported within ten intervals is dropped.
		for k, r := range l.last {
			if age := now.Sub(r.at); age >= rateLogInterval && r.unlogged == 0 || age >= 10*rateLogInterval {
				delete(l.last, k)
			}
		}
		l.lastSweep = now
	}
	l.mu.Unlock()

	if unlogged > 0 {
		attrs = append(attrs, "unlogged", unlogged)
	}
	log.Warn(msg, attrs...)
}
