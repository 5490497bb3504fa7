package stream

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"sync"
)

const (
	xmlURI      = "http://www.w3.org/XML/1998/namespace"
	xmlnsURI    = "http://www.w3.org/2000/xmlns/"
	initialBuf  = 4096     // read buffer of a stream, pooled with ReleaseIdle
	shrinkAbove = 64 << 10 // a buffer grown beyond this is given back once drained
	minRead     = 4096     // slack beyond MaxElementBytes, so one read always fits
)

// Element is one top-level element of a stream (RFC 6120 §4.1): a stanza,
// a negotiation element, <stream:features/> or <stream:error/>.
type Element struct {
	// Name is the resolved namespace and local name of the element; an
	// unprefixed element takes the stream's content namespace (§4.8.2).
	Name xml.Name
	// Attr holds the attributes of the element's start tag, values
	// unescaped. Unprefixed attributes have Name.Space "". A prefixed
	// attribute has its resolved namespace as Name.Space, so xml:lang has
	// Space "http://www.w3.org/XML/1998/namespace" (as encoding/xml's
	// Token). Namespace declarations are kept as encoding/xml does:
	// xmlns='u' is {Space: "", Local: "xmlns"}, xmlns:p='u' is
	// {Space: "xmlns", Local: "p"}.
	Attr []xml.Attr
	// Raw is the complete element as received, from its '<' to its final
	// '>'. If the element uses a prefix declared only on the stream
	// header (such as "stream" in <stream:features/>), that declaration
	// is added to its start tag, so that Raw stands alone in any stream
	// with the same content namespace; the inherited default namespace is
	// not added. Raw belongs to the caller.
	Raw []byte
	// StartLen is the length of the start tag in Raw: Raw[:StartLen] is
	// "<message ...>", or all of Raw for an empty-element tag.
	StartLen int
}

