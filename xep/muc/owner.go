package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/stanza"
)

// roomIQ answers requests to a room's bare JID.
func (s *Service) roomIQ(ctx context.Context, r *room, st *stanza.Stanza) {
	name, payload, ok := st.Payload()
	if !ok {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	if r == nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
		return
	}
	get := st.Type == "get"
	switch {
	case get && name.Space == nsDiscoInfo && name.Local == "query" && queryNode(payload) == "":
		res, e := r.info(st.From.Bare())
		s.answer(ctx, st, res, e)
	case get && name.Space == nsDiscoInfo && name.Local == "query" && queryNode(payload) == "x-roomuser-item":
		res, e := r.reservedNick(st.From.Bare())
		s.answer(ctx, st, res, e)
	case name.Space == nsRegister && name.Local == "query":
		s.register(ctx, r, st, payload)
	case get && name.Space == nsDiscoItems && name.Local == "query":
		s.result(ctx, st, []byte("<query xmlns='"+nsDiscoItems+"'/>"))
	case get && name.Space == nsPing && name.Local == "ping":
		s.result(ctx, st, nil)
	case name.Space == NSOwner && name.Local == "query":
		s.owner(ctx, r, st, payload)
	case name.Space == NSAdmin && name.Local == "query":
		s.admin(ctx, r, st, payload)
	case name.Space == nsVCard && name.Local == "vCard":
		s.vcard(ctx, r, st, payload)
	case (name.Space == archive.NS2 || name.Space == archive.NS1) && name.Local == "query":
		s.mamQuery(ctx, r, st, name.Space, payload)
	case name.Space == nsModerate1 && name.Local == "moderate", name.Space == nsFasten && name.Local == "apply-to":
		s.moderate(ctx, r, st, payload)
	default:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
}

// answer sends res, or the error.
func (s *Service) answer(ctx context.Context, st *stanza.Stanza, res []byte, e *stanza.Error) {
	if e != nil {
		s.fail(ctx, st, e)
		return
	}
	s.result(ctx, st, res)
}

// info is the room's disco#info (§6.4) with muc#roominfo (§15.5.4).
func (r *room) info(asker jid.JID) ([]byte, *stanza.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locked && r.affiliationOf(asker) != affOwner {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	c := r.cfg
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + nsDiscoInfo + "'><identity category='conference' type='text' name='")
	name := c.Name
	if name == "" {
		name = r.jid.Localpart()
	}
	stanza.EscapeAttr(&b, name)
	b.WriteString("'/>")
	pick := func(on bool, yes, no string) string {
		if on {
			return yes
		}
		return no
	}
	for _, f := range []string{nsDiscoInfo, NS, NSOccupantID, nsPing, nsVCard, nsRegister,
		pick(c.Public, "muc_public", "muc_hidden"),
		pick(c.MembersOnly, "muc_membersonly", "muc_open"),
		pick(c.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(c.WhoisAnyone, "muc_nonanonymous", "muc_semianonymous"),
		pick(c.Password != "", "muc_passwordprotected", "muc_unsecured"),
		pick(c.Persistent, "muc_persistent", "muc_temporary"),
	} {
		b.WriteString("<feature var='" + f + "'/>")
	}
	if c.Persistent && c.Archive {
		for _, f := range []string{archive.NS2, archive.NS1, nsModerate0, nsModerate1} {
			b.WriteString("<feature var='" + f + "'/>")
		}
	}
	b.WriteString("<x xmlns='" + nsData + "' type='result'>")
	field(&b, "FORM_TYPE", "hidden", NS+"#roominfo")
	field(&b, "muc#roominfo_description", "", c.Description)
	field(&b, "muc#roominfo_occupants", "", strconv.Itoa(len(r.occupants)))
	field(&b, "muc#roominfo_subject", "", r.subject)
	field(&b, "muc#roomconfig_roomname", "", c.Name)
	if len(r.avatars) > 0 {
		field(&b, "muc#roominfo_avatarhash", "text-multi", r.avatars...) // XEP-0486 §3.3
	}
	b.WriteString("</x></query>")
	return b.Bytes(), nil
}

func field(b *bytes.Buffer, v, typ string, values ...string) {
	b.WriteString("<field var='" + v + "'")
	if typ != "" {
		b.WriteString(" type='" + typ + "'")
	}
	b.WriteString(">")
	for _, x := range values {
		b.WriteString("<value>" + stanza.Escape(x) + "</value>")
	}
	b.WriteString("</field>")
}

func boolValue(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// ownerXML is the muc#owner query (§10).
type ownerXML struct {
	Form *struct {
		Type   string `xml:"type,attr"`
		Fields []struct {
			Var    string   `xml:"var,attr"`
			Values []string `xml:"value"`
		} `xml:"field"`
	} `xml:"jabber:x:data x"`
	Destroy *struct {
		JID      string `xml:"jid,attr"`
		Password string `xml:"password"`
		Reason   string `xml:"reason"`
	} `xml:"destroy"`
}

// owner is §10: the configuration form (get, submit, cancel) and
// destroying the room, for its owners only.
func (s *Service) owner(ctx context.Context, r *room, st *stanza.Stanza, payload []byte) {
	var q ownerXML
	if xml.Unmarshal(payload, &q) != nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	r.mu.Lock()
	isOwner := r.affiliationOf(st.From.Bare()) == affOwner
	r.mu.Unlock()
	if !isOwner {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only owners may do this"}) // §10.1.2
		return
	}
	switch {
	case st.Type == "get" && q.Form == nil && q.Destroy == nil:
		r.mu.Lock()
		form := r.configForm(s.Options().MaxOccupants)
		r.mu.Unlock()
		s.result(ctx, st, form)
	case st.Type == "set" && q.Destroy != nil:
		s.result(ctx, st, nil)
		s.destroy(ctx, r, q.Destroy.JID, q.Destroy.Reason)
	case st.Type == "set" && q.Form != nil && q.Form.Type == "cancel":
		// §10.1.3: cancelling a new room's configuration destroys it.
		r.mu.Lock()
		locked := r.locked
		r.mu.Unlock()
		s.result(ctx, st, nil)
		if locked {
			s.destroy(ctx, r, "", "")
		}
	case st.Type == "set" && q.Form != nil && (q.Form.Type == "submit" || q.Form.Type == ""):
		values := make(map[string][]string)
		for _, f := range q.Form.Fields {
			values[f.Var] = f.Values
		}
		if ft, ok := values["FORM_TYPE"]; ok && (len(ft) != 1 || ft[0] != NS+"#roomconfig") {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "not a room configuration form"})
			return
		}
		r.mu.Lock()
		outs, e := r.configure(values, s.Options().MaxOccupants)
		gone := e == nil && !r.cfg.Persistent && len(r.occupants) == 0
		if gone {
			r.destroyed = true
		}
		sn := r.snapshot()
		defer r.handOff()()
		if e != nil {
			s.fail(ctx, st, e)
			return
		}
		s.persist(ctx, r, sn)
		if gone {
			s.forget(r)
		}
		s.result(ctx, st, nil)
		s.sendAll(ctx, outs)
	default:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
	}
}

// configForm is §10.2's form with the room's values.
func (r *room) configForm(max int) []byte {
	c := r.cfg
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + NSOwner + "'><x xmlns='" + nsData + "' type='form'><title>Configuration of " + stanza.Escape(r.jid.String()) + "</title>")
	field(&b, "FORM_TYPE", "hidden", NS+"#roomconfig")
	field(&b, "muc#roomconfig_roomname", "text-single", c.Name)
	field(&b, "muc#roomconfig_roomdesc", "text-single", c.Description)
	field(&b, "muc#roomconfig_persistentroom", "boolean", boolValue(c.Persistent))
	field(&b, "muc#roomconfig_publicroom", "boolean", boolValue(c.Public))
	field(&b, "muc#roomconfig_membersonly", "boolean", boolValue(c.MembersOnly))
	field(&b, "muc#roomconfig_moderatedroom", "boolean", boolValue(c.Moderated))
	field(&b, "muc#roomconfig_passwordprotectedroom", "boolean", boolValue(c.Password != ""))
	field(&b, "muc#roomconfig_roomsecret", "text-private", c.Password)
	b.WriteString("<field var='muc#roomconfig_whois' type='list-single'><value>" + map[bool]string{true: "anyone", false: "moderators"}[c.WhoisAnyone] +
		"</value><option><value>moderators</value></option><option><value>anyone</value></option></field>")
	b.WriteString("<field var='muc#roomconfig_maxusers' type='text-single'><value>" + strconv.Itoa(c.MaxUsers) + "</value></field>")
	field(&b, "muc#roomconfig_allowinvites", "boolean", boolValue(c.AllowInvites))
	b.WriteString("<field var='muc#roomconfig_allowpm' type='list-single'><value>" + c.AllowPM + "</value>")
	for _, v := range []string{"anyone", "participants", "moderators", "none"} {
		b.WriteString("<option><value>" + v + "</value></option>")
	}
	b.WriteString("</field>")
	field(&b, "muc#roomconfig_changesubject", "boolean", boolValue(c.ChangeSubject))
	field(&b, "muc#roomconfig_enablelogging", "boolean", boolValue(c.Archive))
	b.WriteString("</x></query>")
	return b.Bytes()
}

