package tlsconf

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// Session ticket keys (RFC 5077 §5.5; RFC 8446 §4.6.1, §8). A ticket is
// encrypted with the newest key of the ring, and decrypted by any key
// still in it. A new key is made once the newest is TicketKeyPeriod old,
// and a key is dropped TicketKeyLifetime after it was made: a ticket
// resumes for 18 to 24 hours after it was issued.
//
// Why these: a stolen ticket key decrypts every ticket made with it, and
// on TLS 1.2 a ticket holds the session's master secret, so the traffic
// of the sessions it resumes (RFC 5077 §5.5 asks for keys to change
// regularly; RFC 8446 §2.2 notes resumption without (EC)DHE loses forward
// secrecy, and Go's server requires psk_dhe_ke on 1.3). Six hours bounds
// what one key exposes to a quarter of a day's tickets; a day of
// acceptance covers a phone that reconnects on every network change, or
// each morning. Go's default, when each tls.Config keeps its own keys, is
// a new key every day kept for a week. The keys are random, in memory
// only, never written anywhere: a restart forgets them, and clients then
// make one full handshake each.
const (
	TicketKeyPeriod   = 6 * time.Hour
	TicketKeyLifetime = 4 * TicketKeyPeriod
)

// ticketExtraPrefix starts the entry the Store adds to a ticket's
// tls.SessionState.Extra: the id of the host's certificates (hostCerts).
const ticketExtraPrefix = "starling-certs/1:"

// ticketRing is the Store's session ticket keys. Its keys rotate lazily,
// by the Store's clock, when a ticket is made or opened: no timer, and a
// key past its lifetime is never used, though an idle server holds it in
// memory until the next handshake.
type ticketRing struct {
	now func() time.Time
	// newest is keys[0]'s creation time (UnixNano), read without mu on
	// every ticket to see whether a rotation is due.
	newest atomic.Int64

	mu   sync.Mutex  // guards keys and made, and the rotation
	keys [][32]byte  // newest first
	made []time.Time // made[i] is when keys[i] was
	enc  *tls.Config // holds keys (SetSessionTicketKeys); its EncryptTicket and DecryptTicket do the work
}

func newTicketRing(now func() time.Time) (*ticketRing, error) {
	r := &ticketRing{now: now, enc: &tls.Config{}}
	if err := r.rotate(now(), true); err != nil {
		return nil, err
	}
	return r, nil
}

// due rotates the keys if the newest is TicketKeyPeriod old.
func (r *ticketRing) due() error {
	now := r.now()
	if now.Sub(time.Unix(0, r.newest.Load())) < TicketKeyPeriod {
		return nil
	}
	return r.rotate(now, false)
}

// rotate makes a new key and drops those past their lifetime; unless
// force, only if it is still due (another handshake may have done it).
func (r *ticketRing) rotate(now time.Time, force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !force && now.Sub(r.made[0]) < TicketKeyPeriod {
		return nil
	}
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return err
	}
	keys := [][32]byte{k}
	made := []time.Time{now}
	for i := range r.keys {
		if now.Sub(r.made[i]) < TicketKeyLifetime && len(keys) < int(TicketKeyLifetime/TicketKeyPeriod) {
			keys = append(keys, r.keys[i])
			made = append(made, r.made[i])
		}
		clear(r.keys[i][:]) // our copy; the tls.Config's derived keys go with it
	}
	r.keys, r.made = keys, made
	r.enc.SetSessionTicketKeys(keys)
	r.newest.Store(now.UnixNano())
	return nil
}

// wrapSession is every ServerConfig's tls.Config.WrapSession: the ticket
// is the session state encrypted with the ring's newest key, and names
// the host's certificates.
func (s *Store) wrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	if err := s.tickets.due(); err != nil {
		return nil, err
	}
	ss.Extra = append(ss.Extra, s.cur.Load().pick(cs.ServerName).id)
	return s.tickets.enc.EncryptTicket(cs, ss)
}

// unwrapSession is every ServerConfig's tls.Config.UnwrapSession. A
// ticket resumes if a key of the ring opens it and the host it is for
// (the new ClientHello's SNI) still has the certificates the ticket was
// issued with, which a resumed handshake does not show again: the client
// keeps trusting the certificate it checked, and binds to it
// (tls-server-end-point, see PresentedLeaf). Otherwise the handshake is a
// full one, never an error.
func (s *Store) unwrapSession(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	if err := s.tickets.due(); err != nil {
		return nil, err
	}
	ss, err := s.tickets.enc.DecryptTicket(identity, cs)
	if ss == nil || err != nil {
		return nil, nil
	}
	id := s.cur.Load().pick(cs.ServerName).id
	for _, e := range ss.Extra {
		if bytes.Equal(e, id) {
			return ss, nil
		}
	}
	return nil, nil
}

// chosenLeaves remember, for the connections of hosts with two
// certificates, which leaf their handshake presented, until
// PresentedLeaf takes it. Entries of handshakes that failed, or of
// listeners that never ask (HTTPS, s2s), are swept once they are
// chosenMaxAge old.
type chosenLeaves struct {
	mu    sync.Mutex // guards m and swept
	m     map[net.Conn]chosen
	swept time.Time
}

type chosen struct {
	leaf *x509.Certificate
	at   time.Time
}

// chosenMaxAge bounds how long a choice waits for PresentedLeaf: longer
// than any handshake (limits.connect_timeout bounds it, 30 seconds by
// default).
const chosenMaxAge = 10 * time.Minute

func (c *chosenLeaves) record(conn net.Conn, leaf *x509.Certificate, now time.Time) {
	if conn == nil || !reflect.TypeOf(conn).Comparable() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[net.Conn]chosen{}
	}
	c.m[conn] = chosen{leaf, now}
	if now.Sub(c.swept) >= time.Minute {
		c.swept = now
		for k, v := range c.m {
			if now.Sub(v.at) >= chosenMaxAge {
				delete(c.m, k)
			}
		}
	}
}

func (c *chosenLeaves) take(conn net.Conn) *x509.Certificate {
	if conn == nil || !reflect.TypeOf(conn).Comparable() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[conn]
	if !ok {
		return nil
	}
	delete(c.m, conn)
	return v.leaf
}
