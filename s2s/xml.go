package s2s

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"strconv"

	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
)

// Namespaces of server-to-server streams.
const (
	nsServer          = "jabber:server"                       // RFC 6120 §4.8.3
	nsDialback        = stream.NSDialback                     // XEP-0220 §2
	nsDialbackFeature = "urn:xmpp:features:dialback"          // XEP-0220 §2.1
	nsTLS             = "urn:ietf:params:xml:ns:xmpp-tls"     // RFC 6120 §5
	nsSASL            = "urn:ietf:params:xml:ns:xmpp-sasl"    // RFC 6120 §6
	nsStanzas         = "urn:ietf:params:xml:ns:xmpp-stanzas" // RFC 6120 §8.3
	nsLimits          = "urn:xmpp:stream-limits:0"
	nsBidi            = "urn:xmpp:bidi"          // XEP-0288 §2.2
	nsBidiFeature     = "urn:xmpp:features:bidi" // XEP-0288 §2.1            // XEP-0478
	nsClient          = "jabber:client"
)

// header is a server-to-server stream header (RFC 6120 §4.7, with the
// dialback prefix of XEP-0220 §2 declared, which peers look for).
func header(from, to, id string) []byte {
	return stream.AppendHeader(make([]byte, 0, 256), stream.Header{NS: nsServer, Dialback: true, From: from, To: to, ID: id, Version: "1.0"})
}

// features is what a peer's <stream:features/> offers (RFC 6120 §4.3.2).
type features struct {
	startTLS, tlsRequired bool
	external              bool // SASL EXTERNAL (XEP-0178)
	dialback              bool // XEP-0220 §2.1 (errors or not)
	bidi                  bool // XEP-0288 §2.1
	maxBytes              int  // XEP-0478; 0: none said
}

func parseFeatures(raw []byte) features {
	var f features
	for c := range stanza.Children(raw) {
		switch {
		case c.Is(nsTLS, "starttls"):
			f.startTLS = true
			for cc := range stanza.Children(c.Raw) {
				if cc.Is(nsTLS, "required") {
					f.tlsRequired = true
				}
			}
		case c.Is(nsSASL, "mechanisms"):
			var m struct {
				Mechanism []string `xml:"mechanism"`
			}
			xml.Unmarshal(c.Raw, &m)
			for _, n := range m.Mechanism {
				if n == "EXTERNAL" {
					f.external = true
				}
			}
		case c.Is(nsDialbackFeature, "dialback"):
			f.dialback = true
		case c.Is(nsBidiFeature, "bidi"):
			f.bidi = true
		case c.Is(nsLimits, "limits"):
			var l struct {
				MaxBytes string `xml:"max-bytes"`
			}
			xml.Unmarshal(c.Raw, &l)
			if n, err := strconv.Atoi(l.MaxBytes); err == nil && n > 0 {
				f.maxBytes = n
			}
		}
	}
	return f
}

// withoutNS returns raw, a stanza's bytes, without a declaration of ns as
// its default namespace on the top element: a stanza written with an
// explicit xmlns='jabber:client' becomes valid in a jabber:server stream,
// and the reverse (RFC 6120 §4.8.3). Children keep theirs (a forwarded
// message's jabber:client is its own).
func withoutNS(raw []byte, startLen int, ns string) []byte {
	tag := raw[:startLen]
	for _, q := range []string{"'", "\""} {
		decl := " xmlns=" + q + ns + q
		i := bytes.Index(tag, []byte(decl))
		if i < 0 {
			continue
		}
		out := make([]byte, 0, len(raw)-len(decl))
		out = append(out, raw[:i]...)
		return append(out, raw[i+len(decl):]...)
	}
	return raw
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stanzaError is the XML of a stanza error child (RFC 6120 §8.3.2), as
// dialback errors carry it (XEP-0220 §2.4).
func stanzaError(typ, condition, text string) string {
	s := "<error type='" + typ + "'><" + condition + " xmlns='" + nsStanzas + "'/>"
	if text != "" {
		s += "<text xmlns='" + nsStanzas + "'>" + stanza.Escape(text) + "</text>"
	}
	return s + "</error>"
}

// streamErrorText describes a received <stream:error/> (RFC 6120 §4.9):
// its condition, and its text if any.
func streamErrorText(raw []byte) string {
	cond, txt := "", ""
	for c := range stanza.Children(raw) {
		if string(c.Space) != stream.NSErrors {
			continue
		}
		if string(c.Local) == "text" {
			xml.Unmarshal(c.Raw, &txt)
		} else if cond == "" {
			cond = string(c.Local)
		}
	}
	if txt != "" {
		return cond + " (" + txt + ")"
	}
	return cond
}

// errorCondition returns the condition of a stanza-style <error/> child
// of a dialback element (XEP-0220 §2.4).
func errorCondition(raw []byte) string {
	for c := range stanza.Children(raw) {
		if string(c.Local) != "error" {
			continue
		}
		for cc := range stanza.Children(c.Raw) {
			if string(cc.Space) == nsStanzas && string(cc.Local) != "text" {
				return string(cc.Local)
			}
		}
	}
	return "unknown error"
}

// esc escapes an attribute value or character data.
func esc(s string) string { return stanza.Escape(s) }

// childrenOf yields the local names of el's child elements.
func childrenOf(el *stream.Element) func(func(string) bool) {
	return func(yield func(string) bool) {
		for c := range stanza.Children(el.Raw) {
			if !yield(string(c.Local)) {
				return
			}
		}
	}
}
