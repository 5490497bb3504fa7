package bosh

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/starling-xmpp/starling/stream"
)

// Namespaces of XEP-0124 and XEP-0206.
const (
	// NSHTTPBind qualifies <body/> (XEP-0124 §4).
	NSHTTPBind = "http://jabber.org/protocol/httpbind"
	// NSXBOSH qualifies the xmpp:version, xmpp:restart and
	// xmpp:restartlogic attributes (XEP-0206 §3, §5).
	NSXBOSH  = "urn:xmpp:xbosh"
	nsClient = "jabber:client"
	nsXML    = "http://www.w3.org/XML/1998/namespace"
)

// errBadRequest is a body that is not one well-formed <body/> of
// XEP-0124 (§17.2 bad-request).
var errBadRequest = errors.New("bosh: bad request")

// body is a client's request: the attributes of its <body/> and the
// elements it carries.
type body struct {
	sid       string
	rid       int64
	hasRID    bool
	to        string
	lang      string
	ver       string
	version   string // xmpp:version (XEP-0206 §3)
	restart   bool   // xmpp:restart='true' (XEP-0206 §5)
	terminate bool   // type='terminate' (XEP-0124 §13)
	wait      int64  // seconds; -1 when absent
	hold      int64  // -1 when absent
	ack       int64  // XEP-0124 §9.2; -1 when absent
	pause     int64  // seconds (§10); -1 when absent
	payload   []*stream.Element
	size      int // bytes of the payload
}

// The document a body's payload is read in by stream.Reader: a stream of
// jabber:client, as XEP-0206 §4 has it, so that the payload gets the
// well-formedness, restricted-XML and depth checks of a TCP stream.
var (
	wrapOpen  = []byte("<stream:stream xmlns='" + nsClient + "' xmlns:stream='" + stream.NS + "' version='1.0'>")
	wrapClose = []byte(stream.Close)
)

// parseBody reads a request: exactly one <body/> qualified by
// NSHTTPBind, with no DTD, comment or processing instruction
// (RFC 6120 §11 applies to the payload, and XEP-0124 §4 to the wrapper).
// Each child of <body/> is one top-level element of the stream, at most
// maxElement bytes. A body that breaks these rules is errBadRequest; an
// oversized element is the stream.Error stream.Reader returns.
func parseBody(b []byte, maxElement int) (*body, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var (
		req            *body
		root           xml.Name
		depth          int
		inner0, inner1 int64
	)
	for {
		off := d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errBadRequest
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" || off != 0 {
				return nil, errBadRequest
			}
		case xml.Directive, xml.Comment:
			return nil, errBadRequest
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return nil, errBadRequest
			}
		case xml.StartElement:
			if depth == 0 {
				if req != nil {
					return nil, errBadRequest // a second root
				}
				var err error
				if req, err = bodyAttrs(t); err != nil {
					return nil, err
				}
				root, inner0 = t.Name, d.InputOffset()
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				if t.Name != root {
					return nil, errBadRequest
				}
				inner1 = off
			}
		}
	}
	if req == nil || depth != 0 {
		return nil, errBadRequest
	}
	if inner1 < inner0 { // <body/>: the decoder reports its end at once
		inner1 = inner0
	}
	inner := b[inner0:inner1]
	if len(bytes.TrimSpace(inner)) == 0 {
		return req, nil
	}
	lim := stream.Limits{MaxElementBytes: maxElement, MaxDepth: stream.DefaultLimits().MaxDepth}
	pr := getPayloadReader(lim)
	defer putPayloadReader(lim, pr)
	pr.src = parts{wrapOpen, inner, wrapClose}
	r := pr.r
	r.Reset(&pr.src)
	if _, err := r.ReadHeader(); err != nil {
		return nil, errBadRequest
	}
	for {
		el, err := r.Next()
		if errors.Is(err, stream.ErrClosed) {
			return req, nil
		}
		if se, ok := errors.AsType[*stream.Error](err); ok && se.Condition == stream.PolicyViolation {
			return nil, se
		}
		if err != nil {
			return nil, errBadRequest
		}
		req.payload = append(req.payload, el)
		req.size += len(el.Raw)
	}
}

// A payloadReader is a stream.Reader, with its 4 KiB buffer, and its
// source: taken from payloadReaders for one body's payload and given
// back after it, instead of a new one per request.
type payloadReader struct {
	r   *stream.Reader
	src parts
}

// payloadReaders lends payloadReaders, per stream.Limits
// (limits.max_stanza_bytes; a reload may change it).
var payloadReaders = stream.Pools[payloadReader]{New: func(l stream.Limits) *payloadReader {
	pr := &payloadReader{}
	pr.r = stream.NewReader(&pr.src, l)
	return pr
}}

