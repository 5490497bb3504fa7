package c2s

import (
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/router"
)

// SessionInfo is a read-only snapshot of a client session, for an
// administrator's list of who is online (`starling sessions`).
type SessionInfo struct {
	JID jid.JID
	// Transport is "tcp", or what a Framed connection names itself
	// (Transporter: "websocket", "bosh"), of the connection that carries
	// the session, or carried it last when it is detached.
	Transport string
	// Addr is the client's address on that connection (for a trusted
	// proxy's connection, the one it forwarded for, as the transport
	// reports it).
	Addr string
	// TLS reports that the connection is encrypted (TLS, or a secure
	// transport below a Framed one).
	TLS bool
	// Since is when the resource was bound.
	Since time.Time
	// SM is the state of stream management (XEP-0198): "off" (not
	// enabled), "on" (enabled without resumption), "resumable",
	// "detached" (its connection is gone; it waits for a resumption
	// until DetachedUntil) or "resuming".
	SM            string
	DetachedUntil time.Time
	// Inactive reports that stanzas are held back for the client (a
	// Holder is set: it said it is inactive, XEP-0352).
	Inactive bool
	// Available and Priority are its broadcast presence (RFC 6121).
	Available bool
	Priority  int
}

// A Transporter is a Framed connection that names its transport for
// SessionInfo ("websocket", "bosh").
type Transporter interface {
	Transport() string
}

// Info returns a snapshot of sess, if it is a client session of this
// package (router.Router.HostSessions lists them, with other kinds).
func Info(sess router.Session) (SessionInfo, bool) {
	s, ok := sess.(*session)
	if !ok {
		return SessionInfo{}, false
	}
	info := SessionInfo{
		JID:       s.full,
		Since:     s.bound,
		Inactive:  s.holder.Load() != nil,
		Transport: "tcp",
		SM:        "off",
	}
	info.Available, info.Priority = s.Available()
	s.mu.Lock()
	c, state, id, since, timeout := s.last, s.state, s.id, s.since, s.timeout
	s.mu.Unlock()
	if c != nil {
		// raw, framed and tls were set before the connection carried
		// the session, and do not change.
		if c.framed {
			info.Transport = "framed"
			if t, ok := c.raw.(Transporter); ok {
				info.Transport = t.Transport()
			}
		}
		if a := c.raw.RemoteAddr(); a != nil {
			info.Addr = a.String()
		}
		info.TLS = c.tls
	}
	switch {
	case state == detached:
		info.SM = "detached"
		if !since.IsZero() {
			info.DetachedUntil = since.Add(timeout)
		}
	case state == resuming:
		info.SM = "resuming"
	case id != "":
		info.SM = "resumable"
	case s.smOn.Load():
		info.SM = "on"
	}
	return info, true
}
