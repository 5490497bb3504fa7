package stream

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// chunks gives its parts one Read at a time (at most len(p) of each),
// and records the size of each Read's buffer.
type chunks struct {
	parts []string
	sizes []int
}

func (c *chunks) Read(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	for len(c.parts) > 0 && c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	return n, nil
}

// With ReleaseIdle, a drained Reader waits for input with a small Read,
// holding no buffer, and reads the same elements as without it,
// however the input is cut: one byte, whole elements, several at once,
// a large element that grows the buffer.
func TestReleaseIdle(t *testing.T) {
	big := "<message><body>" + strings.Repeat("x", 3*initialBuf) + "</body></message>"
	input := []string{
		hdr, "<iq type='get' id='1'/>", " ", "<", "p", "resence/>",
		"<message><body>a</body></message><message><body>b</body></message>",
		big[:10], big[10:], "\n", "<r xmlns='urn:xmpp:sm:3'/>",
	}
	read := func(release bool) ([]string, []int) {
		src := &chunks{parts: append([]string(nil), input...)}
		r := NewReader(src, Limits{})
		if release {
			r.ReleaseIdle()
		}
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			el, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("release %v: %v after %q", release, err, got)
			}
			got = append(got, string(el.Raw))
			if release && len(src.parts) > 0 && r.w == r.start && r.pooled == nil {
				t.Fatalf("a buffer held nothing and was not pooled")
			}
		}
		return got, src.sizes
	}
	want, _ := read(false)
	got, sizes := read(true)
	if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != 6 {
		t.Fatalf("with ReleaseIdle: %d elements, without: %d, or they differ", len(got), len(want))
	}
	small := 0
	for _, n := range sizes {
		if n == smallRead {
			small++
		}
	}
	if small < 5 {
		t.Errorf("small reads while drained: %d (%v)", small, sizes)
	}
}

// BenchmarkReleaseIdle reads stanzas arriving one per Read, with and
// without ReleaseIdle: its cost per burst of input.
func BenchmarkReleaseIdle(b *testing.B) {
	for _, release := range []bool{false, true} {
		name := "held"
		if release {
			name = "released"
		}
		b.Run(name, func(b *testing.B) {
			msg := "<message to='bob@example.org/phone' type='chat' id='m1'><body>Hello Bob, a typical short chat message.</body></message>"
			src := &repeatOne{hdr: hdr, msg: msg}
			r := NewReader(src, Limits{})
			if release {
				r.ReleaseIdle()
			}
			if _, err := r.ReadHeader(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// repeatOne is the header, then msg once per Read, forever.
type repeatOne struct {
	hdr, msg string
	off      int
}

func (s *repeatOne) Read(p []byte) (int, error) {
	if s.hdr != "" {
		n := copy(p, s.hdr)
		s.hdr = s.hdr[n:]
		return n, nil
	}
	n := copy(p, s.msg[s.off:])
	s.off = (s.off + n) % len(s.msg)
	return n, nil
}

// Text reads the bytes between the tags when there is nothing to
// unescape, and agrees with encoding/xml everywhere.
func TestText(t *testing.T) {
	for _, raw := range []string{
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>",
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>",
		"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'></response>",
		"<response>=</response>",
		"<resource>a &amp; b</resource>",
		"<resource>a&#x20;b</resource>",
		"<resource><![CDATA[x<y]]></resource>",
		"<resource>line\r\nnext</resource>",
		"<resource>a<b/>c</resource>",
	} {
		r := NewReader(strings.NewReader(hdr+raw), Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		el, err := r.Next()
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var want string
		xml.Unmarshal(el.Raw, &want)
		if got := el.Text(); got != want {
			t.Errorf("%s: Text %q, encoding/xml %q", raw, got, want)
		}
	}
}
