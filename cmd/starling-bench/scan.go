package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// scanner splits an XMPP stream into top-level elements without parsing
// them: it only tracks tag nesting (quotes inside tags, comments, CDATA
// and processing instructions are skipped correctly), so the hot path
// costs one pass over the bytes and no allocation. It trusts the server
// to send well-formed XML; it is a load generator, not a validator.
type scanner struct {
	rd   io.Reader
	buf  []byte
	r, w int // unconsumed input is buf[r:w]
	max  int
	open bool // the server's stream header has been read
}

const (
	kindElem   = iota // a complete top-level element
	kindHeader        // the server's <stream:stream ...> start tag
	kindClose         // </stream:stream>
	kindSkip          // an XML declaration, comment or the like at the top
)

// errClosed is returned when the server closes its stream.
var errClosed = errors.New("stream closed by the server")

func newScanner(rd io.Reader) *scanner {
	return &scanner{rd: rd, buf: make([]byte, 4096), max: maxElement}
}

// reset starts a new stream on rd (after STARTTLS or SASL), dropping
// anything buffered.
func (s *scanner) reset(rd io.Reader) {
	s.rd, s.r, s.w, s.open = rd, 0, 0, false
}

// restart begins a new stream on the same reader (after SASL).
func (s *scanner) restart() { s.reset(s.rd) }

// next returns the next top-level element, or the stream header while the
// stream is not open yet. The slice is valid until the next call.
func (s *scanner) next() ([]byte, int, error) {
	for {
		// Whitespace keepalives (and any stray text) between elements.
		for s.r < s.w && s.buf[s.r] != '<' {
			s.r++
		}
		if s.r < s.w {
			end, kind := scanElement(s.buf[s.r:s.w], s.open)
			if end > 0 {
				el := s.buf[s.r : s.r+end]
				s.r += end
				switch kind {
				case kindSkip:
					continue
				case kindHeader:
					s.open = true
				case kindClose:
					return el, kind, errClosed
				}
				return el, kind, nil
			}
		}
		if err := s.fill(); err != nil {
			return nil, 0, err
		}
	}
}