func getPayloadReader(l stream.Limits) *payloadReader { return payloadReaders.Get(l) }

func putPayloadReader(l stream.Limits, pr *payloadReader) {
	pr.src = parts{}
	payloadReaders.Put(l, pr)
}

// parts reads byte slices one after the other, then io.EOF.
type parts [3][]byte

func (p *parts) Read(b []byte) (int, error) {
	for i := range p {
		if len(p[i]) > 0 {
			n := copy(b, p[i])
			p[i] = p[i][n:]
			return n, nil
		}
	}
	return 0, io.EOF
}

// sidOf returns the 'sid' of the start tag of the first element of raw,
// a request that parseBody refuses (not well-formed after its start tag,
// too large, cut short), or "" if it has none: the session the request
// was meant for.
func sidOf(raw []byte) string {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return ""
		}
		if t, ok := tok.(xml.StartElement); ok {
			for _, a := range t.Attr {
				if a.Name.Space == "" && a.Name.Local == "sid" {
					return a.Value
				}
			}
			return ""
		}
	}
}

// bodyAttrs reads the attributes of the root element, which must be
// <body xmlns='http://jabber.org/protocol/httpbind'/> (RawToken leaves
// prefixes unresolved: xmlns declarations are read here).
func bodyAttrs(t xml.StartElement) (*body, error) {
	ns := map[string]string{"xml": nsXML}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			ns[""] = a.Value
		case a.Name.Space == "xmlns":
			ns[a.Name.Local] = a.Value
		}
	}
	if t.Name.Local != "body" || ns[t.Name.Space] != NSHTTPBind {
		return nil, errBadRequest
	}
	req := &body{wait: -1, hold: -1, ack: -1, pause: -1}
	num := func(v string) (int64, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<53-1 { // XEP-0124 §14.1
			return 0, errBadRequest
		}
		return n, nil
	}
	for _, a := range t.Attr {
		var err error
		switch space := a.Name.Space; {
		case space == "" && a.Name.Local == "sid":
			req.sid = a.Value
		case space == "" && a.Name.Local == "rid":
			req.rid, err = num(a.Value)
			req.hasRID = true
		case space == "" && a.Name.Local == "to":
			req.to = a.Value
		case space == "" && a.Name.Local == "ver":
			req.ver = a.Value
		case space == "" && a.Name.Local == "wait":
			req.wait, err = num(a.Value)
		case space == "" && a.Name.Local == "hold":
			req.hold, err = num(a.Value)
		case space == "" && a.Name.Local == "ack":
			req.ack, err = num(a.Value)
		case space == "" && a.Name.Local == "pause":
			req.pause, err = num(a.Value)
		case space == "" && a.Name.Local == "type":
			req.terminate = a.Value == "terminate"
		case space != "" && ns[space] == nsXML && a.Name.Local == "lang":
			req.lang = a.Value
		case space != "" && ns[space] == NSXBOSH && a.Name.Local == "version":
			req.version = a.Value
		case space != "" && ns[space] == NSXBOSH && a.Name.Local == "restart":
			req.restart = a.Value == "true" || a.Value == "1"
		}
		if err != nil {
			return nil, err
		}
	}
	if !req.hasRID {
		return nil, errBadRequest // XEP-0124 §6: every request has a rid
	}
	return req, nil
}

// appendQualified appends el, one top-level element c2s wrote for a
// stream whose header declared the content namespace jabber:client and the
// prefix "stream", as a child of the response's <body/>, which declares
// the prefix "stream" but whose default namespace is NSHTTPBind: unless
// its start tag declares a default namespace, it gets jabber:client
// (XEP-0206 §4: stanzas are qualified by jabber:client).
func appendQualified(dst, el []byte) []byte {
	nameEnd, hasDefault := scanStartTag(el)
	dst = append(dst, el[:nameEnd]...)
	if !hasDefault {
		dst = append(dst, " xmlns='"+nsClient+"'"...)
	}
	return append(dst, el[nameEnd:]...)
}

// scanStartTag finds, in the well-formed element el, the end of its name
// and whether its start tag declares a default namespace.
func scanStartTag(el []byte) (nameEnd int, hasDefault bool) {
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
		if string(el[n0:i]) == "xmlns" {
			return nameEnd, true
		}
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
	return nameEnd, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendAttr appends ` name='value'`, value escaped.
func appendAttr(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, "='"...)
	var b strings.Builder
	xml.EscapeText(&b, []byte(value)) // quotes included
	dst = append(dst, b.String()...)
	return append(dst, '\'')
}
