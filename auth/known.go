package auth

import (
	"hash/maphash"
	"sync"
	"time"
)

// KnownAddrs remembers, for each account, the client addresses (keys such
// as an IPv4 address or an IPv6 /64) that logged in to it successfully
// within a retention period, so that the account's failed-login throttle
// judges them by their own record and strangers cannot lock the owner out
// (RFC 6120 §13.9.4 warns that account lockout is a denial of service).
// It keeps at most KnownPerAccount addresses per account, the most recent,
// as 64-bit keyed hashes, so a record costs a few dozen bytes. It lives in
// memory: a restart forgets it. It is safe for concurrent use: mu guards
// every field below it.
type KnownAddrs struct {
	retain time.Duration
	now    func() time.Time
	seed   maphash.Seed

	mu        sync.Mutex
	accounts  map[string]*[KnownPerAccount]knownAddr
	lastSweep time.Time
}

// KnownPerAccount is the most addresses remembered per account: a
// phone, a laptop, home, office and a few networks in between.
const KnownPerAccount = 8

// knownAddr is one address that logged in: its hash and when (unix
// seconds); at == 0 is an empty slot.
type knownAddr struct {
	h  uint64
	at int64
}

// NewKnownAddrs returns a KnownAddrs that forgets an address retain after
// its last successful login; now is the clock (time.Now if nil).
func NewKnownAddrs(retain time.Duration, now func() time.Time) *KnownAddrs {
	if now == nil {
		now = time.Now
	}
	return &KnownAddrs{
		retain:    retain,
		now:       now,
		seed:      maphash.MakeSeed(),
		accounts:  make(map[string]*[KnownPerAccount]knownAddr),
		lastSweep: now(),
	}
}

// Known reports whether addr logged in to account within the retention
// period.
func (k *KnownAddrs) Known(account, addr string) bool {
	h := maphash.String(k.seed, addr)
	k.mu.Lock()
	defer k.mu.Unlock()
	slots := k.accounts[account]
	if slots == nil {
		return false
	}
	oldest := k.now().Add(-k.retain).Unix()
	for _, s := range slots {
		if s.h == h && s.at != 0 && s.at > oldest {
			return true
		}
	}
	return false
}

// Add records a successful login to account from addr, replacing the
// account's least recent address when all slots are taken.
func (k *KnownAddrs) Add(account, addr string) {
	h := maphash.String(k.seed, addr)
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	slots := k.accounts[account]
	if slots == nil {
		slots = new([KnownPerAccount]knownAddr)
		k.accounts[account] = slots
	}
	at := max(now.Unix(), 1)
	victim := 0
	for i, s := range slots {
		if s.h == h && s.at != 0 {
			victim = i
			break
		}
		if s.at < slots[victim].at {
			victim = i
		}
	}
	slots[victim] = knownAddr{h: h, at: at}
	if now.Sub(k.lastSweep) >= k.retain/24 {
		k.sweep(now)
	}
}

// sweep forgets the accounts whose every address is past retention.
func (k *KnownAddrs) sweep(now time.Time) {
	oldest := now.Add(-k.retain).Unix()
	for account, slots := range k.accounts {
		live := false
		for _, s := range slots {
			live = live || s.at > oldest
		}
		if !live {
			delete(k.accounts, account)
		}
	}
	k.lastSweep = now
}
