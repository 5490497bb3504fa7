// Package stream owns the XML stream of RFC 6120 §4: reading one top-level
// element at a time with size and depth limits enforced while reading,
// stream headers (§4.7), stream errors (§4.9) and the restricted XML profile
// of §11 (no DTDs, comments, processing instructions or entity references
// beyond the predefined five). Whitespace keepalives between elements
// (§4.6.1) are skipped.
//
// The reader is a small byte-level scanner rather than encoding/xml: it
// checks well-formedness (XML 1.0 and Namespaces in XML) of everything it
// returns, keeps each element's original bytes, and allocates a few objects
// per element. It never reads ahead of the element it returns, so nothing
// of a following TLS handshake is consumed (§5.4.3.3).
package stream

import (
	"errors"
	"strings"
)

// NS is the stream namespace (RFC 6120 §4.8.1); NSErrors qualifies the
// conditions of a stream error (§4.9.2).
const (
	NS       = "http://etherx.jabber.org/streams"
	NSErrors = "urn:ietf:params:xml:ns:xmpp-streams"
)

// Close ends a stream (RFC 6120 §4.4).
const Close = "</stream:stream>"

// ErrClosed is returned by Next when the peer closes its stream with
// </stream:stream> (RFC 6120 §4.4).
var ErrClosed = errors.New("stream: closed by peer")

// Limits bound what a peer may send in one top-level element.
type Limits struct {
	// MaxElementBytes is the largest top-level element accepted, counted
	// in bytes from its '<' to its final '>' (RFC 6120 §13.12). Raw never
	// exceeds it, including any namespace declaration added to it.
	MaxElementBytes int
	// MaxDepth is the deepest nesting accepted, the top-level element
	// being at depth 1.
	MaxDepth int
}

// DefaultLimits returns 256 KiB per top-level element and a depth of 32.
func DefaultLimits() Limits { return Limits{MaxElementBytes: 256 << 10, MaxDepth: 32} }

// Stream error conditions (RFC 6120 §4.9.3): each value is the name of the
// condition element.
const (
	BadFormat              = "bad-format"               // §4.9.3.1
	BadNamespacePrefix     = "bad-namespace-prefix"     // §4.9.3.2
	Conflict               = "conflict"                 // §4.9.3.3
	ConnectionTimeout      = "connection-timeout"       // §4.9.3.4
	HostGone               = "host-gone"                // §4.9.3.5
	HostUnknown            = "host-unknown"             // §4.9.3.6
	ImproperAddressing     = "improper-addressing"      // §4.9.3.7
	InternalServerError    = "internal-server-error"    // §4.9.3.8
	InvalidFrom            = "invalid-from"             // §4.9.3.9
	InvalidNamespace       = "invalid-namespace"        // §4.9.3.10
	InvalidXML             = "invalid-xml"              // §4.9.3.11
	NotAuthorized          = "not-authorized"           // §4.9.3.12
	NotWellFormed          = "not-well-formed"          // §4.9.3.13
	PolicyViolation        = "policy-violation"         // §4.9.3.14
	RemoteConnectionFailed = "remote-connection-failed" // §4.9.3.15
	Reset                  = "reset"                    // §4.9.3.16
	ResourceConstraint     = "resource-constraint"      // §4.9.3.17
	RestrictedXML          = "restricted-xml"           // §4.9.3.18
	SeeOtherHost           = "see-other-host"           // §4.9.3.19
	SystemShutdown         = "system-shutdown"          // §4.9.3.20
	UndefinedCondition     = "undefined-condition"      // §4.9.3.21
	UnsupportedEncoding    = "unsupported-encoding"     // §4.9.3.22
	UnsupportedFeature     = "unsupported-feature"      // §4.9.3.23
	UnsupportedStanzaType  = "unsupported-stanza-type"  // §4.9.3.24
	UnsupportedVersion     = "unsupported-version"      // §4.9.3.25
)

// Error is a stream error (RFC 6120 §4.9): a condition and an optional
// human-readable text. It is unrecoverable: the stream ends after it.
type Error struct {
	Condition string
	Text      string
	// App is an application-specific condition (RFC 6120 §4.9.4), a
	// whole element with its namespace, sent after the text; nil if none.
	App []byte
}

func (e *Error) Error() string {
	if e.Text == "" {
		return "stream error: " + e.Condition
	}
	return "stream error: " + e.Condition + ": " + e.Text
}

// Bytes marshals the error as <stream:error/> (RFC 6120 §4.9.2), for a
// stream whose header declared the "stream" prefix. For see-other-host
// (§4.9.3.19) Text is sent as the element's content, the new address.
func (e *Error) Bytes() []byte {
	b := make([]byte, 0, 128+len(e.Condition)+2*len(e.Text))
	b = append(b, "<stream:error><"...)
	b = append(b, e.Condition...)
	b = append(b, " xmlns='"+NSErrors+"'"...)
	if e.Condition == SeeOtherHost && e.Text != "" {
		b = append(b, '>')
		b = appendEscaped(b, e.Text)
		b = append(b, "</"...)
		b = append(b, e.Condition...)
		b = append(b, '>')
		return append(b, "</stream:error>"...)
	}
	b = append(b, "/>"...)
	if e.Text != "" {
		b = append(b, "<text xmlns='"+NSErrors+"' xml:lang='en'>"...)
		b = appendEscaped(b, e.Text)
		b = append(b, "</text>"...)
	}
	b = append(b, e.App...)
	return append(b, "</stream:error>"...)
}

// Header is a stream header (RFC 6120 §4.7). NS is the content namespace,
// the default namespace declared on the header (§4.8.2), such as
// "jabber:client"; "" if none was declared.
type Header struct {
	To, From, ID, Version, Lang, NS string
	// Dialback is the declaration of the "db" prefix for server dialback
	// (XEP-0220 §2.1), which servers put on their streams' headers.
	Dialback bool
}

// NSDialback is the namespace of server dialback (XEP-0220).
const NSDialback = "jabber:server:dialback"

// AppendHeader appends an XML declaration and the opening stream tag for h
// (RFC 6120 §4.7) to dst, declaring the "stream" prefix (and "db" if
// h.Dialback). Empty fields are
// left out; values are escaped.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, "<?xml version='1.0'?><stream:stream"...)
	dst = appendAttr(dst, "xmlns", h.NS)
	dst = append(dst, " xmlns:stream='"+NS+"'"...)
	if h.Dialback {
		dst = append(dst, " xmlns:db='"+NSDialback+"'"...)
	}
	dst = appendAttr(dst, "id", h.ID)
	dst = appendAttr(dst, "from", h.From)
	dst = appendAttr(dst, "to", h.To)
	dst = appendAttr(dst, "version", h.Version)
	dst = appendAttr(dst, "xml:lang", h.Lang)
	return append(dst, '>')
}

func appendAttr(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, "='"...)
	dst = appendEscaped(dst, value)
	return append(dst, '\'')
}

// appendEscaped escapes s for use as character data or as an attribute
// value in either kind of quotes.
func appendEscaped(dst []byte, s string) []byte {
	for {
		i := strings.IndexAny(s, "&<>'\"")
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:i]...)
		switch s[i] {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		}
		s = s[i+1:]
	}
}
