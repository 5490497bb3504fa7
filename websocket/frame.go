package websocket

import (
	"bytes"
	"errors"
	"io"

	"github.com/starling-xmpp/starling/stream"
)

// Namespaces of RFC 7395 and RFC 6120.
const (
	// NSFraming qualifies <open/> and <close/> (RFC 7395 §3.3.2).
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsClient  = "jabber:client"
)

// closeFrame ends a stream (RFC 7395 §3.6).
const closeFrame = "<close xmlns='" + NSFraming + "'/>"

// The document every message is parsed in: a stream header like a TCP
// client's, with the content namespace and the "stream" prefix. An element
// that declares neither is read as on a TCP stream; every other
// declaration it needs is its own.
var (
	wrapOpen  = []byte("<stream:stream xmlns='" + nsClient + "' xmlns:stream='" + stream.NS + "' version='1.0'>")
	wrapClose = []byte(stream.Close)
)

// errFraming is a message that is not exactly one complete element.
func errFraming(cond, what string) error {
	return &stream.Error{Condition: cond, Text: what + ": each WebSocket message must hold exactly one complete XML element (RFC 7395 §3.3.3)"}
}

// frameParser parses each message of a stream as a standalone document
// holding exactly one element (RFC 7395 §3.3.3), with the checks of
// stream.Reader: well-formedness, restricted XML (RFC 6120 §11), depth.
// It is used by one goroutine.
//
// A message is read as the next element of one long document: the
// wrapper's header once, then the messages one after the other, each
// followed by nothing but the whitespace the next element may be preceded
// by. That costs one element's parse per message. A message that does not
// pass this way — an XML declaration, any error — is parsed again as a
// document of its own (alone), which says what is wrong exactly as it
// always has, and the long document starts afresh.
//
// The long document is not the stream's own: every stream's wrapper is
// the same, so the documents, each a stream.Reader with its 4 KiB buffer,
// are shared by all the streams with the same limits (docs), each taken
// for one message and given back after it. An idle stream holds none.
type frameParser struct {
	limits stream.Limits
}

func newFrameParser(maxBytes int) *frameParser {
	return &frameParser{limits: stream.Limits{MaxElementBytes: maxBytes}}
}

// A doc is a stream.Reader and what it reads, kept in docs between
// messages.
type doc struct {
	r      *stream.Reader
	src    parts
	opened bool // r has read the wrapper's header, then only whole elements and whitespace
}

// docs lends docs per stream.Limits: the configuration's
// (limits.max_stanza_bytes; a reload may change it), and the default ones
// of headerParser.
var docs = stream.Pools[doc]{New: func(l stream.Limits) *doc {
	d := &doc{}
	d.r = stream.NewReader(&d.src, l)
	return d
}}

// getDoc takes a doc with the limits l from its pool, or makes one.
func getDoc(l stream.Limits) *doc { return docs.Get(l) }

// putDoc gives d back to the pool of the limits l, reading nothing.
func putDoc(l stream.Limits, d *doc) {
	d.src = parts{}
	docs.Put(l, d)
}

// endOfMessage is what the long document's source returns once the
// current message is read: not io.EOF, which would end the document.
var endOfMessage = errors.New("end of message")

// parse returns the one element of msg. Errors are stream errors:
// not-well-formed for a message that does not start with '<' (§3.3.3) or
// does not hold a complete element, bad-format for more than one element
// or for text beside it, and whatever stream.Reader finds in the XML.
func (p *frameParser) parse(msg []byte) (*stream.Element, error) {
	if len(msg) == 0 || msg[0] != '<' {
		return nil, errFraming(stream.NotWellFormed, "text before the element")
	}
	if bytes.HasPrefix(msg, []byte("<?xml")) {
		// Allowed (§3.3.3), but only at the start of a document.
		return p.parseAlone(msg)
	}
	d := getDoc(p.limits)
	el := d.next(msg)
	if el == nil {
		d.opened = false // what r has read of msg must not be read again
	}
	putDoc(p.limits, d)
	if el != nil {
		return el, nil
	}
	return p.parseAlone(msg)
}

// next reads msg, which starts with '<' and is no XML declaration, from
// the long document, and returns its element, or nil when msg must be
// parsed alone.
func (d *doc) next(msg []byte) *stream.Element {
	d.src = parts{p: [4][]byte{msg}, end: endOfMessage}
	if !d.opened {
		d.src.p = [4][]byte{wrapOpen, msg}
		d.r.Reset(&d.src)
		if _, err := d.r.ReadHeader(); err != nil {
			return nil
		}
		d.opened = true
	}
	el, err := d.r.Next()
	if err != nil {
		return nil
	}
	// el started at msg[0]: what came before it was the whitespace after
	// the messages before. It took len(el.Raw) bytes of msg, less the
	// declaration of the "stream" prefix that stream.Reader adds at the
	// end of its start tag when the element uses the wrapper's.
	n := len(el.Raw)
	if tag := bytes.TrimSuffix(el.Raw[:el.StartLen-1], []byte("/")); bytes.HasSuffix(tag, declStream) {
		n -= len(declStream) // or the client's own, last: then msg is parsed alone
	}
	if n > len(msg) || len(bytes.TrimLeft(msg[n:], " \t\r\n")) > 0 {
		return nil // more after the element
	}
	return el
}

