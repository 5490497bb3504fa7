package c2s

import "github.com/starling-xmpp/starling/router"

// Client is what a module may ask of a client session beyond
// router.Session; every session c2s binds implements it (type-assert the
// router.Session of an event).
type Client interface {
	router.Session
	// Detached reports that the session has lost its connection and
	// waits for a resumption (XEP-0198 §5).
	Detached() bool
	// SetHolder makes h decide, from now on, which stanzas Deliver holds
	// back instead of queueing them (client state indication, XEP-0352);
	// nil holds nothing back. What h holds is h's to release with
	// DeliverNow.
	SetHolder(h Holder)
	// DeliverNow queues raw as Deliver does, without asking the holder.
	DeliverNow(raw []byte) bool
}

// Holder keeps stanzas back from a session (Client.SetHolder). Hold is
// called by Deliver, from any goroutine, for each stanza: true means the
// holder has kept it. A holder that lets a stanza through after keeping
// others releases those first (with DeliverNow), so that the session sees
// them in order.
type Holder interface {
	Hold(raw []byte) bool
}
