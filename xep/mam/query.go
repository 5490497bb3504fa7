package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Page sizes: the page a query without RSM <max/> gets, and the count
// limit of RSM <count/>.
const (
	defaultPageSize = 50
	countLimit      = 1000
)

// stampFormat is a XEP-0082 DateTime in UTC with microseconds, the
// archive's precision.
const stampFormat = "2006-01-02T15:04:05.000000Z"

var (
	errForbidden   = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only your own archive can be queried"}
	errNoArchive   = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	errItemUnknown = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "no such message in the archive"}
	errStorage     = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
)

// queryElement is <query/> in any of the namespaces.
type queryElement struct {
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

// request is a parsed query.
type request struct {
	q     storage.ArchiveQuery
	max   int  // the page size asked for, clamped; 0 for the count only
	flip  bool // <flip-page/>
	rsmID bool // RSM after/before given (else form ids, or none)
}

func badRequest(text string) *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: text}
}

// parseQuery reads a query of namespace ns (XEP-0313 §4.1, XEP-0059 §2).
func parseQuery(ns string, el *queryElement, maxPage int) (request, error) {
	var r request
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
		r.q.With, r.q.WithResource = j.Bare().String(), j.Resourcepart()
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"start", &r.q.Start}, {"end", &r.q.End}} {
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
	}{{"after-id", &r.q.AfterID}, {"before-id", &r.q.BeforeID}} {
		v, ok, err := one(b.name)
		if err != nil {
			return r, err
		}
		if ok {
			if *b.dst = parseID(v); *b.dst == 0 {
				return r, errItemUnknown
			}
		}
	}
	if values, ok := fields["ids"]; ok {
		r.q.IDs = []int64{}
		for _, v := range values {
			if id := parseID(strings.TrimSpace(v)); id != 0 {
				r.q.IDs = append(r.q.IDs, id)
			}
		}
	}

	r.max = min(defaultPageSize, maxPage)
	if set := el.Set; set != nil {
		if set.Max != nil {
			n, err := strconv.Atoi(strings.TrimSpace(*set.Max))
			if err != nil || n < 0 {
				return r, badRequest("RSM max must be a number, 0 or more")
			}
			r.max = min(n, maxPage)
		}
		if set.Index != nil && strings.TrimSpace(*set.Index) != "0" {
			return r, &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented, Text: "RSM index is not supported; page by after and before"}
		}
		if set.After != nil {
			v := strings.TrimSpace(*set.After)
			id := parseID(v)
			if id == 0 {
				return r, errItemUnknown
			}
			r.q.AfterID = max(r.q.AfterID, id)
			r.rsmID = true
		}
		if set.Before != nil {
			r.q.Last = true
			if v := strings.TrimSpace(*set.Before); v != "" {
				id := parseID(v)
				if id == 0 {
					return r, errItemUnknown
				}
				if r.q.BeforeID == 0 || id < r.q.BeforeID {
					r.q.BeforeID = id
				}
				r.rsmID = true
			}
		}
	}
	r.flip = el.FlipPage != nil && ns == NS2
	return r, nil
}

// parseID returns the archive ID written v; 0 if v is not one.
func parseID(v string) int64 {
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0
	}
	return id
}

