package mam

import (
	"testing"

	"mellium.im/xmpp/jid"
)

func TestJIDStrings(t *testing.T) {
	for _, s := range []string{
		"romeo@example.net/orchard",
		"romeo@example.net",
		"example.net",
		"example.net/service",
		"romeo@example.net/a/b@c",
		"juliet@example.org/",
	} {
		j, err := jid.Parse(s)
		if err != nil {
			continue // not a JID (an empty resourcepart)
		}
		if got, want := bareString(j), j.Bare().String(); got != want {
			t.Errorf("bareString(%s) = %q, want %q", s, got, want)
		}
		if got, want := domainOf(bareString(j)), j.Domainpart(); got != want {
			t.Errorf("domainOf(%s) = %q, want %q", s, got, want)
		}
		bare, res := splitJID(j)
		if bare != j.Bare().String() || res != j.Resourcepart() {
			t.Errorf("splitJID(%s) = %q, %q, want %q, %q", s, bare, res, j.Bare().String(), j.Resourcepart())
		}
	}
}
