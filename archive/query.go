package archive

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// The namespaces, newest first: urn:xmpp:mam:2 is XEP-0313 0.6 and later.
const (
	NS2 = "urn:xmpp:mam:2"
	NS1 = "urn:xmpp:mam:1"
	NS0 = "urn:xmpp:mam:0"
)

// Namespaces of the elements queries and results are made of.
const (
	nsForward  = "urn:xmpp:forward:0"
	nsDelay    = "urn:xmpp:delay"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsDataForm = "jabber:x:data"
)

// Page sizes: the page a query without RSM <max/> gets, and the count
// limit of RSM <count/>.
const (
	DefaultPageSize = 50
	CountLimit      = 1000
)

// StampFormat is a XEP-0082 DateTime in UTC with microseconds, the
// archive's precision.
const StampFormat = "2006-01-02T15:04:05.000000Z"

// ErrItemUnknown answers a query naming an ID that is not one of the
// archive's (XEP-0313 §6.1.2, XEP-0059 §2.6).
var ErrItemUnknown = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "no such message in the archive"}

// QueryElement is <query/> in any of the namespaces.
type QueryElement struct {
	XMLName  xml.Name
	QueryID  string    `xml:"queryid,attr"`
	Node     string    `xml:"node,attr"`
	Form     *dataForm `xml:"jabber:x:data x"`
	Set      *rsmSet   `xml:"http://jabber.org/protocol/rsm set"`
	FlipPage *struct{} `xml:"flip-page"`
	// urn:xmpp:mam:0 as first published (0.2, 0.3): plain children.
	With  *string `xml:"with"`
	Start *string `xml:"start"`
	End   *string `xml:"end"`
}

type dataForm struct {
	Fields []struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	} `xml:"field"`
}

type rsmSet struct {
	Max    *string `xml:"max"`
	After  *string `xml:"after"`
	Before *string `xml:"before"`
	Index  *string `xml:"index"`
}

// Request is a parsed query.
type Request struct {
	Q     storage.ArchiveQuery
	Max   int  // the page size asked for, clamped; 0 for the count only
	Flip  bool // <flip-page/>
	RSMID bool // RSM after/before given (else form ids, or none)
}

func badRequest(text string) *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: text}
}

// ParseQuery reads a query of namespace ns (XEP-0313 §4.1, XEP-0059 §2),
// its page size clamped to maxPage. Its errors are *stanza.Error.
func ParseQuery(ns string, el *QueryElement, maxPage int) (Request, error) {
	var r Request
	fields := map[string][]string{}
	if el.Form != nil {
		for _, f := range el.Form.Fields {
			fields[f.Var] = f.Values
		}
	}
	for _, legacy := range []struct {
		name string
		v    *string
	}{{"with", el.With}, {"start", el.Start}, {"end", el.End}} {
		if legacy.v != nil && ns == NS0 && fields[legacy.name] == nil {
			fields[legacy.name] = []string{*legacy.v}
		}
	}
	one := func(name string) (string, bool, error) {
		v, ok := fields[name]
		switch {
		case !ok:
			return "", false, nil
		case len(v) != 1 || strings.TrimSpace(v[0]) == "":
			return "", false, badRequest("field " + name + " needs one value")
		}
		return strings.TrimSpace(v[0]), true, nil
	}
	for name, values := range fields {
		switch name {
		case "FORM_TYPE":
			if len(values) != 1 || strings.TrimSpace(values[0]) != ns {
				return r, badRequest("FORM_TYPE must be " + ns)
			}
		case "with", "start", "end":
		case "before-id", "after-id", "ids":
			if ns != NS2 {
				return r, badRequest("unknown field " + name)
			}
		default:
			return r, badRequest("unknown field " + name)
		}
	}
	if v, ok, err := one("with"); err != nil {
		return r, err
	} else if ok {
		j, err := jid.Parse(v)
		if err != nil {
			return r, badRequest("with is not a JID")
		}
		r.Q.With, r.Q.WithResource = j.Bare().String(), j.Resourcepart()
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"start", &r.Q.Start}, {"end", &r.Q.End}} {
		v, ok, err := one(t.name)
		if err != nil {
			return r, err
		}
		if ok {
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return r, badRequest(t.name + " is not a XEP-0082 DateTime")
			}
			*t.dst = at
		}
	}
	for _, b := range []struct {
		name string
		dst  *int64
	}{{"after-id", &r.Q.AfterID}, {"before-id", &r.Q.BeforeID}} {
		v, ok, err := one(b.name)
		if err != nil {
			return r, err
		}
		if ok {
			if *b.dst = ParseID(v); *b.dst == 0 {
				return r, ErrItemUnknown
			}
		}
	}
	if values, ok := fields["ids"]; ok {
		r.Q.IDs = []int64{}
		for _, v := range values {
			if id := ParseID(strings.TrimSpace(v)); id != 0 {
				r.Q.IDs = append(r.Q.IDs, id)
			}
		}
	}

	r.Max = min(DefaultPageSize, maxPage)
	if set := el.Set; set != nil {
		if set.Max != nil {
			n, err := strconv.Atoi(strings.TrimSpace(*set.Max))
			if err != nil || n < 0 {
				return r, badRequest("RSM max must be a number, 0 or more")
			}
			r.Max = min(n, maxPage)
		}
		if set.Index != nil && strings.TrimSpace(*set.Index) != "0" {
			return r, &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented, Text: "RSM index is not supported; page by after and before"}
		}
		if set.After != nil {
			v := strings.TrimSpace(*set.After)
			id := ParseID(v)
			if id == 0 {
				return r, ErrItemUnknown
			}
			r.Q.AfterID = max(r.Q.AfterID, id)
			r.RSMID = true
		}
		if set.Before != nil {
			r.Q.Last = true
			if v := strings.TrimSpace(*set.Before); v != "" {
				id := ParseID(v)
				if id == 0 {
					return r, ErrItemUnknown
				}
				if r.Q.BeforeID == 0 || id < r.Q.BeforeID {
					r.Q.BeforeID = id
				}
				r.RSMID = true
			}
		}
	}
	r.Flip = el.FlipPage != nil && ns == NS2
	return r, nil
}

