package caps

import (
	"errors"
	"testing"
)

// §5.2: the simple example.
const simple = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`

// §5.3: the complex example (identities in two languages, a form).
const complex = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'>
      <value>urn:xmpp:dataforms:softwareinfo</value>
    </field>
    <field var='ip_version'>
      <value>ipv4</value>
      <value>ipv6</value>
    </field>
    <field var='os'>
      <value>Mac</value>
    </field>
    <field var='os_version'>
      <value>10.5.1</value>
    </field>
    <field var='software'>
      <value>Psi</value>
    </field>
    <field var='software_version'>
      <value>0.11</value>
    </field>
  </x>
</query>`

func mustParse(t *testing.T, raw string) Info {
	t.Helper()
	info, err := ParseInfo([]byte(raw))
	if err != nil {
		t.Fatalf("ParseInfo: %v", err)
	}
	return info
}

func TestXEPExamples(t *testing.T) {
	for _, tc := range []struct {
		name, raw, s, ver string
	}{
		{"§5.2 simple", simple,
			"client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<",
			"QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"§5.3 complex", complex,
			"client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<",
			"q07IKJEyjvHSyhy//CH0CxmKi8w="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := mustParse(t, tc.raw)
			s, err := VerString(info)
			if err != nil || s != tc.s {
				t.Errorf("S = %q, %v\nwant %q", s, err, tc.s)
			}
			ver, err := Ver(info, "sha-1")
			if err != nil || ver != tc.ver {
				t.Errorf("ver = %q, %v; want %q", ver, err, tc.ver)
			}
		})
	}
}

func TestOtherHashes(t *testing.T) {
	info := mustParse(t, simple)
	seen := map[string]bool{}
	for _, h := range []string{"sha-1", "sha-224", "sha-256", "sha-384", "sha-512", "md5"} {
		if !Supported(h) {
			t.Errorf("%s not supported", h)
		}
		ver, err := Ver(info, h)
		if err != nil || ver == "" || seen[ver] {
			t.Errorf("%s: %q, %v", h, ver, err)
		}
		seen[ver] = true
	}
	// printf %s "$S" | openssl dgst -sha256 -binary | base64, with S of §5.2.
	if ver, _ := Ver(info, "sha-256"); ver != "Wr6IGEKhx6b9627gBmi/cCmpxXBc/GYq5zWuYfWGWoc=" {
		t.Errorf("sha-256 ver = %q", ver)
	}
	if _, err := Ver(info, "sha3-256x"); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("unknown hash: %v", err)
	}
}

func TestIllFormedAndIgnored(t *testing.T) {
	base := simple[:len(simple)-len("</query>")]
	for _, tc := range []struct {
		name, extra string
		err         error
		sameAsBase  bool
	}{
		{"duplicate identity", `<identity category='client' name='Exodus 0.9.1' type='pc'/>`, ErrIllFormed, false},
		{"duplicate feature", `<feature var='http://jabber.org/protocol/muc'/>`, ErrIllFormed, false},
		{"same identity but its name", `<identity category='client' name='Other' type='pc'/>`, nil, false},
		{"two forms with one FORM_TYPE",
			`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>` +
				`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field><field var='f'><value>1</value></field></x>`,
			ErrIllFormed, false},
		{"FORM_TYPE with different values",
			`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value><value>urn:b</value></field></x>`,
			ErrIllFormed, false},
		{"form without FORM_TYPE: left out",
			`<x xmlns='jabber:x:data' type='result'><field var='os'><value>Mac</value></field></x>`, nil, true},
		{"FORM_TYPE not hidden: left out (§5.4 step 3.6)",
			`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:a</value></field><field var='os'><value>Mac</value></field></x>`, nil, true},
		{"form in another namespace: not a form",
			`<x xmlns='urn:other'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := mustParse(t, base+tc.extra+"</query>")
			ver, err := Ver(info, "sha-1")
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (ver == "QgayPKawpkPSDYmwT/WM94uAlu0=") != tc.sameAsBase {
				t.Errorf("ver = %q: same as without it: %v, want %v", ver, !tc.sameAsBase, tc.sameAsBase)
			}
		})
	}
}

func TestFormSorting(t *testing.T) {
	// Forms by FORM_TYPE, fields by var, values by octet; order in the
	// element does not matter.
	a := mustParse(t, `<query xmlns='http://jabber.org/protocol/disco#info'>
<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:b</value></field><field var='z'><value>2</value><value>1</value></field><field var='a'><value>x</value></field></x>
<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:a</value></field></x>
</query>`)
	s, err := VerString(a)
	if want := "urn:a<urn:b<a<x<z<1<2<"; err != nil || s != want {
		t.Errorf("S = %q, %v; want %q", s, err, want)
	}
}
