package roster

import (
	"testing"

	"github.com/starling-xmpp/starling/storage"
)

// The state names of RFC 6121 Appendix A.1.
var (
	none       = state{sub: storage.SubNone}
	noneOut    = state{sub: storage.SubNone, out: true}
	noneIn     = state{sub: storage.SubNone, in: true}
	noneOutIn  = state{sub: storage.SubNone, out: true, in: true}
	to         = state{sub: storage.SubTo}
	toIn       = state{sub: storage.SubTo, in: true}
	from       = state{sub: storage.SubFrom}
	fromOut    = state{sub: storage.SubFrom, out: true}
	both       = state{sub: storage.SubBoth}
	noneApprov = state{sub: storage.SubNone, approved: true}
	allStates  = []state{none, noneOut, noneIn, noneOutIn, to, toIn, from, fromOut, both}
)

func name(s state) string {
	n := string(s.sub)
	if s.out {
		n += "+out"
	}
	if s.in {
		n += "+in"
	}
	if s.approved {
		n += "+approved"
	}
	return n
}

// transitionTest checks a transition over every state of Appendix A.1:
// the states listed in want change as given, with the given routing or
// delivery; all others stay as they are and are not passed on.
func transitionTest(t *testing.T, f func(state) (state, bool), want map[state]state, passed map[state]bool) {
	t.Helper()
	for _, s := range allStates {
		next, pass := f(s)
		wantNext, ok := want[s]
		if !ok {
			wantNext = s
		}
		if next != wantNext || pass != passed[s] {
			t.Errorf("%s → %s, passed on %v; want %s, %v", name(s), name(next), pass, name(wantNext), passed[s])
		}
	}
}

// A.2.1: routed in every state (also when already subscribed, see
// outSubscribe), the state changes only where a request can be pending.
func TestOutboundSubscribe(t *testing.T) {
	all := map[state]bool{}
	for _, s := range allStates {
		all[s] = true
	}
	transitionTest(t, outSubscribe, map[state]state{
		none: noneOut, noneIn: noneOutIn, from: fromOut,
	}, all)
}

// A.2.2.
func TestOutboundUnsubscribe(t *testing.T) {
	all := map[state]bool{}
	for _, s := range allStates {
		all[s] = true
	}
	transitionTest(t, outUnsubscribe, map[state]state{
		noneOut: none, noneOutIn: noneIn, to: none, toIn: noneIn, fromOut: from, both: from,
	}, all)
}

// A.2.3, with pre-approval (§3.4) where there is nothing to approve.
func TestOutboundSubscribed(t *testing.T) {
	transitionTest(t, outSubscribed, map[state]state{
		none:      noneApprov,
		noneOut:   {sub: storage.SubNone, out: true, approved: true},
		noneIn:    from,
		noneOutIn: fromOut,
		to:        {sub: storage.SubTo, approved: true},
		toIn:      both,
	}, map[state]bool{noneIn: true, noneOutIn: true, toIn: true})
}

// A.2.4.
func TestOutboundUnsubscribed(t *testing.T) {
	transitionTest(t, outUnsubscribed, map[state]state{
		noneIn: none, noneOutIn: noneOut, toIn: to, from: none, fromOut: noneOut, both: to,
	}, map[state]bool{noneIn: true, noneOutIn: true, toIn: true, from: true, fromOut: true, both: true})
	if next, _ := outUnsubscribed(noneApprov); next != none {
		t.Errorf("unsubscribed after pre-approval: %s, want none", name(next))
	}
}

// A.3.1: delivered where it becomes pending; answered by the server where
// the contact is already subscribed or pre-approved.
func TestInboundSubscribe(t *testing.T) {
	for _, tt := range []struct {
		before, after         state
		deliver, autoApproved bool
	}{
		{none, noneIn, true, false},
		{noneOut, noneOutIn, true, false},
		{noneIn, noneIn, false, false},
		{noneOutIn, noneOutIn, false, false},
		{to, toIn, true, false},
		{toIn, toIn, false, false},
		{from, from, false, true},
		{fromOut, fromOut, false, true},
		{both, both, false, true},
		{noneApprov, from, false, true},
		{state{sub: storage.SubTo, approved: true}, both, false, true},
	} {
		after, deliver, auto := inSubscribe(tt.before)
		if after != tt.after || deliver != tt.deliver || auto != tt.autoApproved {
			t.Errorf("%s → %s deliver %v auto %v; want %s %v %v", name(tt.before), name(after), deliver, auto, name(tt.after), tt.deliver, tt.autoApproved)
		}
	}
}

// A.3.2.
func TestInboundUnsubscribe(t *testing.T) {
	transitionTest(t, inUnsubscribe, map[state]state{
		noneIn: none, noneOutIn: noneOut, toIn: to, from: none, fromOut: noneOut, both: to,
	}, map[state]bool{noneIn: true, noneOutIn: true, toIn: true, from: true, fromOut: true, both: true})
}

// A.3.3.
func TestInboundSubscribed(t *testing.T) {
	transitionTest(t, inSubscribed, map[state]state{
		noneOut: to, noneOutIn: toIn, fromOut: both,
	}, map[state]bool{noneOut: true, noneOutIn: true, fromOut: true})
}

// A.3.4.
func TestInboundUnsubscribed(t *testing.T) {
	transitionTest(t, inUnsubscribed, map[state]state{
		noneOut: none, noneOutIn: noneIn, to: none, toIn: noneIn, fromOut: from, both: from,
	}, map[state]bool{noneOut: true, noneOutIn: true, to: true, toIn: true, fromOut: true, both: true})
}
