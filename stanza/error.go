package stanza

import (
	"bytes"

	"mellium.im/xmpp/jid"
)

// ErrorType is the 'type' of a stanza error (RFC 6120 §8.3.2).
type ErrorType string

// The stanza error types.
const (
	Auth     ErrorType = "auth"
	Cancel   ErrorType = "cancel"
	Continue ErrorType = "continue"
	Modify   ErrorType = "modify"
	Wait     ErrorType = "wait"
)

// Stanza error conditions (RFC 6120 §8.3.3).
const (
	BadRequest            = "bad-request"
	Conflict              = "conflict"
	FeatureNotImplemented = "feature-not-implemented"
	Forbidden             = "forbidden"
	Gone                  = "gone"
	InternalServerError   = "internal-server-error"
	ItemNotFound          = "item-not-found"
	JIDMalformed          = "jid-malformed"
	NotAcceptable         = "not-acceptable"
	NotAllowed            = "not-allowed"
	NotAuthorized         = "not-authorized"
	PolicyViolation       = "policy-violation"
	RecipientUnavailable  = "recipient-unavailable"
	Redirect              = "redirect"
	RegistrationRequired  = "registration-required"
	RemoteServerNotFound  = "remote-server-not-found"
	RemoteServerTimeout   = "remote-server-timeout"
	ResourceConstraint    = "resource-constraint"
	ServiceUnavailable    = "service-unavailable"
	SubscriptionRequired  = "subscription-required"
	UndefinedCondition    = "undefined-condition"
	UnexpectedRequest     = "unexpected-request"
)

// Error is a stanza error (RFC 6120 §8.3).
type Error struct {
	Type      ErrorType
	Condition string
	Text      string
	// App is an application-specific condition element, written after
	// the text (RFC 6120 §8.3.2), e.g. XEP-0191's <blocked/>.
	App []byte
}

func (e *Error) Error() string {
	if e.Text != "" {
		return "stanza error: " + e.Condition + ": " + e.Text
	}
	return "stanza error: " + e.Condition
}

// appendTo writes <error type='..'><cond xmlns=stanzas/>[<text>..</text>]</error>.
func (e *Error) appendTo(b *bytes.Buffer) {
	b.WriteString("<error type='")
	b.WriteString(string(e.Type))
	b.WriteString("'><")
	b.WriteString(e.Condition)
	b.WriteString(" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>")
	if e.Text != "" {
		b.WriteString("<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>")
		EscapeAttr(b, e.Text)
		b.WriteString("</text>")
	}
	b.Write(e.App)
	b.WriteString("</error>")
}

// ErrorReply builds the error answer to s (RFC 6120 §8.3.1): same kind and
// id, 'from' and 'to' swapped, type 'error'. from is the address the error
// comes from (usually the original 'to', or the server's domain when the
// original had none). The original payload is not echoed back.
func ErrorReply(s *Stanza, from jid.JID, e *Error) []byte {
	var b bytes.Buffer
	startReply(&b, s, from, "error")
	b.WriteByte('>')
	e.appendTo(&b)
	b.WriteString("</")
	b.WriteString(s.Kind.String())
	b.WriteByte('>')
	return b.Bytes()
}

// Result builds the IQ result for request s (RFC 6120 §8.2.3) from the
// address from, with payload (which may be empty) as its child.
func Result(s *Stanza, from jid.JID, payload []byte) []byte {
	var b bytes.Buffer
	startReply(&b, s, from, "result")
	if len(payload) == 0 {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteByte('>')
	b.Write(payload)
	b.WriteString("</iq>")
	return b.Bytes()
}

func startReply(b *bytes.Buffer, s *Stanza, from jid.JID, typ string) {
	b.WriteByte('<')
	b.WriteString(s.Kind.String())
	if !from.Equal(jid.JID{}) {
		writeAttr(b, "from", from.String())
	}
	if !s.From.Equal(jid.JID{}) {
		writeAttr(b, "to", s.From.String())
	}
	writeAttr(b, "type", typ)
	if s.ID != "" {
		writeAttr(b, "id", s.ID)
	}
}
