package peercert

import (
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Object identifiers of the subjectAltName extension (RFC 5280
// §4.2.1.6), its otherName forms id-on-xmppAddr (RFC 6120 §13.7.1.4) and
// id-on-dnsSRV (RFC 4985 §2), and the commonName attribute.
var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	oidDNSSRV         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
	oidCommonName     = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// srvService is the SRV service of server-to-server streams (RFC 6120
// §3.2.1), the only one whose SRV-IDs name a server to a server.
const srvService = "_xmpp-server"

// Names returns the identities the leaf claims for an XMPP server, for
// error messages and the admin view: DNS-IDs, SRV-IDs for _xmpp-server,
// XmppAddrs naming a domain, and the CN only when the leaf has no DNS-ID,
// SRV-ID (of any service), URI-ID or XmppAddr (RFC 6125 §6.4.4).
func Names(leaf *x509.Certificate) []string {
	if leaf == nil {
		return nil
	}
	return identities(leaf).list()
}

// ids are the identities a leaf presents (RFC 6125 §6.3), as presented.
type ids struct {
	dns  []string // DNS-IDs
	srv  []string // SRV-IDs for _xmpp-server, whole ("_xmpp-server.example.org")
	xmpp []string // XmppAddrs that are a domain, not a JID with a localpart or resource
	cn   string   // the CN-ID, when the leaf has no identifier of the types above nor a URI-ID
}

func identities(leaf *x509.Certificate) ids {
	var out ids
	out.dns = leaf.DNSNames
	xmpp, srv, anyXmpp, anySRV := otherNames(leaf)
	for _, s := range srv {
		if service, _, ok := strings.Cut(s, "."); ok && strings.EqualFold(service, srvService) {
			out.srv = append(out.srv, s)
		}
	}
	for _, x := range xmpp {
		if !strings.ContainsAny(x, "@/") {
			out.xmpp = append(out.xmpp, x)
		}
	}
	if len(leaf.DNSNames) == 0 && len(leaf.URIs) == 0 && !anyXmpp && !anySRV {
		out.cn = commonName(leaf)
	}
	return out
}

// list returns the identities in one list, printable ones only, each
// once.
func (ids ids) list() []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && printable(n) && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, group := range [][]string{ids.dns, ids.srv, ids.xmpp, {ids.cn}} {
		for _, n := range group {
			add(n)
		}
	}
	return names
}

// match reports whether ref (normalised by normReference) is among the
// identities: DNS-IDs, the domain of SRV-IDs and the CN-ID by the rules
// of DNS domain names with wildcards (RFC 6125 §6.4, §6.5.1), XmppAddrs
// exactly (RFC 6120 §13.7.1.4 has no wildcards in them).
func (ids ids) match(ref string) bool {
	for _, p := range ids.dns {
		if matchPattern(p, ref) {
			return true
		}
	}
	for _, s := range ids.srv {
		if _, domain, _ := strings.Cut(s, "."); matchPattern(domain, ref) {
			return true
		}
	}
	for _, x := range ids.xmpp {
		if d, ok := normDomain(x); ok && d == ref {
			return true
		}
	}
	return ids.cn != "" && matchPattern(ids.cn, ref)
}

// matchPattern compares a presented DNS domain name with ref. A wildcard
// is accepted only as the entire left-most label, and it stands for
// exactly one label (RFC 6125 §6.4.3): "*.example" matches "a.example",
// not "a.b.example" nor "example". A '*' anywhere else matches nothing.
func matchPattern(presented, ref string) bool {
	rest, wild := strings.CutPrefix(presented, "*.")
	d, ok := normDomain(rest)
	if !ok || strings.Contains(d, "*") {
		return false
	}
	if !wild {
		return d == ref
	}
	label, parent, ok := strings.Cut(ref, ".")
	return ok && label != "" && parent == d
}

// normReference normalises the reference identifier (RFC 6125 §6.2.1):
// the domain as normDomain does, refused if it is not a domain name.
func normReference(domain string) (string, bool) {
	d, ok := normDomain(domain)
	if !ok || strings.ContainsAny(d, "* ") || !printable(d) || strings.HasPrefix(d, ".") ||
		strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return "", false
	}
	return d, true
}

// normDomain maps a domain name to the form compared: lowercase, A-labels
// (RFC 6125 §6.4.2), no trailing dot. ASCII names are only lowercased, so
// that names idna would refuse still compare as DNS does.
func normDomain(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", false
	}
	if isASCII(s) {
		return strings.ToLower(s), true
	}
	a, err := idna.Lookup.ToASCII(s)
	if err != nil || a == "" {
		return "", false
	}
	return a, true
}

// commonName returns the leaf's CN-ID: the subject's common name when
// there is exactly one (RFC 6125 §1.8), else "".
func commonName(leaf *x509.Certificate) string {
	var cn string
	n := 0
	for _, atv := range leaf.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			n++
			cn, _ = atv.Value.(string)
		}
	}
	if n != 1 {
		return ""
	}
	return cn
}

// otherNames reads the XmppAddrs (UTF8String) and SRVNames (IA5String) of
// the leaf's subjectAltName extension, which crypto/x509 does not expose.
// anyXmpp and anySRV report whether an otherName of either type is
// present at all, even one whose value is malformed: it still keeps the
// CN out (RFC 6125 §6.4.4). A malformed extension yields what was read
// before the fault.
func otherNames(leaf *x509.Certificate) (xmpp, srv []string, anyXmpp, anySRV bool) {
	var value []byte
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			value = ext.Value
			break
		}
	}
	if value == nil {
		return
	}
	// GeneralNames ::= SEQUENCE OF GeneralName
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(value, &seq); err != nil || len(rest) != 0 ||
		seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return
	}
	for data := seq.Bytes; len(data) > 0; {
		var gn asn1.RawValue
		var err error
		if data, err = asn1.Unmarshal(data, &gn); err != nil {
			return
		}
		// otherName [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
		if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 || !gn.IsCompound {
			continue
		}
		var oid asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(gn.Bytes, &oid)
		if err != nil {
			continue
		}
		isXmpp, isSRV := oid.Equal(oidXmppAddr), oid.Equal(oidDNSSRV)
		if !isXmpp && !isSRV {
			continue
		}
		anyXmpp = anyXmpp || isXmpp
		anySRV = anySRV || isSRV
		var explicit, v asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &explicit); err != nil || len(rest) != 0 ||
			explicit.Class != asn1.ClassContextSpecific || explicit.Tag != 0 || !explicit.IsCompound {
			continue
		}
		if rest, err = asn1.Unmarshal(explicit.Bytes, &v); err != nil || len(rest) != 0 ||
			v.Class != asn1.ClassUniversal || v.IsCompound {
			continue
		}
		switch {
		case isXmpp && v.Tag == asn1.TagUTF8String && utf8.Valid(v.Bytes):
			xmpp = append(xmpp, string(v.Bytes))
		case isSRV && v.Tag == asn1.TagIA5String && isASCII(string(v.Bytes)):
			srv = append(srv, string(v.Bytes))
		}
	}
	return
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// printable reports whether s has no control characters, so that it can
// go into a log line as it is.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return false
		}
	}
	return true
}
