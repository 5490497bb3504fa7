// Package disco answers service discovery for the server and for accounts
// (XEP-0030 §3 info, §4 items). The feature list is whatever the modules
// registered on the dispatch.Mux, and so are the extended information
// forms (XEP-0128) of the server's disco#info, such as its contact
// addresses (XEP-0157). It also computes the server's entity capabilities
// (XEP-0115): the verification string of its disco#info, forms included
// (§5.1, §5.4), advertised as a stream feature (§6.3), and answers
// disco#info for the caps node 'node#ver' with the same identity, features
// and forms (§6.2).
package disco

import (
	"bytes"
	"context"
	"slices"

	"github.com/starling-xmpp/starling/caps"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
)

// Namespaces of XEP-0030 and XEP-0115.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	NSCaps  = "http://jabber.org/protocol/caps"
)

// CapsNode identifies the software in the server's caps (XEP-0115 §4: a URL
// about the software).
const CapsNode = "https://starling.im"

// Identity is a service discovery identity (XEP-0030 §3.1).
type Identity = dispatch.Identity

// Form is an extended information form (XEP-0128) of the server's
// disco#info.
type Form = dispatch.Form

// Ver computes the XEP-0115 verification string (§5.1, with SHA-1: the
// 'hash' is "sha-1") for an entity with these identities, features and
// extended information forms, by caps.Ver; duplicate identities and
// features, which §5.4 calls ill-formed, are counted once, and a form
// whose FORM_TYPE an earlier one has is left out.
func Ver(identities []Identity, features []string, forms []Form) string {
	info := caps.Info{Features: slices.Compact(slices.Sorted(slices.Values(features)))}
	for _, id := range identities {
		c := caps.Identity{Category: id.Category, Type: id.Type, Lang: id.Lang, Name: id.Name}
		if !slices.Contains(info.Identities, c) {
			info.Identities = append(info.Identities, c)
		}
	}
	var types []string
	for _, f := range forms {
		if slices.Contains(types, f.Type) {
			continue
		}
		types = append(types, f.Type)
		c := caps.Form{Fields: []caps.Field{{Var: "FORM_TYPE", Type: "hidden", Values: []string{f.Type}}}}
		for _, field := range f.Fields {
			c.Fields = append(c.Fields, caps.Field{Var: field.Var, Type: field.Type, Values: field.Values})
		}
		info.Forms = append(info.Forms, c)
	}
	v, _ := caps.Ver(info, "sha-1") // no duplicates: never ill-formed
	return v
}

// ServerVer is the verification string of the server's disco#info on m.
func ServerVer(m *dispatch.Mux) string {
	return Ver(m.Identities(), m.Features(), m.ServerForms())
}

// Caps returns the <c/> element a server advertises in its stream features
// (XEP-0115 §6.3) for the features registered on m.
func Caps(m *dispatch.Mux) []byte {
	return []byte("<c xmlns='" + NSCaps + "' hash='sha-1' node='" + CapsNode + "' ver='" + ServerVer(m) + "'/>")
}

// Register adds disco#info and disco#items to m, for the server and for
// the user's own bare JID, listing the identities, features and items
// registered on m.
func Register(m *dispatch.Mux) {
	m.AddFeatures(NSInfo, NSItems)
	m.AddAccountFeatures(NSInfo, NSItems)
	m.Handle(NSInfo, "query", func(ctx context.Context, req dispatch.Request) ([]byte, error) {
		if req.Set() {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
		}
		node := queryNode(req.Payload)
		// XEP-0115 §6.2: the caps node of the server's current
		// verification string is the server's disco#info itself. The
		// forms are read once, so that the answer is the one hashed.
		var forms []Form
		if req.ForServer() {
			forms = m.ServerForms()
		}
		caps := req.ForServer() && node == CapsNode+"#"+Ver(m.Identities(), m.Features(), forms)
		ids, features := m.Identities(), m.Features()
		if !req.ForServer() {
			ids, features = m.AccountIdentities(), m.AccountFeatures()
		}
		if node != "" && !caps {
			// A module's node (XEP-0030 §3.2), such as an ad-hoc
			// command's: its own identities and features, no forms.
			var ok bool
			if ids, features, ok = m.NodeInfo(ctx, req, node); !ok {
				return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
			}
			forms = nil
		}
		var b bytes.Buffer
		b.WriteString("<query xmlns='" + NSInfo + "'")
		writeAttr(&b, "node", node)
		b.WriteString(">")
		for _, id := range ids {
			writeIdentity(&b, id)
		}
		for _, f := range features {
			b.WriteString("<feature var='")
			stanza.EscapeAttr(&b, f)
			b.WriteString("'/>")
		}
		for _, f := range forms {
			writeForm(&b, f)
		}
		b.WriteString("</query>")
		return b.Bytes(), nil
	})
	m.Handle(NSItems, "query", func(ctx context.Context, req dispatch.Request) ([]byte, error) {
		if req.Set() {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
		}
		var items []dispatch.Item
		node := queryNode(req.Payload)
		if node != "" {
			// A module's node (XEP-0030 §4.2), such as the list of
			// ad-hoc commands (XEP-0050 §2.2).
			var ok bool
			if items, ok = m.NodeItems(ctx, req, node); !ok {
				return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
			}
		} else if req.ForServer() {
			items = m.Items()
		}
		var b bytes.Buffer
		b.WriteString("<query xmlns='" + NSItems + "'")
		writeAttr(&b, "node", node)
		b.WriteString(">")
		for _, it := range items {
			b.WriteString("<item jid='")
			stanza.EscapeAttr(&b, it.JID)
			b.WriteString("'")
			writeAttr(&b, "node", it.Node)
			writeAttr(&b, "name", it.Name)
			b.WriteString("/>")
		}
		b.WriteString("</query>")
		return b.Bytes(), nil
	})
}

// writeIdentity writes <identity/> (XEP-0030 §3.1).
func writeIdentity(b *bytes.Buffer, id Identity) {
	b.WriteString("<identity")
	writeAttr(b, "category", id.Category)
	writeAttr(b, "type", id.Type)
	writeAttr(b, "xml:lang", id.Lang)
	writeAttr(b, "name", id.Name)
	b.WriteString("/>")
}

// writeForm writes an extended information form (XEP-0128 §2): a data
// form of type 'result' with its FORM_TYPE as a hidden field first.
func writeForm(b *bytes.Buffer, f Form) {
	b.WriteString("<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>")
	stanza.EscapeAttr(b, f.Type)
	b.WriteString("</value></field>")
	for _, field := range f.Fields {
		b.WriteString("<field")
		writeAttr(b, "var", field.Var)
		writeAttr(b, "type", field.Type)
		if len(field.Values) == 0 {
			b.WriteString("/>")
			continue
		}
		b.WriteString(">")
		for _, v := range field.Values {
			b.WriteString("<value>")
			stanza.EscapeAttr(b, v)
			b.WriteString("</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
}

// writeAttr writes name='value', unless value is empty.
func writeAttr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(" " + name + "='")
	stanza.EscapeAttr(b, value)
	b.WriteString("'")
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

// Module is XEP-0030 and the server's XEP-0115 capabilities as a module:
// it answers disco#info and disco#items, and offers the <c/> of whatever
// the modules registered as a stream feature. It cannot be turned off.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "disco" }

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	Register(env.IQ)
	env.AddStreamFeature(func() string { return string(Caps(env.IQ)) })
	return nil
}
