package stanza

import "testing"

func TestSelfContained(t *testing.T) {
	tests := []struct {
		raw  string
		want bool
	}{
		{`<vCard xmlns='vcard-temp'/>`, true},
		{`<vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><TYPE>image/png</TYPE></PHOTO></vCard>`, true},
		{`<v:vCard xmlns:v='vcard-temp'><v:FN>A</v:FN></v:vCard>`, true},
		{`<vCard xmlns='vcard-temp' xml:lang='en'><x:a xmlns:x='urn:x' x:b='1'/></vCard>`, true},
		{"\n  <a xmlns='x'><b/><p:c xmlns:p='y'/></a>\n", true},
		{`<v:vCard><v:FN>A</v:FN></v:vCard>`, false},
		{`<vCard xmlns='vcard-temp'><x:a/></vCard>`, false},
		{`<vCard xmlns='vcard-temp'><a x:b='1'/></vCard>`, false},
		{`<v:vCard xmlns:v='vcard-temp'><FN>A</FN></v:vCard>`, false}, // FN in the outer default namespace
		{`<vCard/>`, false},
		{`<vCard xmlns='vcard-temp'>`, false},
		{``, false},
		{`text`, false},
		{`<a xmlns='x'/><b xmlns='x'/>`, false}, // two elements
		{`<a xmlns='x'/>trailing`, false},
	}
	for _, tt := range tests {
		if got := SelfContained([]byte(tt.raw)); got != tt.want {
			t.Errorf("SelfContained(%q) = %v, want %v", tt.raw, got, tt.want)
		}
	}
}
