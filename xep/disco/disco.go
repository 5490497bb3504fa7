// Package disco answers service discovery for the server and for accounts
// (XEP-0030 §3 info, §4 items). The feature list is whatever the modules
// registered on the dispatch.Mux.
package disco

import (
	"bytes"
	"context"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
)

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Register adds disco#info and disco#items to m. The server's identity is
// server/im (XEP-0030 §3.1, registry category "server"); an account's own
// bare JID answers as account/registered.
func Register(m *dispatch.Mux) {
	m.AddFeatures(NSInfo, NSItems)
	m.Handle(NSInfo, "query", func(_ context.Context, req dispatch.Request) ([]byte, error) {
		if req.Set() {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
		}
		if node := queryNode(req.Payload); node != "" {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		var b bytes.Buffer
		b.WriteString("<query xmlns='" + NSInfo + "'>")
		if req.ForServer() {
			b.WriteString("<identity category='server' type='im' name='Starling'/>")
			for _, f := range m.Features() {
				b.WriteString("<feature var='")
				stanza.EscapeAttr(&b, f)
				b.WriteString("'/>")
			}
		} else {
			b.WriteString("<identity category='account' type='registered'/>")
			b.WriteString("<feature var='" + NSInfo + "'/>")
			b.WriteString("<feature var='" + NSItems + "'/>")
		}
		b.WriteString("</query>")
		return b.Bytes(), nil
	})
	m.Handle(NSItems, "query", func(_ context.Context, req dispatch.Request) ([]byte, error) {
		if req.Set() {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
		}
		if node := queryNode(req.Payload); node != "" {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		return []byte("<query xmlns='" + NSItems + "'/>"), nil
	})
}

// queryNode returns the 'node' attribute of a disco query.
func queryNode(payload []byte) string {
	var q struct {
		Node string `xml:"node,attr"`
	}
	if err := stanza.Decode(payload, &q); err != nil {
		return ""
	}
	return q.Node
}