// configure applies a submitted form (§10.2): unknown fields are
// ignored, a bad value is not-acceptable and changes nothing. A new room
// is unlocked (§10.1.2); occupants are told of changes (status 104, 172
// and 173, §10.2.1).
func (r *room) configure(v map[string][]string, max int) ([]out, *stanza.Error) {
	c := r.cfg
	bad := func(f string) *stanza.Error {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "invalid value of " + f}
	}
	one := func(f string) (string, bool) {
		x, ok := v[f]
		if !ok || len(x) == 0 {
			return "", false
		}
		return strings.TrimSpace(x[0]), true
	}
	boolean := func(f string, dst *bool) *stanza.Error {
		x, ok := one(f)
		if !ok {
			return nil
		}
		switch x {
		case "1", "true":
			*dst = true
		case "0", "false":
			*dst = false
		default:
			return bad(f)
		}
		return nil
	}
	for f, dst := range map[string]*bool{
		"muc#roomconfig_persistentroom": &c.Persistent, "muc#roomconfig_publicroom": &c.Public,
		"muc#roomconfig_membersonly": &c.MembersOnly, "muc#roomconfig_moderatedroom": &c.Moderated,
		"muc#roomconfig_allowinvites": &c.AllowInvites, "muc#roomconfig_changesubject": &c.ChangeSubject,
		"muc#roomconfig_enablelogging": &c.Archive,
	} {
		if e := boolean(f, dst); e != nil {
			return nil, e
		}
	}
	if x, ok := one("muc#roomconfig_roomname"); ok || v["muc#roomconfig_roomname"] != nil {
		c.Name = x
	}
	if x, ok := one("muc#roomconfig_roomdesc"); ok || v["muc#roomconfig_roomdesc"] != nil {
		c.Description = x
	}
	protected := c.Password != ""
	if e := boolean("muc#roomconfig_passwordprotectedroom", &protected); e != nil {
		return nil, e
	}
	if x, ok := one("muc#roomconfig_roomsecret"); ok || v["muc#roomconfig_roomsecret"] != nil {
		c.Password = x
	}
	if !protected {
		c.Password = ""
	} else if c.Password == "" {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "a password-protected room needs a password"}
	}
	if x, ok := one("muc#roomconfig_whois"); ok {
		switch x {
		case "anyone":
			c.WhoisAnyone = true
		case "moderators":
			c.WhoisAnyone = false
		default:
			return nil, bad("muc#roomconfig_whois")
		}
	}
	if x, ok := one("muc#roomconfig_maxusers"); ok {
		n, err := strconv.Atoi(x)
		switch {
		case x == "none":
			n = max
		case err != nil || n < 1:
			return nil, bad("muc#roomconfig_maxusers")
		case n > max:
			n = max
		}
		c.MaxUsers = n
	}
	if x, ok := one("muc#roomconfig_allowpm"); ok {
		if !slices.Contains([]string{"anyone", "participants", "moderators", "none"}, x) {
			return nil, bad("muc#roomconfig_allowpm")
		}
		c.AllowPM = x
	}
	old := r.cfg
	r.cfg = c
	wasLocked := r.locked
	r.locked = false
	if wasLocked {
		return nil, nil
	}
	codes := []int{104}
	if c.WhoisAnyone && !old.WhoisAnyone {
		codes = append(codes, 172)
	} else if !c.WhoisAnyone && old.WhoisAnyone {
		codes = append(codes, 173)
	}
	logged, wasLogged := c.Archive && c.Persistent, old.Archive && old.Persistent
	if logged && !wasLogged {
		codes = append(codes, 170)
	} else if !logged && wasLogged {
		codes = append(codes, 171)
	}
	var removed []out
	if c.MembersOnly && !old.MembersOnly {
		// A room made members-only removes those who are not members
		// (status code 322 of XEP-0045's registry).
		for _, o := range r.occupants {
			if r.affiliationOf(o.bare) == affNone {
				removed = r.removeOccupant(removed, o, 322, "", "")
			}
		}
	}
	return append(removed, r.configChanged(codes)...), nil
}

