package roster

import "github.com/starling-xmpp/starling/storage"

// state is one contact's subscription state as RFC 6121 Appendix A names
// it: the subscription, the pending requests each way and pre-approval.
type state struct {
	sub      storage.Subscription
	out      bool // "Pending Out": the user asked to subscribe
	in       bool // "Pending In": the contact asked to subscribe
	approved bool // the user pre-approved the contact (§3.4)
}

func (s state) to() bool   { return s.sub == storage.SubTo || s.sub == storage.SubBoth }
func (s state) from() bool { return s.sub == storage.SubFrom || s.sub == storage.SubBoth }

func subscription(to, from bool) storage.Subscription {
	switch {
	case to && from:
		return storage.SubBoth
	case to:
		return storage.SubTo
	case from:
		return storage.SubFrom
	}
	return storage.SubNone
}

func (s state) withTo(to bool) state     { s.sub = subscription(to, s.from()); return s }
func (s state) withFrom(from bool) state { s.sub = subscription(s.to(), from); return s }

// The transitions below return the new state and whether the stanza is
// routed on (outbound) or delivered to the user (inbound). The tables are
// RFC 6121 Appendix A.2 (outbound) and A.3 (inbound).

// outSubscribe: the user asks for the contact's presence (A.2.1). The
// request is routed even when already subscribed, so that a contact whose
// server lost the state can answer again.
func outSubscribe(s state) (state, bool) {
	if !s.to() {
		s.out = true
	}
	return s, true
}

// outUnsubscribe: the user cancels its subscription to the contact (A.2.2).
func outUnsubscribe(s state) (state, bool) {
	s.out = false
	return s.withTo(false), true
}

// outSubscribed: the user approves the contact's request (A.2.3), or
// pre-approves one not yet made (§3.4), which is not routed.
func outSubscribed(s state) (state, bool) {
	switch {
	case s.from():
		return s, false
	case s.in:
		s.in, s.approved = false, false
		return s.withFrom(true), true
	default:
		s.approved = true
		return s, false
	}
}

// outUnsubscribed: the user refuses the contact's request or cancels the
// contact's subscription (A.2.4); it also withdraws a pre-approval.
func outUnsubscribed(s state) (state, bool) {
	route := s.from() || s.in
	s.in, s.approved = false, false
	return s.withFrom(false), route
}

// inSubscribe: the contact asks for the user's presence (A.3.1). deliver
// is false when the server answers by itself (already subscribed, or
// pre-approved: then autoApprove is true).
func inSubscribe(s state) (next state, deliver, autoApprove bool) {
	switch {
	case s.from():
		return s, false, true
	case s.approved:
		s.approved = false
		return s.withFrom(true), false, true
	case s.in:
		return s, false, false // already pending: no state change
	}
	s.in = true
	return s, true, false
}

// inUnsubscribe: the contact cancels its subscription to the user (A.3.2).
func inUnsubscribe(s state) (state, bool) {
	if !s.from() && !s.in {
		return s, false
	}
	s.in = false
	return s.withFrom(false), true
}

// inSubscribed: the contact approves the user's request (A.3.3); without
// a pending request it is ignored.
func inSubscribed(s state) (state, bool) {
	if !s.out {
		return s, false
	}
	s.out = false
	return s.withTo(true), true
}

// inUnsubscribed: the contact refuses the user's request or cancels the
// user's subscription (A.3.4).
func inUnsubscribed(s state) (state, bool) {
	if !s.to() && !s.out {
		return s, false
	}
	s.out = false
	return s.withTo(false), true
}
