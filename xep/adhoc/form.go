package adhoc

import (
	"bytes"
	"strings"

	"github.com/starling-xmpp/starling/stanza"
)

// NSData is the data forms namespace (XEP-0004).
const NSData = "jabber:x:data"

// Form is a data form (XEP-0004) of type "form" that a stage of a command
// asks the requester to fill in, or of type "result" that a completed
// command returns.
type Form struct {
	Title, Instructions string
	Fields              []Field
}

// Field is one field of a Form (XEP-0004 §3.2).
type Field struct {
	Var, Type, Label string
	Required         bool
	Values           []string
	Options          []Option
}

// Option is one choice of a list field (XEP-0004 §3.3).
type Option struct {
	Label, Value string
}

// write writes f as <x xmlns='jabber:x:data' type='typ'/>, each field
// with what it holds in values (a submitted value replaces the field's
// own, so that a form shown again keeps what was filled in).
func (f *Form) write(b *bytes.Buffer, typ string, values Values) {
	b.WriteString("<x xmlns='" + NSData + "' type='" + typ + "'>")
	element(b, "title", f.Title)
	element(b, "instructions", f.Instructions)
	for _, fd := range f.Fields {
		b.WriteString("<field")
		attr(b, "var", fd.Var)
		attr(b, "type", fd.Type)
		attr(b, "label", fd.Label)
		b.WriteString(">")
		if fd.Required {
			b.WriteString("<required/>")
		}
		vs := fd.Values
		if v, ok := values[fd.Var]; ok && fd.Type != "hidden" && fd.Type != "fixed" {
			vs = v
		}
		for _, v := range vs {
			element(b, "value", v)
		}
		for _, o := range fd.Options {
			b.WriteString("<option")
			attr(b, "label", o.Label)
			b.WriteString("><value>")
			stanza.EscapeAttr(b, o.Value)
			b.WriteString("</value></option>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
}

// element writes <name>text</name>, unless text is empty.
func element(b *bytes.Buffer, name, text string) {
	if text == "" {
		return
	}
	b.WriteString("<" + name + ">")
	stanza.EscapeAttr(b, text)
	b.WriteString("</" + name + ">")
}

// attr writes name='value', unless value is empty.
func attr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(" " + name + "='")
	stanza.EscapeAttr(b, value)
	b.WriteString("'")
}

// Values are the values of a submitted form, by field var.
type Values map[string][]string

// Get returns the first value of field v, trimmed, or "".
func (v Values) Get(name string) string {
	if vs := v[name]; len(vs) > 0 {
		return strings.TrimSpace(vs[0])
	}
	return ""
}

// List returns the non-empty values of field v, trimmed: a jid-multi or
// text-multi field, where clients send empty lines as empty values.
func (v Values) List(name string) []string {
	var out []string
	for _, s := range v[name] {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// submitted is a data form in a request.
type submitted struct {
	Type   string `xml:"type,attr"`
	Fields []struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	} `xml:"field"`
}

// values returns the fields of a submitted form.
func (s *submitted) values() Values {
	v := Values{}
	for _, f := range s.Fields {
		if f.Var != "" {
			v[f.Var] = f.Values
		}
	}
	return v
}