// fill reads more input, compacting or growing the buffer as needed.
func (s *scanner) fill() error {
	if s.r == s.w {
		s.r, s.w = 0, 0
	} else if s.w == len(s.buf) {
		if s.r > 0 {
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		} else {
			if len(s.buf) >= s.max {
				return fmt.Errorf("element larger than %d bytes", s.max)
			}
			nb := make([]byte, 2*len(s.buf))
			s.w = copy(nb, s.buf[s.r:s.w])
			s.r = 0
			s.buf = nb
		}
	}
	n, err := s.rd.Read(s.buf[s.w:])
	s.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// scanElement looks for the end of the element starting at b[0] == '<'.
// It returns 0 when b holds only part of it. open tells whether the
// stream header has been seen: before it, the first start tag is the
// header and is returned alone.
func scanElement(b []byte, open bool) (end, kind int) {
	depth := 0
	i := 0
	for {
		if i >= len(b) {
			return 0, 0
		}
		if b[i] != '<' {
			j := bytes.IndexByte(b[i:], '<')
			if j < 0 {
				return 0, 0
			}
			i += j
		}
		if i+1 >= len(b) {
			return 0, 0
		}
		switch b[i+1] {
		case '?':
			j := bytes.Index(b[i:], []byte("?>"))
			if j < 0 {
				return 0, 0
			}
			i += j + 2
			if depth == 0 {
				return i, kindSkip
			}
			continue
		case '!':
			rest := b[i:]
			var term string
			switch {
			case bytes.HasPrefix(rest, []byte("<![CDATA[")):
				term = "]]>"
			case bytes.HasPrefix(rest, []byte("<!--")):
				term = "-->"
			case len(rest) < 9:
				return 0, 0 // cannot tell yet
			default:
				term = ">"
			}
			j := bytes.Index(rest, []byte(term))
			if j < 0 {
				return 0, 0
			}
			i += j + len(term)
			if depth == 0 {
				return i, kindSkip
			}
			continue
		case '/':
			j := bytes.IndexByte(b[i:], '>')
			if j < 0 {
				return 0, 0
			}
			i += j + 1
			depth--
			if depth == 0 {
				return i, kindElem
			}
			if depth < 0 {
				return i, kindClose
			}
			continue
		}
		// A start tag: find its '>' outside quoted attribute values.
		j := i + 1
		var q byte
		for ; j < len(b); j++ {
			c := b[j]
			if q != 0 {
				if c == q {
					q = 0
				}
				continue
			}
			if c == '\'' || c == '"' {
				q = c
			} else if c == '>' {
				break
			}
		}
		if j >= len(b) {
			return 0, 0
		}
		i = j + 1
		if b[j-1] == '/' {
			if depth == 0 {
				return i, kindElem
			}
			continue
		}
		if depth == 0 && !open {
			return i, kindHeader
		}
		depth++
	}
}

// isStreamError reports whether the top-level element el is a stream
// error: <stream:error/> (TCP, and RFC 7395 §3.6's form), or <error/> with
// the streams namespace as its default.
func isStreamError(el []byte) bool {
	return is(el, "error") && (bytes.HasPrefix(el, []byte("<stream:")) || bytes.Equal(attr(el, "xmlns"), []byte("http://etherx.jabber.org/streams")))
}

// attr returns the value of attribute name in the start tag at the
// beginning of el (no entity decoding; fine for ids, types and JIDs).
func attr(el []byte, name string) []byte {
	end := startTagEnd(el)
	tag := el[:end]
	for off := 0; ; {
		i := bytes.Index(tag[off:], []byte(name))
		if i < 0 {
			return nil
		}
		i += off
		k := i + len(name)
		if i > 0 && isSpace(tag[i-1]) && k+1 < len(tag) && tag[k] == '=' && (tag[k+1] == '\'' || tag[k+1] == '"') {
			q := tag[k+1]
			v := tag[k+2:]
			if e := bytes.IndexByte(v, q); e >= 0 {
				return v[:e]
			}
			return nil
		}
		off = k
	}
}

// startTagEnd is the index just past the first start tag of el.
func startTagEnd(el []byte) int {
	var q byte
	for j := 1; j < len(el); j++ {
		c := el[j]
		if q != 0 {
			if c == q {
				q = 0
			}
			continue
		}
		if c == '\'' || c == '"' {
			q = c
		} else if c == '>' {
			return j + 1
		}
	}
	return len(el)
}

// name returns the qualified name of the element el starts with.
func name(el []byte) []byte {
	if len(el) < 2 {
		return nil
	}
	for j := 1; j < len(el); j++ {
		if isSpace(el[j]) || el[j] == '>' || el[j] == '/' {
			return el[1:j]
		}
	}
	return el[1:]
}

// is reports whether el is an element with local name local (any prefix).
func is(el []byte, local string) bool {
	n := name(el)
	if i := bytes.IndexByte(n, ':'); i >= 0 {
		n = n[i+1:]
	}
	return string(n) == local
}

// child returns the text content of the first <local ...>…</local> inside
// el (raw, not unescaped), and whether it was found.
func child(el []byte, local string) ([]byte, bool) {
	return childOf(el, []byte("<"+local), []byte("</"+local+">"))
}

// The body of every incoming message and the status of every presence
// are looked up without allocating.
var (
	bodyOpen, bodyClose     = []byte("<body"), []byte("</body>")
	statusOpen, statusClose = []byte("<status"), []byte("</status>")
)

// childOf is child with the tags given: open is "<name", end "</name>".
func childOf(el, open, end []byte) ([]byte, bool) {
	for off := 1; ; {
		i := bytes.Index(el[off:], open)
		if i < 0 {
			return nil, false
		}
		i += off
		k := i + len(open)
		if k >= len(el) {
			return nil, false
		}
		switch el[k] {
		case '>', ' ', '\t', '\n', '\r', '/':
		default:
			off = k
			continue
		}
		e := startTagEnd(el[i:]) + i
		if el[e-2] == '/' {
			return nil, true
		}
		c := bytes.Index(el[e:], end)
		if c < 0 {
			return nil, false
		}
		return el[e : e+c], true
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
