// Package private implements Private XML Storage (XEP-0049): a user stores
// (set) and retrieves (get) XML elements on their own account, each one
// identified by its namespace and name (§2.1, §2.3). Each element is kept as
// the exact bytes sent, under the storage.Documents key
// "private {namespace} local".
//
// Error cases (§2.3 and §3; Prosody's mod_private and ejabberd's
// mod_private are the references):
//   - an IQ addressed to another account: <forbidden/>, type auth (§3,
//     "preferable" to service-unavailable; ejabberd); an account that does
//     not exist gets <service-unavailable/> from dispatch (RFC 6121
//     §8.5.1), and so does the server's domain, which has no storage;
//   - a query with no child element, or a child with no namespace:
//     <not-acceptable/>, type modify (§2.3 MUST);
//   - a child in a reserved namespace — jabber:client, jabber:server, or
//     jabber:iq:private itself, which is also what a child without its
//     own xmlns inherits: <not-acceptable/>, type modify (§2.3, optional
//     behaviour "commonly Not Acceptable");
//   - an element larger than MaxBytes: <not-acceptable/> with a text, type
//     modify, as XEP-0060 §7.1.3.4 answers an oversized item (Prosody and
//     ejabberd have no limit below the stanza size).
//
// A get with nothing stored returns the element as asked (Prosody,
// ejabberd); a get may ask for several elements at once (ejabberd), though
// §2.3 asks clients for one. Setting an element with no content and no
// attributes removes it (Prosody): a later get returns the same empty
// element either way.
package private

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strconv"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// NS is the XEP-0049 namespace and disco feature.
const NS = "jabber:iq:private"

// DefaultMaxBytes is the largest element stored when Service.MaxBytes is 0.
const DefaultMaxBytes = 64 << 10

// reserved are the namespaces no element may be stored in.
var reserved = map[string]bool{
	"jabber:client": true,
	"jabber:server": true,
	NS:              true,
}

// Key is the storage.Documents key of the element {space}local.
func Key(space, local string) string { return storage.PrivateKey(space, local) }

// Service stores and serves private XML.
type Service struct {
	Store storage.Documents
	// MaxBytes caps the size of one stored element; 0 means
	// DefaultMaxBytes.
	MaxBytes int
}

// Register adds the private storage handler to m. It is registered for
// other accounts too, so that they are refused with <forbidden/>.
func (s *Service) Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	m.HandleForAccounts(NS, "query", s.handle)
}

// element is one child of the query.
type element struct {
	name xml.Name
	raw  []byte
	// empty: no attributes other than namespace declarations, and
	// nothing inside but whitespace.
	empty bool
}

func (s *Service) handle(ctx context.Context, req dispatch.Request) ([]byte, error) {
	if req.ForServer() {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	user := req.Stanza.From.Bare()
	if !req.To.Equal(user) {
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	els, err := children(req.Payload)
	if err != nil {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if len(els) == 0 {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: "the query must contain an element in its own namespace"}
	}
	max := s.maxBytes()
	for _, e := range els {
		switch {
		case e.name.Space == "":
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: "the stored element needs a namespace"}
		case reserved[e.name.Space]:
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: "the namespace " + e.name.Space + " is reserved"}
		case req.Set() && len(e.raw) > max:
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: "the element is larger than " + strconv.Itoa(max) + " bytes"}
		case req.Set() && !stanza.SelfContained(e.raw):
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: "the element uses a namespace prefix it does not declare"}
		}
	}
	host, username := user.Domainpart(), user.Localpart()
	if req.Set() {
		for _, e := range els {
			key := Key(e.name.Space, e.name.Local)
			if e.empty {
				err = s.Store.DeleteDocument(ctx, host, username, key)
			} else {
				err = s.Store.PutDocument(ctx, host, username, key, bytes.Clone(e.raw))
			}
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + NS + "'>")
	for _, e := range els {
		doc, err := s.Store.Document(ctx, host, username, Key(e.name.Space, e.name.Local))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// Nothing stored: the element as asked.
			b.Write(e.raw)
		case err != nil:
			return nil, err
		default:
			b.Write(doc)
		}
	}
	b.WriteString("</query>")
	return b.Bytes(), nil
}

func (s *Service) maxBytes() int {
	if s.MaxBytes > 0 {
		return s.MaxBytes
	}
	return DefaultMaxBytes
}

// children returns the child elements of the query element raw, with their
// namespaces resolved.
func children(raw []byte) ([]element, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var els []element
	depth := 0
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			return els, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 {
				continue
			}
			empty := true
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && a.Name.Local != "xmlns" {
					empty = false
				}
			}
			// Read the element's content to its end.
			for inner := 1; inner > 0; {
				tok, err := d.Token()
				if err != nil {
					return nil, err
				}
				switch t := tok.(type) {
				case xml.StartElement:
					inner++
					empty = false
				case xml.EndElement:
					inner--
				case xml.CharData:
					if len(bytes.TrimSpace(t)) > 0 {
						empty = false
					}
				}
			}
			depth--
			els = append(els, element{name: t.Name, raw: raw[off:d.InputOffset()], empty: empty})
		case xml.EndElement:
			depth--
		}
	}
}

// Module is XEP-0049 as a module.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "private" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	(&Service{Store: env.Store}).Register(env.IQ)
	return nil
}
