package c2s

import (
	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
)

// The events c2s fires (package event) on Server.Bus.

// SessionBound is fired when a session has bound its resource (RFC 6120
// §7) and is in the router.
type SessionBound struct {
	Session router.Session
}

// ClientStanza is fired (reused for each stanza: a handler must not keep
// it) for each stanza a bound client sends, its 'from'
// stamped with the session's full JID (RFC 6120 §8.1.2.1) and a missing
// 'to' of a message set to the user's bare JID (§10.3.1), before it is
// routed. A handler that stops it has dealt with it: the presence module
// handles every presence stanza; message carbons (XEP-0280) copy messages
// and let them go on.
type ClientStanza struct {
	Session router.Session
	Stanza  *stanza.Stanza
}

// SessionEnded is fired once a bound session has left the router, however
// it ended (the client closed it, the connection broke, it was replaced):
// the presence module sends unavailable presence for it (RFC 6121
// §4.5.3.2), other modules forget it.
type SessionEnded struct {
	Session router.Session
}

// ClientNonza is fired (reused: a handler must not keep it) for each
// top-level element a bound client sends that is neither a stanza nor
// stream management's (XEP-0198): client state indication (XEP-0352)
// sends <active/> and <inactive/>. A handler that stops it has handled
// it; if none does, the stream ends with <unsupported-stanza-type/> (RFC
// 6120 §4.9.3.24).
type ClientNonza struct {
	Session Client
	Element *stream.Element
}

// SessionDetached is fired when a session that stream management made
// resumable (XEP-0198 §5) loses its connection: it stays bound and
// available, what is sent to it waits, and it either resumes
// (SessionResumed) or ends when its resumption timeout passes
// (SessionEnded).
type SessionDetached struct {
	Session Client
	// Pending are the stanzas its client has not acknowledged and those
	// waiting to be written, oldest first: what the client will get when
	// it resumes (push notifications, XEP-0357, wake it for them). Read
	// only, and not to be kept.
	Pending [][]byte
}

// SessionResumed is fired when a detached session was resumed on a new
// connection (XEP-0198 §5), before what waited for it is sent.
type SessionResumed struct {
	Session Client
}

// EndSessions is not fired by c2s but handled by it: whoever fires it
// (event.Fire) on Server.Bus asks for client sessions to end, as an
// administrator's command does (XEP-0133 §4.5). A full JID ends the
// session bound to it, a bare JID every session of the account; a
// resumable session waiting for its client ends too. Each gets the stream
// error <policy-violation/> (RFC 6120 §4.9.3.14) with Text, as ejabberd's
// kicked sessions do; c2s adds to Ended how many sessions it ended.
type EndSessions struct {
	JID   jid.JID
	Text  string
	Ended int
}
