package muc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// Requests between occupants (XEP-0045 §7.5 for messages; IQs the same
// way, as Prosody and ejabberd relay them): the request goes to the
// target's real JID — its account's bare JID for a vCard, which the
// account's server answers — from the sender's occupant JID, with an id
// of the service's; the answer comes back to that occupant JID, and goes
// to the sender from the target's occupant JID with the sender's id. The
// real JIDs stay hidden both ways.

const (
	// relayTimeout is how long an unanswered relayed request is
	// remembered.
	relayTimeout = time.Minute
	// maxRelayed bounds the requests remembered at once.
	maxRelayed = 10000
)

// relayed is one request waiting for its answer.
type relayed struct {
	sender   jid.JID // the requester's real JID
	id       string  // the requester's id
	occupant jid.JID // the target's occupant JID, the answer's 'from'
	target   jid.JID // where the request went, whom the answer must come from
	via      jid.JID // the requester's occupant JID, the answer's 'to'
	expires  time.Time
}

// relayRequest sends st, a request to an occupant, on to to.
func (s *Service) relayRequest(ctx context.Context, st *stanza.Stanza, from, to jid.JID) {
	var idb [12]byte
	rand.Read(idb[:])
	id := "muc-" + hex.EncodeToString(idb[:])
	now := s.now()
	s.relayMu.Lock()
	if s.relays == nil {
		s.relays = make(map[string]relayed)
	}
	if len(s.relays) >= maxRelayed {
		for k, r := range s.relays {
			if now.After(r.expires) {
				delete(s.relays, k)
			}
		}
	}
	full := len(s.relays) >= maxRelayed
	if !full {
		s.relays[id] = relayed{sender: st.From, id: st.ID, occupant: st.To, target: to, via: from, expires: now.Add(relayTimeout)}
	}
	s.relayMu.Unlock()
	if full {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
		return
	}
	_, payload, _ := st.Payload()
	var b bytes.Buffer
	b.WriteString("<iq type='" + st.Type + "' id='" + id + "' from='")
	stanza.EscapeAttr(&b, from.String())
	b.WriteString("' to='")
	stanza.EscapeAttr(&b, to.String())
	b.WriteString("'>")
	b.Write(payload)
	b.WriteString("</iq>")
	s.send(ctx, b.Bytes())
}

// relayAnswer takes an answer to a relayed request back to its sender.
func (s *Service) relayAnswer(ctx context.Context, st *stanza.Stanza) {
	s.relayMu.Lock()
	r, ok := s.relays[st.ID]
	if ok && st.From.Equal(r.target) && st.To.Equal(r.via) {
		delete(s.relays, st.ID)
	} else {
		ok = false
	}
	s.relayMu.Unlock()
	if !ok || s.now().After(r.expires) {
		return
	}
	// The answer's children (payload, or error), as they came.
	inner := content(st.Raw)
	var b bytes.Buffer
	b.WriteString("<iq type='" + st.Type + "' from='")
	stanza.EscapeAttr(&b, r.occupant.String())
	b.WriteString("' to='")
	stanza.EscapeAttr(&b, r.sender.String())
	b.WriteString("' id='")
	stanza.EscapeAttr(&b, r.id)
	b.WriteString("'>")
	b.Write(inner)
	b.WriteString("</iq>")
	s.send(ctx, b.Bytes())
}
