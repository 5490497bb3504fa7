package c2s

import (
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
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
