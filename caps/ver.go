package caps

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"hash"
	"slices"
	"strings"
)

// Namespaces of XEP-0115, XEP-0030 and XEP-0004.
const (
	NS        = "http://jabber.org/protocol/caps"
	NSInfo    = "http://jabber.org/protocol/disco#info"
	nsData    = "jabber:x:data"
	formType  = "FORM_TYPE"
	xmlNSLang = "http://www.w3.org/XML/1998/namespace"
)

// Identity is a service discovery identity (XEP-0030 §3.1).
type Identity struct {
	Category, Type, Lang, Name string
}

// Field is one field of an extended information form (XEP-0128).
type Field struct {
	Var, Type string
	Values    []string
}

// Form is one extended information form (XEP-0128) of a disco#info result.
type Form struct {
	Fields []Field
}

// Info is a disco#info result (XEP-0030 §3.1): what a verification string
// is computed from.
type Info struct {
	Node       string
	Identities []Identity
	Features   []string
	Forms      []Form
}

// ErrIllFormed is returned for a disco#info result that XEP-0115 §5.4
// says to consider ill-formed: duplicate identities, duplicate features,
// two forms with the same FORM_TYPE, a FORM_TYPE with differing values.
var ErrIllFormed = errors.New("caps: ill-formed disco#info result (XEP-0115 §5.4)")

// ErrUnsupportedHash is returned for a 'hash' that names no hash function
// known here.
var ErrUnsupportedHash = errors.New("caps: unsupported hash function")

// hashes are the functions of the IANA Hash Function Textual Names
// registry that XEP-0115 §5.1 allows, by their names there. MD2 is not
// offered by the standard library, and nobody uses it.
var hashes = map[string]func() hash.Hash{
	"sha-1":   sha1.New,
	"sha-224": sha256.New224,
	"sha-256": sha256.New,
	"sha-384": sha512.New384,
	"sha-512": sha512.New,
	"md5":     md5.New,
}

// Supported reports whether the hash function named (as in the 'hash'
// attribute) can be checked.
func Supported(name string) bool {
	_, ok := hashes[name]
	return ok
}

// ParseInfo decodes a disco#info <query/> element.
func ParseInfo(raw []byte) (Info, error) {
	var q struct {
		XMLName    xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
		Node       string   `xml:"node,attr"`
		Identities []struct {
			Category string `xml:"category,attr"`
			Type     string `xml:"type,attr"`
			Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
			Name     string `xml:"name,attr"`
		} `xml:"identity"`
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
		Forms []struct {
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Type   string   `xml:"type,attr"`
				Values []string `xml:"value"`
			} `xml:"field"`
		} `xml:"jabber:x:data x"`
	}
	if err := xml.NewDecoder(bytes.NewReader(raw)).Decode(&q); err != nil {
		return Info{}, err
	}
	info := Info{Node: q.Node}
	for _, id := range q.Identities {
		info.Identities = append(info.Identities, Identity{id.Category, id.Type, id.Lang, id.Name})
	}
	for _, f := range q.Features {
		info.Features = append(info.Features, f.Var)
	}
	for _, x := range q.Forms {
		var form Form
		for _, f := range x.Fields {
			form.Fields = append(form.Fields, Field{Var: f.Var, Type: f.Type, Values: f.Values})
		}
		info.Forms = append(info.Forms, form)
	}
	return info, nil
}

// VerString returns the string S of XEP-0115 §5.1 for info, before it is
// hashed, or ErrIllFormed (§5.4, steps 3.3 to 3.5). Identities are sorted
// by category, type and xml:lang (name last, so that the order is total),
// features by octet, forms by their FORM_TYPE, their fields by 'var' and
// each field's values by octet; each item is followed by '<'. A form
// without a FORM_TYPE, or whose FORM_TYPE is not a hidden field (§5.4
// step 3.6), is left out; the FORM_TYPE field itself is not repeated
// among the fields. The text is character data as decoded (no escaping).
func VerString(info Info) (string, error) {
	ids := slices.Clone(info.Identities)
	slices.SortFunc(ids, func(a, b Identity) int {
		return cmpAll(a.Category, b.Category, a.Type, b.Type, a.Lang, b.Lang, a.Name, b.Name)
	})
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		return "", ErrIllFormed
	}
	features := slices.Clone(info.Features)
	slices.Sort(features)
	if len(slices.Compact(slices.Clone(features))) != len(features) {
		return "", ErrIllFormed
	}
	type typed struct {
		typ  string
		form Form
	}
	var forms []typed
	for _, f := range info.Forms {
		typ, hidden, ok, err := formTypeOf(f)
		if err != nil {
			return "", err
		}
		if !ok || !hidden {
			continue
		}
		forms = append(forms, typed{typ, f})
	}
	slices.SortStableFunc(forms, func(a, b typed) int { return strings.Compare(a.typ, b.typ) })
	for i := 1; i < len(forms); i++ {
		if forms[i].typ == forms[i-1].typ {
			return "", ErrIllFormed
		}
	}

	var s strings.Builder
	for _, id := range ids {
		s.WriteString(id.Category)
		s.WriteByte('/')
		s.WriteString(id.Type)
		s.WriteByte('/')
		s.WriteString(id.Lang)
		s.WriteByte('/')
		s.WriteString(id.Name)
		s.WriteByte('<')
	}
	for _, f := range features {
		s.WriteString(f)
		s.WriteByte('<')
	}
	for _, f := range forms {
		s.WriteString(f.typ)
		s.WriteByte('<')
		fields := slices.Clone(f.form.Fields)
		slices.SortStableFunc(fields, func(a, b Field) int { return strings.Compare(a.Var, b.Var) })
		for _, field := range fields {
			if field.Var == formType {
				continue
			}
			s.WriteString(field.Var)
			s.WriteByte('<')
			values := slices.Clone(field.Values)
			slices.Sort(values)
			for _, v := range values {
				s.WriteString(v)
				s.WriteByte('<')
			}
		}
	}
	return s.String(), nil
}

// formTypeOf returns the FORM_TYPE of a form, whether its field is
// hidden, and whether it has one; two FORM_TYPE fields, or one with
// values that differ, make the result ill-formed (§5.4 step 3.5).
func formTypeOf(f Form) (typ string, hidden, ok bool, err error) {
	for _, field := range f.Fields {
		if field.Var != formType {
			continue
		}
		if ok {
			return "", false, false, ErrIllFormed
		}
		if len(field.Values) == 0 {
			continue
		}
		for _, v := range field.Values[1:] {
			if v != field.Values[0] {
				return "", false, false, ErrIllFormed
			}
		}
		typ, hidden, ok = field.Values[0], field.Type == "hidden", true
	}
	return typ, hidden, ok, nil
}

func cmpAll(pairs ...string) int {
	for i := 0; i+1 < len(pairs); i += 2 {
		if c := strings.Compare(pairs[i], pairs[i+1]); c != 0 {
			return c
		}
	}
	return 0
}

// Ver returns the verification string of info with the hash function
// named hashName (§5.1 steps 8 and 9: S in UTF-8, hashed, in base64 with
// padding), or ErrIllFormed, or ErrUnsupportedHash.
func Ver(info Info, hashName string) (string, error) {
	newHash, ok := hashes[hashName]
	if !ok {
		return "", ErrUnsupportedHash
	}
	s, err := VerString(info)
	if err != nil {
		return "", err
	}
	h := newHash()
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}