// configChanged tells every occupant that the configuration changed
// (§10.2.1: status 104, and 172 or 173 for the room's anonymity).
func (r *room) configChanged(codes []int) []out {
	var outs []out
	for _, s := range r.sessions() {
		var b bytes.Buffer
		b.WriteString("<message type='groupchat' from='")
		stanza.EscapeAttr(&b, r.jid.String())
		b.WriteString("' to='")
		stanza.EscapeAttr(&b, s.String())
		b.WriteString("'><x xmlns='" + NSUser + "'>")
		for _, code := range codes {
			b.WriteString("<status code='" + strconv.Itoa(code) + "'/>")
		}
		b.WriteString("</x></message>")
		outs = append(outs, out{s, b.Bytes()})
	}
	return outs
}

// destroy is §10.9: every occupant leaves, told where the room went.
func (s *Service) destroy(ctx context.Context, r *room, alternate, reason string) {
	r.mu.Lock()
	var d bytes.Buffer
	d.WriteString("<destroy")
	if alternate != "" {
		d.WriteString(" jid='")
		stanza.EscapeAttr(&d, alternate)
		d.WriteString("'")
	}
	d.WriteString(">")
	if reason != "" {
		d.WriteString("<reason>" + stanza.Escape(reason) + "</reason>")
	}
	d.WriteString("</destroy>")
	var outs []out
	for _, o := range r.occupants {
		for _, to := range o.sessions {
			var b bytes.Buffer
			b.WriteString("<presence type='unavailable' from='")
			stanza.EscapeAttr(&b, r.occupantJID(o.nick).String())
			b.WriteString("' to='")
			stanza.EscapeAttr(&b, to.String())
			b.WriteString("'><x xmlns='" + NSUser + "'><item affiliation='" + r.affiliationOf(o.bare) + "' role='none'/>")
			b.Write(d.Bytes())
			b.WriteString("</x></presence>")
			outs = append(outs, out{to, b.Bytes()})
		}
	}
	r.occupants = make(map[string]*occupant)
	r.real = make(map[string]*occupant)
	r.destroyed = true
	sn := r.snapshot()
	defer r.handOff()()
	s.persist(ctx, r, sn)
	s.forget(r)
	s.sendAll(ctx, outs)
}