// ParseID returns the archive ID written v; 0 if v is not one.
func ParseID(v string) int64 {
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0
	}
	return id
}

// Fit returns the longest run of msgs whose stanzas take at most limit
// bytes (at least one message), from the end when last; cut reports
// whether some were left out.
func Fit(msgs []storage.ArchivedMessage, limit int, last bool) ([]storage.ArchivedMessage, bool) {
	total := 0
	for i := range msgs {
		j := i
		if last {
			j = len(msgs) - 1 - i
		}
		total += len(msgs[j].Stanza) + 256
		if total > limit && i > 0 {
			if last {
				return msgs[j+1:], true
			}
			return msgs[:j], true
		}
	}
	return msgs, false
}

// ResultMessage wraps m for the querying resource to (§4.2); from is the
// archive's JID: the account, or a room.
func ResultMessage(ns string, to, from, queryID string, m storage.ArchivedMessage) []byte {
	var b bytes.Buffer
	b.Grow(len(m.Stanza) + 320)
	b.WriteString("<message to='")
	stanza.EscapeAttr(&b, to)
	b.WriteString("' from='")
	stanza.EscapeAttr(&b, from)
	b.WriteString("'><result xmlns='" + ns + "'")
	if queryID != "" {
		b.WriteString(" queryid='")
		stanza.EscapeAttr(&b, queryID)
		b.WriteString("'")
	}
	b.WriteString(" id='")
	b.WriteString(strconv.FormatInt(m.ID, 10))
	b.WriteString("'><forwarded xmlns='" + nsForward + "'><delay xmlns='" + nsDelay + "' stamp='")
	b.WriteString(m.Time().Format(StampFormat))
	b.WriteString("'/>")
	b.Write(stanza.InClientNS(m.Stanza))
	b.WriteString("</forwarded></result></message>")
	return b.Bytes()
}

// Fin is the <fin/> of a page (§4.2; XEP-0059 §2.6: first and last in
// the order the results were sent, count when counted).
func Fin(ns, queryID string, msgs []storage.ArchivedMessage, page storage.ArchivePage) []byte {
	var b bytes.Buffer
	b.WriteString("<fin xmlns='" + ns + "'")
	if queryID != "" && ns != NS2 {
		b.WriteString(" queryid='")
		stanza.EscapeAttr(&b, queryID)
		b.WriteString("'")
	}
	if page.Complete {
		b.WriteString(" complete='true'")
	}
	b.WriteString("><set xmlns='" + nsRSM + "'>")
	if len(msgs) > 0 {
		b.WriteString("<first>" + strconv.FormatInt(msgs[0].ID, 10) + "</first>")
		b.WriteString("<last>" + strconv.FormatInt(msgs[len(msgs)-1].ID, 10) + "</last>")
	}
	if page.Count >= 0 {
		b.WriteString("<count>" + strconv.Itoa(page.Count) + "</count>")
	}
	b.WriteString("</set></fin>")
	return b.Bytes()
}

// FormFields is the answer to a form request (§4.1.5): the fields this
// namespace takes.
func FormFields(ns string) []byte {
	var b strings.Builder
	b.WriteString("<query xmlns='" + ns + "'><x xmlns='" + nsDataForm + "' type='form'>")
	b.WriteString("<field type='hidden' var='FORM_TYPE'><value>" + ns + "</value></field>")
	b.WriteString("<field type='jid-single' var='with'/><field type='text-single' var='start'/><field type='text-single' var='end'/>")
	if ns == NS2 {
		b.WriteString("<field type='text-single' var='before-id'/><field type='text-single' var='after-id'/>")
		b.WriteString("<field type='list-multi' var='ids'><validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate></field>")
	}
	b.WriteString("</x></query>")
	return []byte(b.String())
}