// AttrValue returns the value of the element's unprefixed attribute
// local, "" if it has none.
func (e *Element) AttrValue(local string) string {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Text returns the character data of a simple element such as
// <auth>…</auth>, unescaped.
func (e *Element) Text() string {
	// Most are base64 or names, with nothing to unescape: the bytes
	// between the tags are the text.
	raw, n := e.Raw, e.StartLen
	if n >= 2 && n <= len(raw) && raw[n-2] == '/' {
		return "" // <auth/>
	}
	if end := bytes.LastIndexByte(raw, '<'); n > 0 && end >= n {
		body := raw[n:end]
		if bytes.IndexByte(body, '<') < 0 && bytes.IndexByte(body, '&') < 0 && bytes.IndexByte(body, '\r') < 0 {
			return string(body)
		}
	}
	var v string
	xml.Unmarshal(e.Raw, &v)
	return v
}

// element is an Element and room for its first attributes, allocated
// together.
type element struct {
	Element
	attrs [6]xml.Attr
}

// nsDecl is a prefix declared on the stream header.
type nsDecl struct {
	prefix, uri string
}

// binding is a namespace declaration inside the current element; spans are
// offsets from the element's start.
type binding struct {
	p0, p1 int // prefix; p0 == p1 for the default namespace
	v0, v1 int // value, escaped
}

// open is an element whose end tag has not been read yet.
type open struct {
	n0, n1 int // qualified name, offsets from the element's start
	mark   int // len(Reader.ns) before its declarations
}

// attrSpan is one attribute of a start tag, as offsets from the tag's '<'.
type attrSpan struct {
	n0, colon, n1 int // qualified name; colon is -1 without a prefix
	v0, v1        int // value, escaped
	amp           bool
}

// Reader reads a stream (RFC 6120 §4) from a peer: its header, then one
// top-level element at a time. A Reader is used by one goroutine.
type Reader struct {
	src io.Reader
	lim Limits
	buf []byte
	// start is the offset in buf of the first byte not yet returned (the
	// element being read once its '<' is seen); w is the end of the data.
	start, w int
	rerr     error // read error seen with data, returned by the next fill
	// releaseIdle: buf is borrowed from buffers while input is pending
	// (ReleaseIdle); pooled is it, nil when none is held.
	releaseIdle bool
	pooled      *[initialBuf]byte
	small       [smallRead]byte
	err         error // sticky result: stream error, close or end of input
	fresh       bool  // nothing consumed since NewReader or Reset: a BOM may follow

	// The stream header's context (RFC 6120 §4.8).
	root      []byte   // qualified name of the root, to match its end tag
	defNS     string   // its default namespace
	hdrNS     []nsDecl // its prefixed declarations
	usedHdr   []bool   // which of them the current element uses
	rootEmpty bool     // the header was an empty-element tag

	// Scratch for the current element.
	stack   []open
	ns      []binding
	attrs   []attrSpan
	attrSet map[string]struct{}
	nameEnd int // end of the name in the last tag parsed
	cur     *element
}

// NewReader returns a Reader of src with the limits l; a zero field of l
// takes its default.
func NewReader(src io.Reader, l Limits) *Reader {
	d := DefaultLimits()
	if l.MaxElementBytes <= 0 {
		l.MaxElementBytes = d.MaxElementBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	return &Reader{src: src, lim: l, buf: make([]byte, min(initialBuf, l.MaxElementBytes+minRead)), fresh: true}
}

// Reset discards all buffered input and the stream's context: the next call
// must be ReadHeader, reading from src. It is used for the stream restarts
// after STARTTLS and SASL (RFC 6120 §5.4.3.3, §6.4.6), when nothing sent
// before the restart may be interpreted after it.
func (r *Reader) Reset(src io.Reader) {
	r.src = src
	r.start, r.w = 0, 0
	r.rerr, r.err = nil, nil
	r.fresh = true
	r.root, r.defNS, r.hdrNS, r.rootEmpty = nil, "", nil, false
	if len(r.buf) > shrinkAbove {
		r.buf = make([]byte, initialBuf)
	}
}

// sticky reports whether err ends the stream for good.
func sticky(err error) bool {
	var se *Error
	return err == io.EOF || err == io.ErrUnexpectedEOF || err == ErrClosed || errors.As(err, &se)
}

func wf(text string) error         { return &Error{Condition: NotWellFormed, Text: text} }
func restricted(text string) error { return &Error{Condition: RestrictedXML, Text: text} }

var errTooBig = &Error{Condition: PolicyViolation, Text: "element too large"}

// fill reads once more from the source, making room first. Offsets from
// r.start stay valid.
func (r *Reader) fill() error {
	if r.rerr != nil {
		err := r.rerr
		if err != io.EOF {
			r.rerr = nil
		}
		return err
	}
	pending := r.Buffered()
	if r.releaseIdle && pending == 0 {
		return r.fillIdle()
	}
	switch {
	case len(r.buf) > shrinkAbove && pending <= initialBuf/2:
		nb := make([]byte, initialBuf)
		copy(nb, r.buf[r.start:r.w])
		r.buf, r.start, r.w = nb, 0, pending
	case r.w == len(r.buf) && r.start > 0:
		copy(r.buf, r.buf[r.start:r.w])
		r.start, r.w = 0, pending
	case r.w == len(r.buf):
		// pending <= MaxElementBytes here, so the buffer can grow.
		nb := make([]byte, min(2*len(r.buf), r.lim.MaxElementBytes+minRead))
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	n, err := r.read(r.buf[r.w:])
	r.w += n
	return err
}

// read reads from the source into p until something comes: n > 0 and no
// error (an error that came with data is kept for the next fill), or an
// error (io.EOF kept too; io.ErrNoProgress after 100 empty reads).
func (r *Reader) read(p []byte) (int, error) {
	for range 100 {
		n, err := r.src.Read(p)
		switch {
		case n > 0:
			if err != nil {
				r.rerr = err
			}
			return n, nil
		case err != nil:
			if err == io.EOF {
				r.rerr = err
			}
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

// Buffered is how many bytes the Reader holds that it has not returned:
// with none, the next Next reads from the source, and may wait there.
func (r *Reader) Buffered() int { return r.w - r.start }

// ReleaseIdle has the Reader give its read buffer back to a pool whenever
// it has handed out everything it read, and wait for the next bytes
// holding none: tens of thousands of idle streams then hold no read
// buffers. It costs a pool round trip and a copy of up to 512 bytes per
// burst of input, and a second Read for a burst larger than that, so it
// is for network streams that are idle most of the time.
func (r *Reader) ReleaseIdle() { r.releaseIdle = true }

// buffers are the read buffers of Readers with ReleaseIdle.
var buffers = sync.Pool{New: func() any { return new([initialBuf]byte) }}

// borrow takes a buffer from the pool; the Reader holds nothing.
func (r *Reader) borrow() {
	r.pooled = buffers.Get().(*[initialBuf]byte)
	r.buf, r.start, r.w = r.pooled[:], 0, 0
}

// smallRead is what a Reader with ReleaseIdle reads while it holds no
// buffer: most stanzas fit, so that one Read brings them whole.
const smallRead = 512

// fillIdle is fill with nothing pending and ReleaseIdle on: the buffer
// goes back to the pool, the Reader waits for input with a read into its
// small array, and copies what came into a buffer taken from the pool.
func (r *Reader) fillIdle() error {
	if r.pooled != nil {
		buffers.Put(r.pooled)
		r.pooled = nil
	}
	r.buf, r.start, r.w = nil, 0, 0
	n, err := r.read(r.small[:])
	if n > 0 {
		r.borrow()
		r.w = copy(r.buf, r.small[:n])
	}
	return err
}

// skipSpace consumes whitespace before a top-level element or the header,
// and reports whether input remains.
func (r *Reader) skipSpace() error {
	for {
		for r.start < r.w && isSpace(r.buf[r.start]) {
			r.start++
			r.fresh = false
		}
		if r.start < r.w {
			return nil
		}
		if err := r.fill(); err != nil {
			return err
		}
	}
}

// need makes sure n bytes from r.start are buffered; a shorter input is
// io.ErrUnexpectedEOF.
func (r *Reader) need(n int) error {
	for r.w-r.start < n {
		if n > r.headerMax() {
			return errTooBig
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// ReadHeader reads the peer's stream header (RFC 6120 §4.7): an optional
// XML declaration (which must not name an encoding other than UTF-8,
// §11.6), then the opening <stream:stream> tag. Errors:
//
//   - nothing but whitespace before the end of input: io.EOF; the input
//     ends inside the header: io.ErrUnexpectedEOF;
//   - a DTD, comment or processing instruction: restricted-xml (§11.1);
//   - malformed XML or text before the root: not-well-formed (§4.9.3.13);
//   - a root other than a "stream" element: bad-format (§4.9.3.1); a
//     "stream" element outside the stream namespace, or a content
//     namespace equal to it: invalid-namespace (§4.8.1, §4.8.2);
//   - no version, or a major version other than 1: unsupported-version
//     (§4.7.5, §4.9.3.25). The header read so far is returned with it.
func (r *Reader) ReadHeader() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	h, err := r.readHeader()
	if err != nil && sticky(err) {
		r.err = err
	}
	return h, err
}

func (r *Reader) readHeader() (Header, error) {
	r.root, r.defNS, r.hdrNS, r.rootEmpty = nil, "", nil, false
	r.stack, r.ns = r.stack[:0], r.ns[:0]
	if r.fresh {
		if err := r.skipBOM(); err != nil {
			return Header{}, err
		}
	}
	decl := false
	for {
		if err := r.skipSpace(); err != nil {
			return Header{}, err
		}
		if r.buf[r.start] != '<' {
			return Header{}, wf("text before the stream header")
		}
		if err := r.need(2); err != nil {
			return Header{}, err
		}
		switch r.buf[r.start+1] {
		case '?':
			if decl {
				return Header{}, restricted("processing instruction")
			}
			if err := r.readDecl(); err != nil {
				return Header{}, err
			}
			decl = true
			continue
		case '!':
			if err := r.need(3); err != nil {
				return Header{}, err
			}
			if c := r.buf[r.start+2]; c == '-' || 'A' <= c && c <= 'Z' {
				return Header{}, restricted("comment or DTD")
			}
			return Header{}, wf("markup before the stream header")
		case '/':
			return Header{}, wf("end tag before the stream header")
		}
		break
	}
	// The start tag: scan to its '>' outside quotes.
	var quote byte
	pos := 1
	for {
		b := r.buf[r.start:r.w]
		n := min(len(b), r.headerMax())
		for ; pos < n; pos++ {
			c := b[pos]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				} else if c == '<' {
					return Header{}, wf("'<' in an attribute value")
				}
			case c == '\'' || c == '"':
				quote = c
			case c == '<':
				return Header{}, wf("'<' in a tag")
			case c == '>':
				return r.header(b[:pos+1])
			}
		}
		if n < len(b) {
			return Header{}, errTooBig
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				return Header{}, io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
	}
}

// headerMax bounds the XML declaration and the stream header: the element
// limit, but never less than the buffer's slack, so that a tiny element limit
// still lets a header through.
func (r *Reader) headerMax() int { return max(r.lim.MaxElementBytes, minRead) }

// skipBOM skips a UTF-8 byte order mark at the start of a stream; any other
// encoding is refused (RFC 6120 §11.6).
func (r *Reader) skipBOM() error {
	if err := r.skipEmpty(); err != nil {
		return err
	}
	switch r.buf[r.start] {
	case 0xEF:
		if err := r.need(3); err != nil {
			return err
		}
		if r.buf[r.start+1] != 0xBB || r.buf[r.start+2] != 0xBF {
			return wf("invalid UTF-8")
		}
		r.start += 3
	case 0xFE, 0xFF, 0x00:
		return &Error{Condition: UnsupportedEncoding, Text: "only UTF-8 is supported"}
	}
	r.fresh = false
	return nil
}

// skipEmpty waits for at least one byte.
func (r *Reader) skipEmpty() error {
	for r.start == r.w {
		if err := r.fill(); err != nil {
			return err
		}
	}
	return nil
}

// readDecl reads the XML declaration "<?xml ...?>" at r.start. It accepts
// only UTF-8 (RFC 6120 §11.6); any other processing instruction is
// restricted (§11.1).
func (r *Reader) readDecl() error {
	if err := r.need(6); err != nil {
		return err
	}
	b := r.buf[r.start:]
	if string(b[2:5]) != "xml" || !isSpace(b[5]) {
		return restricted("processing instruction")
	}
	pos := 6
	for {
		b := r.buf[r.start:r.w]
		n := min(len(b), r.headerMax())
		if i := bytes.Index(b[pos-1:n], []byte("?>")); i >= 0 {
			end := pos - 1 + i
			if err := checkDecl(b[6:end]); err != nil {
				return err
			}
			r.start += end + 2
			return nil
		}
		if n < len(b) {
			return errTooBig
		}
		pos = max(n, 6)
		if err := r.fill(); err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
}

// checkDecl checks the pseudo-attributes of an XML declaration (XML 1.0
// §2.8): version first, then optional encoding and standalone.
func checkDecl(b []byte) error {
	seen := 0
	for i := 0; ; {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			if seen == 0 {
				return wf("XML declaration without a version")
			}
			return nil
		}
		n0 := i
		for i < len(b) && b[i] != '=' && !isSpace(b[i]) {
			i++
		}
		name := string(b[n0:i])
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) || b[i] != '=' {
			return wf("bad XML declaration")
		}
		i++
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) || b[i] != '\'' && b[i] != '"' {
			return wf("bad XML declaration")
		}
		q := b[i]
		v0 := i + 1
		j := bytes.IndexByte(b[v0:], q)
		if j < 0 {
			return wf("bad XML declaration")
		}
		v := b[v0 : v0+j]
		i = v0 + j + 1
		if i < len(b) && !isSpace(b[i]) {
			return wf("bad XML declaration")
		}
		switch {
		case name == "version" && seen == 0:
			if len(v) < 3 || string(v[:2]) != "1." || !allDigits(v[2:]) {
				return wf("bad XML version")
			}
			seen = 1
		case name == "encoding" && seen == 1:
			if !bytes.EqualFold(v, []byte("UTF-8")) {
				return &Error{Condition: UnsupportedEncoding, Text: "only UTF-8 is supported"}
			}
			seen = 2
		case name == "standalone" && seen >= 1 && seen < 3:
			if string(v) != "yes" && string(v) != "no" {
				return wf("bad XML declaration")
			}
			seen = 3
		default:
			return wf("bad XML declaration")
		}
	}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// header interprets the complete stream header tag.
func (r *Reader) header(tag []byte) (Header, error) {
	r.start += len(tag)
	empty, err := r.parseTag(tag)
	if err != nil {
		return Header{}, err
	}
	var h Header
	var space string
	name := tag[1:r.nameEnd]
	local := name
	prefix := []byte(nil)
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		prefix, local = name[:i], name[i+1:]
	}
	// Declarations first, then the names they qualify.
	for _, a := range r.attrs {
		an := tag[a.n0:a.n1]
		v := attrValue(tag, a)
		switch {
		case string(an) == "xmlns":
			if v == NS {
				return h, &Error{Condition: InvalidNamespace, Text: "the content namespace must not be the stream namespace"}
			}
			r.defNS = v
		case a.colon >= 0 && string(an[:a.colon-a.n0]) == "xmlns":
			if err := checkBinding(tag[a.colon+1:a.n1], tag[a.v0:a.v1]); err != nil {
				return h, err
			}
			r.hdrNS = append(r.hdrNS, nsDecl{prefix: string(tag[a.colon+1 : a.n1]), uri: v})
			if v == NSDialback && string(tag[a.colon+1:a.n1]) == "db" {
				h.Dialback = true
			}
		}
	}
	h.NS = r.defNS
	switch {
	case prefix == nil:
		space = r.defNS
	case string(prefix) == "xml":
		space = xmlURI
	case string(prefix) == "xmlns":
		return h, wf("the xmlns prefix is reserved")
	default:
		i := r.hdrLookup(prefix)
		if i < 0 {
			return h, wf("undeclared namespace prefix " + string(prefix))
		}
		space = r.hdrNS[i].uri
	}
	for _, a := range r.attrs {
		an := tag[a.n0:a.n1]
		if a.colon >= 0 && string(tag[a.n0:a.colon]) != "xmlns" && string(tag[a.n0:a.colon]) != "xml" && r.hdrLookup(tag[a.n0:a.colon]) < 0 {
			return h, wf("undeclared namespace prefix " + string(tag[a.n0:a.colon]))
		}
		switch string(an) {
		case "to":
			h.To = attrValue(tag, a)
		case "from":
			h.From = attrValue(tag, a)
		case "id":
			h.ID = attrValue(tag, a)
		case "version":
			h.Version = attrValue(tag, a)
		case "xml:lang":
			h.Lang = attrValue(tag, a)
		}
	}
	if string(local) != "stream" {
		return h, &Error{Condition: BadFormat, Text: "the root element must be <stream:stream/>"}
	}
	if space != NS {
		return h, &Error{Condition: InvalidNamespace, Text: "the stream element must be qualified by " + NS}
	}
	if !supportedVersion(h.Version) {
		return h, &Error{Condition: UnsupportedVersion, Text: "version 1.0 is required"}
	}
	r.root = append([]byte(nil), name...)
	r.rootEmpty = empty
	r.usedHdr = make([]bool, len(r.hdrNS))
	return h, nil
}

// hdrLookup finds prefix among the header's declarations (the last one wins,
// duplicates being refused by parseTag).
func (r *Reader) hdrLookup(prefix []byte) int {
	for i := len(r.hdrNS) - 1; i >= 0; i-- {
		if r.hdrNS[i].prefix == string(prefix) {
			return i
		}
	}
	return -1
}

// supportedVersion reports whether v is "major.minor" with major 1, leading
// zeros ignored (RFC 6120 §4.7.5).
func supportedVersion(v string) bool {
	i := 0
	for i < len(v) && v[i] == '0' {
		i++
	}
	if i+1 >= len(v) || v[i] != '1' || v[i+1] != '.' {
		return false
	}
	return allDigits([]byte(v[i+2:]))
}

// Next returns the next top-level element (RFC 6120 §4.1), skipping
// whitespace keepalives (§4.6.1). It returns as soon as the element's last
// '>' is read. Errors:
//
//   - the peer's </stream:stream>: ErrClosed (§4.4);
//   - end of input between elements: io.EOF; inside one:
//     io.ErrUnexpectedEOF;
//   - more than MaxElementBytes or deeper than MaxDepth: policy-violation
//     (§4.9.3.14, §13.12);
//   - a comment, processing instruction, DTD or entity reference other
//     than the predefined five and character references: restricted-xml
//     (§11.1, §4.9.3.18);
//   - malformed XML, including invalid characters, invalid UTF-8 and
//     undeclared namespace prefixes: not-well-formed (§4.9.3.13, §11.4);
//   - character data other than whitespace between top-level elements:
//     bad-format (§4.9.3.1): such XML is well-formed but cannot be
//     processed as a stream of stanzas.
//
// Stream errors, ErrClosed and the end of input are final: later calls
// return them again. Other errors come from the source; a later call
// resumes reading where it stopped.
func (r *Reader) Next() (*Element, error) {
	if r.err != nil {
		return nil, r.err
	}
	el, err := r.next()
	if err != nil && sticky(err) {
		r.err = err
	}
	return el, err
}

// Scanner states inside an element.
const (
	sText      = iota // character data
	sLT               // after '<'
	sBang             // after "<!"
	sCDATAOpen        // matching "<![CDATA["
	sCDATA            // inside a CDATA section
	sRef              // after '&' in character data
	sStart            // in a start tag, outside quotes
	sQuote            // in an attribute value
	sEnd              // in an end tag
)

func (r *Reader) next() (*Element, error) {
	if r.rootEmpty {
		return nil, ErrClosed
	}
	r.fresh = false
	if err := r.skipSpace(); err != nil {
		return nil, err
	}
	if r.buf[r.start] != '<' {
		return nil, &Error{Condition: BadFormat, Text: "character data between top-level elements"}
	}
	r.stack, r.ns, r.cur = r.stack[:0], r.ns[:0], nil
	clear(r.usedHdr)
	max := r.lim.MaxElementBytes
	st := sLT
	pos := 1
	var tagStart, refStart, brackets, match int
	var quote byte
	for {
		b := r.buf[r.start:r.w]
		n := min(len(b), max)
	scan:
		for pos < n {
			switch st {
			case sText:
				for pos < n {
					c := b[pos]
					switch {
					case c == '<':
						tagStart = pos
						pos++
						st = sLT
						continue scan
					case c == '&':
						refStart = pos
						pos++
						st = sRef
						continue scan
					case c == ']':
						brackets++
						pos++
					case c == '>':
						if brackets >= 2 {
							return nil, wf("']]>' in character data")
						}
						brackets = 0
						pos++
					case c >= 0x80:
						size := runeAt(b[pos:n])
						if size == 0 {
							break scan
						}
						if size < 0 {
							return nil, wf("invalid character")
						}
						brackets = 0
						pos += size
					case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
						return nil, wf("invalid character")
					default:
						brackets = 0
						pos++
					}
				}
			case sLT:
				switch b[pos] {
				case '/':
					st = sEnd
					pos++
				case '!':
					st = sBang
					pos++
				case '?':
					return nil, restricted("processing instruction")
				default:
					st = sStart
				}
			case sBang:
				switch c := b[pos]; {
				case c == '-':
					return nil, restricted("comment")
				case 'A' <= c && c <= 'Z':
					return nil, restricted("DTD")
				case c == '[' && len(r.stack) > 0:
					st, match = sCDATAOpen, 1
					pos++
				case c == '[':
					return nil, &Error{Condition: BadFormat, Text: "character data between top-level elements"}
				default:
					return nil, wf("bad markup")
				}
			case sCDATAOpen:
				if b[pos] != "[CDATA["[match] {
					return nil, wf("bad markup")
				}
				pos++
				match++
				if match == len("[CDATA[") {
					st, brackets = sCDATA, 0
				}
			case sCDATA:
				for pos < n {
					c := b[pos]
					switch {
					case c == ']':
						brackets++
						pos++
					case c == '>':
						pos++
						if brackets >= 2 {
							st, brackets = sText, 0
							continue scan
						}
						brackets = 0
					case c >= 0x80:
						size := runeAt(b[pos:n])
						if size == 0 {
							break scan
						}
						if size < 0 {
							return nil, wf("invalid character")
						}
						brackets = 0
						pos += size
					case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
						return nil, wf("invalid character")
					default:
						brackets = 0
						pos++
					}
				}
			case sRef:
				for pos < n {
					c := b[pos]
					if c == ';' {
						if err := checkRef(b[refStart+1 : pos]); err != nil {
							return nil, err
						}
						pos++
						st = sText
						continue scan
					}
					if c == '<' || c == '&' || c == '>' || c == '\'' || c == '"' || isSpace(c) {
						return nil, wf("bad reference")
					}
					pos++
				}
			case sStart:
				for pos < n {
					switch c := b[pos]; c {
					case '\'', '"':
						quote = c
						st = sQuote
						pos++
						continue scan
					case '<':
						return nil, wf("'<' in a tag")
					case '>':
						pos++
						done, err := r.startTag(b, tagStart, pos)
						if err != nil {
							return nil, err
						}
						if done {
							return r.finish(b[:pos])
						}
						st = sText
						continue scan
					}
					pos++
				}
			case sQuote:
				for pos < n {
					c := b[pos]
					if c == quote {
						st = sStart
						pos++
						continue scan
					}
					if c == '<' {
						return nil, wf("'<' in an attribute value")
					}
					pos++
				}
			case sEnd:
				for pos < n {
					c := b[pos]
					if c == '<' {
						return nil, wf("'<' in a tag")
					}
					pos++
					if c == '>' {
						done, err := r.endTag(b, tagStart, pos)
						if err != nil {
							return nil, err
						}
						if done {
							return r.finish(b[:pos])
						}
						st = sText
						continue scan
					}
				}
			}
		}
		if n < len(b) {
			return nil, errTooBig
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// startTag handles the start tag b[t0:t1] of the current element and reports
// whether it completes the top-level element.
func (r *Reader) startTag(b []byte, t0, t1 int) (bool, error) {
	tag := b[t0:t1]
	empty, err := r.parseTag(tag)
	if err != nil {
		return false, err
	}
	depth := len(r.stack) + 1
	if depth > r.lim.MaxDepth {
		return false, &Error{Condition: PolicyViolation, Text: "element nested too deeply"}
	}
	mark := len(r.ns)
	prefixed := 0
	for _, a := range r.attrs {
		if a.colon < 0 {
			if a.n1-a.n0 == 5 && string(tag[a.n0:a.n1]) == "xmlns" {
				r.ns = append(r.ns, binding{p0: t0 + a.n0, p1: t0 + a.n0, v0: t0 + a.v0, v1: t0 + a.v1})
			}
			continue
		}
		if string(tag[a.n0:a.colon]) != "xmlns" {
			prefixed++
			continue
		}
		if err := checkBinding(tag[a.colon+1:a.n1], tag[a.v0:a.v1]); err != nil {
			return false, err
		}
		r.ns = append(r.ns, binding{p0: t0 + a.colon + 1, p1: t0 + a.n1, v0: t0 + a.v0, v1: t0 + a.v1})
	}
	name := tag[1:r.nameEnd]
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		if _, err := r.resolve(b, name[:i], false); err != nil {
			return false, err
		}
	}
	if prefixed > 0 {
		if err := r.checkAttrPrefixes(b, tag, prefixed); err != nil {
			return false, err
		}
	}
	if depth == 1 {
		r.top(b, t0, t1)
	}
	if empty {
		r.ns = r.ns[:mark]
		return depth == 1, nil
	}
	r.stack = append(r.stack, open{n0: t0 + 1, n1: t0 + r.nameEnd, mark: mark})
	return false, nil
}

// resolve finds the namespace bound to prefix in the current element or on
// the stream header (marking it used), or reports not-well-formed. The
// value is returned unescaped only if want is set.
func (r *Reader) resolve(b, prefix []byte, want bool) (string, error) {
	switch string(prefix) {
	case "xml":
		return xmlURI, nil
	case "xmlns":
		return "", wf("the xmlns prefix is reserved")
	}
	for i := len(r.ns) - 1; i >= 0; i-- {
		d := r.ns[i]
		if d.p0 != d.p1 && bytes.Equal(b[d.p0:d.p1], prefix) {
			if !want {
				return "", nil
			}
			return unescape(b[d.v0:d.v1]), nil
		}
	}
	if i := r.hdrLookup(prefix); i >= 0 {
		r.usedHdr[i] = true
		return r.hdrNS[i].uri, nil
	}
	return "", wf("undeclared namespace prefix " + string(prefix))
}

// checkAttrPrefixes resolves the prefixed attributes of tag and refuses two
// with the same namespace and local name (Namespaces in XML §6.3).
func (r *Reader) checkAttrPrefixes(b, tag []byte, prefixed int) error {
	var seen map[xml.Name]struct{}
	if prefixed > 1 {
		seen = make(map[xml.Name]struct{}, prefixed)
	}
	for _, a := range r.attrs {
		if a.colon < 0 || string(tag[a.n0:a.colon]) == "xmlns" {
			continue
		}
		space, err := r.resolve(b, tag[a.n0:a.colon], prefixed > 1)
		if err != nil {
			return err
		}
		if prefixed > 1 {
			n := xml.Name{Space: space, Local: string(tag[a.colon+1 : a.n1])}
			if _, dup := seen[n]; dup {
				return wf("duplicate attribute")
			}
			seen[n] = struct{}{}
		}
	}
	return nil
}

// top records the name and attributes of the top-level element, whose start
// tag is b[t0:t1].
func (r *Reader) top(b []byte, t0, t1 int) {
	e := new(element)
	r.cur = e
	e.StartLen = t1 - t0
	s := string(b[t0:t1])
	name := s[1:r.nameEnd]
	if i := indexByte(name, ':'); i >= 0 {
		e.Name.Space, _ = r.resolve(b, b[t0+1:t0+1+i], true)
		e.Name.Local = name[i+1:]
	} else {
		e.Name.Local = name
		e.Name.Space = r.defNS
		for _, d := range r.ns {
			if d.p0 == d.p1 {
				e.Name.Space = unescape(b[d.v0:d.v1])
			}
		}
	}
	if len(r.attrs) <= len(e.attrs) {
		e.Attr = e.attrs[:len(r.attrs)]
	} else {
		e.Attr = make([]xml.Attr, len(r.attrs))
	}
	for i, a := range r.attrs {
		at := &e.Attr[i]
		switch {
		case a.colon < 0:
			at.Name.Local = s[a.n0:a.n1]
		case s[a.n0:a.colon] == "xmlns":
			at.Name = xml.Name{Space: "xmlns", Local: s[a.colon+1 : a.n1]}
		default:
			at.Name.Space, _ = r.resolve(b, b[t0+a.n0:t0+a.colon], true)
			at.Name.Local = s[a.colon+1 : a.n1]
		}
		if a.amp {
			at.Value = unescape(b[t0+a.v0 : t0+a.v1])
		} else {
			at.Value = s[a.v0:a.v1]
		}
	}
}

// endTag handles the end tag b[t0:t1] and reports whether it completes the
// top-level element.
func (r *Reader) endTag(b []byte, t0, t1 int) (bool, error) {
	tag := b[t0:t1]
	i := 2
	for i < len(tag)-1 && !isSpace(tag[i]) {
		i++
	}
	name := tag[2:i]
	for ; i < len(tag)-1; i++ {
		if !isSpace(tag[i]) {
			return false, wf("bad end tag")
		}
	}
	if len(r.stack) == 0 {
		if r.root != nil && bytes.Equal(name, r.root) {
			return false, ErrClosed
		}
		return false, wf("unexpected end tag")
	}
	o := r.stack[len(r.stack)-1]
	if !bytes.Equal(name, b[o.n0:o.n1]) {
		return false, wf("mismatched end tag")
	}
	r.stack = r.stack[:len(r.stack)-1]
	r.ns = r.ns[:o.mark]
	return len(r.stack) == 0, nil
}

// finish returns the complete top-level element raw, adding the header's
// namespace declarations it uses.
func (r *Reader) finish(raw []byte) (*Element, error) {
	e := r.cur
	r.cur = nil // the caller's now: an idle stream keeps no element
	extra := 0
	for i, used := range r.usedHdr {
		if used {
			extra += len(" xmlns:='") + len(r.hdrNS[i].prefix) + escapedLen(r.hdrNS[i].uri) + 1
		}
	}
	if len(raw)+extra > r.lim.MaxElementBytes {
		return nil, errTooBig
	}
	r.start += len(raw)
	if extra == 0 {
		e.Raw = append(make([]byte, 0, len(raw)), raw...)
		return &e.Element, nil
	}
	at := e.StartLen - 1
	if raw[at-1] == '/' {
		at--
	}
	out := make([]byte, 0, len(raw)+extra)
	out = append(out, raw[:at]...)
	for i, used := range r.usedHdr {
		if used {
			out = append(out, " xmlns:"...)
			out = append(out, r.hdrNS[i].prefix...)
			out = append(out, "='"...)
			out = appendEscaped(out, r.hdrNS[i].uri)
			out = append(out, '\'')
		}
	}
	out = append(out, raw[at:]...)
	e.Raw = out
	e.StartLen += extra
	return &e.Element, nil
}

func escapedLen(s string) int {
	return len(appendEscaped(nil, s))
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
