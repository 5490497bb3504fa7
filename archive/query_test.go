package archive

import (
	"bytes"
	"encoding/xml"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

func TestParseQuery(t *testing.T) {
	form := func(fields string) string {
		return `<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` + fields + `</x></query>`
	}
	for _, tt := range []struct {
		ns, query string
		err       string // condition, "" for none
		check     func(r Request) bool
	}{
		{NS2, form(`<field var='with'><value>romeo@example.net/orchard</value></field>`), "", func(r Request) bool {
			return r.Q.With == "romeo@example.net" && r.Q.WithResource == "orchard" && r.Max == DefaultPageSize
		}},
		{NS2, form(`<field var='start'><value>2010-06-07T00:00:00Z</value></field><field var='end'><value>2010-07-07T13:23:54.123+02:00</value></field>`), "", func(r Request) bool {
			return r.Q.Start.Equal(time.Date(2010, 6, 7, 0, 0, 0, 0, time.UTC)) && r.Q.End.Equal(time.Date(2010, 7, 7, 11, 23, 54, 123e6, time.UTC))
		}},
		{NS2, form(`<field var='after-id'><value>17</value></field><field var='ids'><value>5</value><value>x</value></field>`), "", func(r Request) bool {
			return r.Q.AfterID == 17 && slices.Equal(r.Q.IDs, []int64{5})
		}},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>1000000</max><before/></set><flip-page/></query>`, "", func(r Request) bool {
			return r.Max == 250 && r.Q.Last && r.Q.BeforeID == 0 && r.Flip
		}},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>9</after><before>20</before></set></query>`, "", func(r Request) bool {
			return r.Max == 10 && r.Q.AfterID == 9 && r.Q.BeforeID == 20 && r.Q.Last
		}},
		{NS0, `<query xmlns='urn:xmpp:mam:0'><with>romeo@example.net</with><start>2010-06-07T00:00:00Z</start></query>`, "", func(r Request) bool {
			return r.Q.With == "romeo@example.net" && !r.Q.Start.IsZero()
		}},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>`, stanza.BadRequest, nil},
		{NS2, form(`<field var='start'><value>yesterday</value></field>`), stanza.BadRequest, nil},
		{NS2, form(`<field var='with'><value>@@</value></field>`), stanza.BadRequest, nil},
		{NS2, form(`<field var='withtext'><value>hi</value></field>`), stanza.BadRequest, nil},
		{NS1, `<query xmlns='urn:xmpp:mam:1'><x xmlns='jabber:x:data'><field var='after-id'><value>1</value></field></x></query>`, stanza.BadRequest, nil},
		{NS2, form(`<field var='after-id'><value>nope</value></field>`), stanza.ItemNotFound, nil},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></query>`, stanza.ItemNotFound, nil},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>`, stanza.BadRequest, nil},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set></query>`, stanza.FeatureNotImplemented, nil},
	} {
		var el QueryElement
		if err := xml.Unmarshal([]byte(tt.query), &el); err != nil {
			t.Fatal(err)
		}
		r, err := ParseQuery(tt.ns, &el, 250)
		var se *stanza.Error
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseQuery(%s): %v", tt.query, err)
		case tt.err != "" && (!errors.As(err, &se) || se.Condition != tt.err):
			t.Errorf("ParseQuery(%s): %v, want %s", tt.query, err, tt.err)
		case tt.check != nil && !tt.check(r):
			t.Errorf("ParseQuery(%s) = %+v", tt.query, r)
		}
	}
}

func TestResultMessage(t *testing.T) {
	m := storage.ArchivedMessage{ID: 1735787045123456, Stanza: []byte(`<message from='a@example.org/x' to='b@example.org'><body>&lt;hi</body></message>`)}
	got := ResultMessage(NS2, "b@example.org/y", "b@example.org", "q1", m)
	want := `<message to='b@example.org/y' from='b@example.org'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='1735787045123456'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-01-02T03:04:05.123456Z'/><message xmlns='jabber:client' from='a@example.org/x' to='b@example.org'><body>&lt;hi</body></message></forwarded></result></message>`
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("ResultMessage = %s\nwant %s", got, want)
	}
}
