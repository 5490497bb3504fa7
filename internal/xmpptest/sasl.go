package xmpptest

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"

	"github.com/starling-xmpp/starling/stream"
)

// Mechanisms maps SASL mechanism names to mellium.im/sasl clients.
var Mechanisms = map[string]sasl.Mechanism{
	"PLAIN":              sasl.Plain,
	"SCRAM-SHA-1":        sasl.ScramSha1,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
}

// ErrAuth is returned by Auth when the server answers <failure/>; the
// error text holds the failure element.
var ErrAuth = errors.New("authentication failed")

// session is what the clients of every transport share: the state of
// the stream as the client sees it, and the steps that go alike over
// each, sending elements with Send and reading them with Next.
type session struct {
	t      testing.TB
	conn   transport // the client the session belongs to
	Domain string
	// Features is the last <stream:features/> received.
	Features *stream.Element
	// JID is the bound full JID.
	JID string
	// Challenges is the number of SASL challenges the last exchange
	// received: 0 when it ended at the client's first message.
	Challenges int
}

// transport sends and receives the elements of a session.
type transport interface {
	Send(raw string)
	Next() (*stream.Element, error)
}

// MustNext is Next, failing the test on error.
func (s *session) MustNext() *stream.Element {
	s.t.Helper()
	el, err := s.conn.Next()
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	return el
}

// Expect reads the next element and checks its name.
func (s *session) Expect(space, local string) *stream.Element {
	s.t.Helper()
	el := s.MustNext()
	if el.Name.Space != space || el.Name.Local != local {
		s.t.Fatalf("expected {%s}%s, got %s", space, local, el.Raw)
	}
	return el
}

// HasFeature reports whether the features contain substr (a quick check
// for tests: "<starttls", "SCRAM-SHA-256-PLUS").
func (s *session) HasFeature(substr string) bool {
	return s.Features != nil && strings.Contains(string(s.Features.Raw), substr)
}

// Mechanisms are the SASL mechanisms offered in the features.
func (s *session) Mechanisms() []string {
	var f struct {
		Mechanisms []string `xml:"mechanisms>mechanism"`
	}
	if s.Features != nil {
		xml.Unmarshal(s.Features.Raw, &f)
	}
	return f.Mechanisms
}

// authenticate runs SASL with mech (RFC 6120 §6) and returns at
// <success/>, or with ErrAuth at <failure/>; restarting the stream is the
// transport's. The mechanisms offered tell a SCRAM client whether the
// server supports channel binding (RFC 5802 §6); state is the TLS
// connection, for the -PLUS mechanisms (nil without).
func (s *session) authenticate(state *tls.ConnectionState, mech, user, password string) error {
	s.t.Helper()
	m, ok := Mechanisms[mech]
	if !ok {
		s.t.Fatalf("no test client for %s", mech)
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		sasl.RemoteMechanisms(s.Mechanisms()...),
	}
	if state != nil {
		opts = append(opts, sasl.TLSState(*state))
	}
	neg := sasl.NewClient(m, opts...)
	_, resp, err := neg.Step(nil)
	if err != nil {
		s.t.Fatalf("sasl client: %v", err)
	}
	s.conn.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" + b64(resp) + "</auth>")
	s.Challenges = 0
	for {
		el := s.MustNext()
		switch el.Name.Local {
		case "challenge":
			s.Challenges++
			data, err := base64.StdEncoding.DecodeString(text(el))
			if err != nil {
				s.t.Fatalf("challenge: %v", err)
			}
			_, resp, err := neg.Step(data)
			if err != nil {
				return fmt.Errorf("sasl client step: %w", err)
			}
			s.conn.Send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(resp) + "</response>")
		case "success":
			if t := text(el); t != "" {
				data, err := base64.StdEncoding.DecodeString(t)
				if err != nil {
					return fmt.Errorf("success data: %w", err)
				}
				if _, _, err := neg.Step(data); err != nil {
					return fmt.Errorf("server signature: %w", err)
				}
			}
			return nil
		case "failure":
			return fmt.Errorf("%w: %s", ErrAuth, el.Raw)
		default:
			s.t.Fatalf("unexpected during SASL: %s", el.Raw)
		}
	}
}

// Bind binds resource ("" lets the server choose, RFC 6120 §7) and
// returns the full JID.
func (s *session) Bind(resource string) string {
	s.t.Helper()
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	s.conn.Send("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>")
	var result bindResult
	if el := s.MustNext(); xml.Unmarshal(el.Raw, &result) != nil || result.Type != "result" || result.JID == "" {
		s.t.Fatalf("bind: %s", el.Raw)
	}
	s.JID = result.JID
	return s.JID
}

// bindResult is the answer to a bind request.
type bindResult struct {
	Type string `xml:"type,attr"`
	JID  string `xml:"bind>jid"`
}

// login authenticates with auth, the transport's Auth, and binds
// resource.
func (s *session) login(auth func(mech, user, password string) error, mech, user, password, resource string) {
	s.t.Helper()
	if err := auth(mech, user, password); err != nil {
		s.t.Fatalf("login %s with %s: %v", user, mech, err)
	}
	s.Bind(resource)
}

// Attr is the value of el's attribute name (without a namespace).
func Attr(el *stream.Element, name string) string { return el.AttrValue(name) }

func attrValue(attrs []xml.Attr, name string) string {
	if i := slices.IndexFunc(attrs, func(a xml.Attr) bool { return a.Name == xml.Name{Local: name} }); i >= 0 {
		return attrs[i].Value
	}
	return ""
}

func text(el *stream.Element) string { return strings.TrimSpace(el.Text()) }

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}