// parseAlone parses msg as a document of its own: an XML declaration if
// any, the wrapper's header, msg, the wrapper's end.
func (p *frameParser) parseAlone(msg []byte) (*stream.Element, error) {
	// An XML declaration is allowed, though not recommended (§3.3.3): it
	// goes before the wrapper, where stream.Reader checks it.
	var decl []byte
	if bytes.HasPrefix(msg, []byte("<?xml")) {
		if i := bytes.Index(msg, []byte("?>")); i >= 0 {
			decl, msg = msg[:i+2], msg[i+2:]
		}
	}
	d := getDoc(p.limits)
	defer putDoc(p.limits, d)
	d.opened = false
	d.src = parts{p: [4][]byte{decl, wrapOpen, msg, wrapClose}, end: io.EOF}
	d.r.Reset(&d.src)
	if _, err := d.r.ReadHeader(); err != nil {
		return nil, asStreamError(err)
	}
	el, err := d.r.Next()
	switch {
	case errors.Is(err, stream.ErrClosed):
		return nil, errFraming(stream.NotWellFormed, "no element")
	case err != nil:
		return nil, asStreamError(err)
	}
	switch _, err := d.r.Next(); {
	case err == nil:
		return nil, errFraming(stream.BadFormat, "more than one element")
	case !errors.Is(err, stream.ErrClosed):
		return nil, asStreamError(err)
	}
	return el, nil
}

// asStreamError keeps stream errors; anything else from parsing a message
// (the message ended inside markup) is not-well-formed.
func asStreamError(err error) error {
	if se, ok := errors.AsType[*stream.Error](err); ok {
		return se
	}
	return errFraming(stream.NotWellFormed, "incomplete XML")
}

// parts reads a few byte slices one after the other, then returns end.
type parts struct {
	p   [4][]byte
	end error
}

func (p *parts) Read(b []byte) (int, error) {
	for i := range p.p {
		if len(p.p[i]) > 0 {
			n := copy(b, p.p[i])
			p.p[i] = p.p[i][n:]
			return n, nil
		}
	}
	return 0, p.end
}

// headerParser reads the stream headers c2s writes, with a doc of the
// pool taken for each.
type headerParser struct{}

// openFrame translates our stream header, as stream.AppendHeader writes
// it, to <open/> (RFC 7395 §3.4).
func (headerParser) openFrame(dst, header []byte) ([]byte, error) {
	d := getDoc(stream.Limits{})
	d.opened = false
	d.src = parts{p: [4][]byte{header}, end: io.EOF}
	d.r.Reset(&d.src)
	hdr, err := d.r.ReadHeader()
	putDoc(stream.Limits{}, d)
	if err != nil {
		return nil, err
	}
	dst = append(dst, "<open xmlns='"+NSFraming+"'"...)
	for _, a := range [...]struct{ name, value string }{
		{"from", hdr.From}, {"to", hdr.To}, {"id", hdr.ID}, {"version", hdr.Version}, {"xml:lang", hdr.Lang},
	} {
		if a.value != "" {
			dst = append(dst, ' ')
			dst = append(dst, a.name...)
			dst = append(dst, "='"...)
			dst = appendEscaped(dst, a.value)
			dst = append(dst, '\'')
		}
	}
	return append(dst, "/>"...), nil
}

// The declarations standalone inserts.
var (
	declDefault = []byte(" xmlns='" + nsClient + "'")
	declStream  = []byte(" xmlns:stream='" + stream.NS + "'")
	declBoth    = append(declDefault[:len(declDefault):len(declDefault)], declStream...)
)

// standalone tells how el, one top-level element written for a stream
// whose header declared the content namespace jabber:client and the
// "stream" prefix, becomes a standalone document (RFC 7395 §3.3.3): by
// inserting decl at el[at], after its name. Its start tag gets the
// declarations of the stream header unless it makes its own — the default
// namespace always (a stanza, or the unprefixed children of
// <stream:features/>), the prefix when the element is <stream:features/>
// or <stream:error/> (§3.4, §3.5). Elements that came from a client's
// stream declare any other prefix of its header already
// (stream.Element.Raw).
func standalone(el []byte) (at int, decl []byte) {
	nameEnd, hasDefault, hasStream := scanStartTag(el)
	needStream := !hasStream && bytes.HasPrefix(el[1:nameEnd], []byte("stream:"))
	switch {
	case !hasDefault && needStream:
		return nameEnd, declBoth
	case !hasDefault:
		return nameEnd, declDefault
	case needStream:
		return nameEnd, declStream
	}
	return nameEnd, nil
}

// scanStartTag finds, in the well-formed element el, the end of its name
// and whether its start tag declares a default namespace or the "stream"
// prefix.
func scanStartTag(el []byte) (nameEnd int, hasDefault, hasStream bool) {
	i := 1
	for i < len(el) && !isSpace(el[i]) && el[i] != '/' && el[i] != '>' {
		i++
	}
	nameEnd = i
	for i < len(el) {
		for i < len(el) && isSpace(el[i]) {
			i++
		}
		if i == len(el) || el[i] == '/' || el[i] == '>' {
			break
		}
		n0 := i
		for i < len(el) && el[i] != '=' && !isSpace(el[i]) {
			i++
		}
		switch string(el[n0:i]) {
		case "xmlns":
			hasDefault = true
		case "xmlns:stream":
			hasStream = true
		}
		// Skip '=', spaces and the quoted value.
		q := bytes.IndexAny(el[i:], `'"`)
		if q < 0 {
			break
		}
		i += q
		end := bytes.IndexByte(el[i+1:], el[i])
		if end < 0 {
			break
		}
		i += end + 2
	}
	return nameEnd, hasDefault, hasStream
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendEscaped escapes s as an attribute value in single quotes.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