// query answers a query of namespace ns: the form (IQ get, §4.1.5) or
// the results (IQ set).
func (s *service) query(ns string) dispatch.Handler {
	return func(ctx context.Context, req dispatch.Request) ([]byte, error) {
		if req.ForServer() {
			return nil, errNoArchive
		}
		if !req.To.Equal(req.Stanza.From.Bare()) {
			return nil, errForbidden
		}
		if !req.Set() {
			return formFields(ns), nil
		}
		var el queryElement
		if err := xml.Unmarshal(req.Payload, &el); err != nil {
			return nil, errBadRequest
		}
		if el.Node != "" {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "an account's archive has no nodes"}
		}
		account := req.To
		host := account.Domainpart()
		stanzas, bytesLimit := s.limits()
		maxPage := min(s.opts(host).MaxPageSize, max(stanzas/2, 1))
		r, err := parseQuery(ns, &el, maxPage)
		if err != nil {
			return nil, err
		}
		if err := s.writer.flush(ctx); err != nil {
			return nil, errStorage
		}
		q := r.q
		q.Max = max(r.max, 1)
		q.CountLimit = countLimit
		page, err := s.store.QueryArchive(ctx, host, account.Localpart(), q)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, errItemUnknown
		case err != nil:
			s.log.Error("archive query failed", "jid", account.String(), "err", err)
			return nil, errStorage
		}
		if r.max == 0 {
			page.Messages, page.Complete = nil, false
		}
		// What the session's queue takes at once: a page too big for it
		// is cut, at its start when paging backwards.
		msgs, cut := fit(page.Messages, bytesLimit/2, q.Last)
		if cut {
			page.Complete = false
		}
		if r.flip {
			for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
				msgs[i], msgs[j] = msgs[j], msgs[i]
			}
		}
		to, accountStr := req.Stanza.From, account.String()
		results := func() {
			for _, m := range msgs {
				s.router.DeliverTo(to, resultMessage(ns, to, accountStr, el.QueryID, m))
			}
		}
		fin := finElement(ns, el.QueryID, msgs, page)
		if ns == NS0 {
			// 0.2–0.4: the IQ result first, then the results and <fin/>
			// in a message.
			req.AfterReply(func() {
				results()
				var b bytes.Buffer
				b.WriteString("<message to='")
				stanza.EscapeAttr(&b, to.String())
				b.WriteString("' from='")
				stanza.EscapeAttr(&b, accountStr)
				b.WriteString("'>")
				b.Write(fin)
				b.WriteString("</message>")
				s.router.DeliverTo(to, b.Bytes())
			})
			return nil, nil
		}
		results()
		return fin, nil
	}
}

// fit returns the longest run of msgs whose stanzas take at most limit
// bytes (at least one message), from the end when last; cut reports
// whether some were left out.
func fit(msgs []storage.ArchivedMessage, limit int, last bool) ([]storage.ArchivedMessage, bool) {
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

// resultMessage wraps m for the querying resource to (§4.2).
func resultMessage(ns string, to interface{ String() string }, account, queryID string, m storage.ArchivedMessage) []byte {
	var b bytes.Buffer
	b.Grow(len(m.Stanza) + 320)
	b.WriteString("<message to='")
	stanza.EscapeAttr(&b, to.String())
	b.WriteString("' from='")
	stanza.EscapeAttr(&b, account)
	b.WriteString("'><result xmlns='" + ns + "'")
	if queryID != "" {
		b.WriteString(" queryid='")
		stanza.EscapeAttr(&b, queryID)
		b.WriteString("'")
	}
	b.WriteString(" id='")
	b.WriteString(strconv.FormatInt(m.ID, 10))
	b.WriteString("'><forwarded xmlns='" + nsForward + "'><delay xmlns='" + nsDelay + "' stamp='")
	b.WriteString(m.Time().Format(stampFormat))
	b.WriteString("'/>")
	b.Write(stanza.InClientNS(m.Stanza))
	b.WriteString("</forwarded></result></message>")
	return b.Bytes()
}

// finElement is the <fin/> of a page (§4.2; XEP-0059 §2.6: first and
// last in the order the results were sent, count when counted).
func finElement(ns, queryID string, msgs []storage.ArchivedMessage, page storage.ArchivePage) []byte {
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

// formFields is the answer to a form request (§4.1.5): the fields this
// namespace takes.
func formFields(ns string) []byte {
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

// handlePrefs answers a preferences get or set (XEP-0441 §3; XEP-0313
// §6 before 0.7) with the preferences in force.
func (s *service) handlePrefs(ns string) dispatch.Handler {
	return func(ctx context.Context, req dispatch.Request) ([]byte, error) {
		if req.ForServer() {
			return nil, errNoArchive
		}
		if !req.To.Equal(req.Stanza.From.Bare()) {
			return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
		}
		account := req.To
		accountStr := account.String()
		host := account.Domainpart()
		if req.Set() {
			p, err := parsePrefs(req.Payload)
			if err != nil {
				return nil, err
			}
			doc := appendPrefs(nil, NS2, p, "")
			if err := s.store.PutDocument(ctx, host, account.Localpart(), prefsKey, doc); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					return nil, errNoArchive
				}
				s.log.Error("storing archiving preferences failed", "jid", accountStr, "err", err)
				return nil, errStorage
			}
			s.prefs.put(accountStr, p)
			return appendPrefs(nil, ns, p, ""), nil
		}
		p, err := s.loadPrefs(ctx, account, accountStr)
		if err != nil {
			s.log.Error("reading archiving preferences failed", "jid", accountStr, "err", err)
			return nil, errStorage
		}
		return appendPrefs(nil, ns, p, s.opts(host).Default), nil
	}
}
