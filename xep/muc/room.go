package muc

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// Affiliations (§5.2) and roles (§5.1).
const (
	affOwner   = "owner"
	affAdmin   = "admin"
	affMember  = "member"
	affOutcast = "outcast"
	affNone    = "none"

	roleModerator   = "moderator"
	roleParticipant = "participant"
	roleVisitor     = "visitor"
	roleNone        = "none"
)

// roomConfig is what the owner's form sets (§10.2, muc#roomconfig).
type roomConfig struct {
	Name          string `json:"name,omitempty"`
	Description   string `json:"description,omitempty"`
	Persistent    bool   `json:"persistent,omitempty"`
	Public        bool   `json:"public,omitempty"`
	MembersOnly   bool   `json:"members_only,omitempty"`
	Moderated     bool   `json:"moderated,omitempty"`
	Password      string `json:"password,omitempty"`
	WhoisAnyone   bool   `json:"whois_anyone,omitempty"` // non-anonymous (§4.1)
	MaxUsers      int    `json:"max_users,omitempty"`
	AllowInvites  bool   `json:"allow_invites,omitempty"`
	AllowPM       string `json:"allow_pm,omitempty"` // anyone, participants, moderators, none
	ChangeSubject bool   `json:"change_subject,omitempty"`
	Archive       bool   `json:"archive,omitempty"`
}

// affiliation is one entry of the room's lists.
type affiliation struct {
	aff, nick, reason string
}

// occupant is one nickname in the room: a user, possibly joined from
// several of its sessions, which share it.
type occupant struct {
	nick string
	bare jid.JID
	// sessions are the user's full JIDs joined as this occupant, oldest
	// first; presence is what the last one sent (its children).
	sessions []jid.JID
	presence []byte
	role     string
	id       string // occupant-id (XEP-0421)
	limit    bucket // its flood limit
}

// historyMessage is a groupchat message kept for new occupants (§7.2.14).
type historyMessage struct {
	from  string // the occupant JID it came from
	id    string // its id as sent
	inner []byte // its children, as broadcast
	at    time.Time
	chars int
}

// room is one room. Its fields are guarded by mu, never held while
// sending.
type room struct {
	jid jid.JID

	mu           sync.Mutex
	cfg          roomConfig
	subject      string
	subjectFrom  string               // the occupant JID that set it, "" for the room
	locked       bool                 // created and not configured yet (§10.1.1)
	secret       []byte               // occupant-id key
	occupants    map[string]*occupant // by nick
	real         map[string]*occupant // by each session's full JID
	affiliations map[string]affiliation
	history      []historyMessage
	limit        bucket   // the room's flood limit
	vcard        []byte   // the room's vCard (XEP-0486), nil for none
	avatars      []string // the SHA-1 of each of its photos
	destroyed    bool
	created      time.Time
	version      uint64 // of the last snapshot (persist.go)

	// sendMu orders what the room sends: a change takes it before it
	// releases mu (handOff), so that the stanzas of changes leave in the
	// order the changes were made — nobody gets a message before their
	// own entering — while mu is free for the next change.
	sendMu sync.Mutex

	// persistMu orders the writes of snapshots (persist.go); persisted
	// and storedAffs are what was written last, guarded by it.
	persistMu  sync.Mutex
	persisted  uint64
	storedAffs map[string]affiliation // nil: the room is not stored
}

func newRoom(j jid.JID, cfg roomConfig) *room {
	r := &room{jid: j, cfg: cfg, occupants: make(map[string]*occupant), real: make(map[string]*occupant), affiliations: make(map[string]affiliation), created: time.Now()}
	r.secret = make([]byte, 16)
	rand.Read(r.secret)
	return r
}

// handOff releases r.mu, which the caller holds, for sending what a
// change computed: it takes the room's send lock first and returns its
// release, to call once the stanzas are sent.
func (r *room) handOff() func() {
	r.sendMu.Lock()
	r.mu.Unlock()
	return r.sendMu.Unlock
}

// affiliationOf returns bare's affiliation (§5.2).
func (r *room) affiliationOf(bare jid.JID) string {
	if a, ok := r.affiliations[bare.String()]; ok {
		return a.aff
	}
	if a, ok := r.affiliations[bare.Domainpart()]; ok && bare.Localpart() != "" {
		return a.aff
	}
	return affNone
}

// defaultRole is the role an affiliation enters with (§5.1.2).
func (r *room) defaultRole(aff string) string {
	switch aff {
	case affOwner, affAdmin:
		return roleModerator
	case affMember:
		return roleParticipant
	}
	if r.cfg.Moderated {
		return roleVisitor
	}
	return roleParticipant
}

// byReal returns the occupant joined from full.
func (r *room) byReal(full jid.JID) *occupant { return r.real[full.String()] }

// addSession joins full to o.
func (r *room) addSession(o *occupant, full jid.JID) {
	o.sessions = append(o.sessions, full)
	r.real[full.String()] = o
}

// dropSession takes full out of o, which stays.
func (r *room) dropSession(o *occupant, full jid.JID) {
	o.sessions = slices.DeleteFunc(o.sessions, full.Equal)
	delete(r.real, full.String())
}

// dropOccupant takes o out of the room.
func (r *room) dropOccupant(o *occupant) {
	delete(r.occupants, o.nick)
	for _, s := range o.sessions {
		delete(r.real, s.String())
	}
}

// occupantID is XEP-0421 §3: stable for a user in a room, opaque.
func (r *room) occupantID(bare jid.JID) string {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte(bare.String()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

func (r *room) occupantJID(nick string) jid.JID {
	j, _ := r.jid.WithResource(nick)
	return j
}

// out is one stanza to send once the lock is released.
type out struct {
	to  jid.JID
	raw []byte
}

// itemExtra is what an occupant's <item/> says beyond its affiliation,
// role and JID: attributes (a new nickname) and children (actor,
// reason).
type itemExtra struct {
	attrs, children string
	// keepRole: an unavailable presence that is a nickname change (§7.6)
	// keeps the role; others say none.
	keepRole bool
}

// presenceOf writes o's presence as seen by a viewer who may (or not)
// see real JIDs, with status codes.
func (r *room) presenceOf(b *bytes.Buffer, o *occupant, to jid.JID, typ string, showJID bool, item itemExtra, codes ...int) {
	b.WriteString("<presence from='")
	stanza.EscapeAttr(b, r.occupantJID(o.nick).String())
	b.WriteString("' to='")
	stanza.EscapeAttr(b, to.String())
	b.WriteString("'")
	if typ != "" {
		b.WriteString(" type='" + typ + "'")
	}
	b.WriteString(">")
	b.Write(o.presence)
	b.WriteString("<x xmlns='" + NSUser + "'><item affiliation='" + r.affiliationOf(o.bare) + "' role='")
	if typ == "unavailable" && !item.keepRole {
		b.WriteString(roleNone)
	} else {
		b.WriteString(o.role)
	}
	b.WriteString("'")
	if showJID && len(o.sessions) > 0 {
		b.WriteString(" jid='")
		stanza.EscapeAttr(b, o.sessions[len(o.sessions)-1].String())
		b.WriteString("'")
	}
	b.WriteString(item.attrs)
	if item.children == "" {
		b.WriteString("/>")
	} else {
		b.WriteString(">" + item.children + "</item>")
	}
	for _, c := range codes {
		b.WriteString("<status code='" + strconv.Itoa(c) + "'/>")
	}
	b.WriteString("</x><occupant-id xmlns='" + NSOccupantID + "' id='" + o.id + "'/></presence>")
}

// seesJIDs reports whether a viewer sees the occupants' real JIDs
// (§4.1: non-anonymous rooms, or moderators of semi-anonymous ones).
func (r *room) seesJIDs(viewer *occupant) bool {
	return r.cfg.WhoisAnyone || viewer.role == roleModerator
}

// broadcastPresence queues o's presence for every occupant's sessions
// (o's own with 110 and self codes).
func (r *room) broadcastPresence(outs []out, o *occupant, typ string, item itemExtra, codes, selfCodes []int) []out {
	for _, v := range r.occupants {
		for _, s := range v.sessions {
			var b bytes.Buffer
			c := codes
			if v == o {
				c = append(append([]int{110}, selfCodes...), codes...)
			}
			r.presenceOf(&b, o, s, typ, v == o || r.seesJIDs(v), item, c...)
			outs = append(outs, out{s, b.Bytes()})
		}
	}
	return outs
}

// sessions returns every occupant session, for a broadcast.
func (r *room) sessions() []jid.JID {
	var all []jid.JID
	for _, o := range r.occupants {
		all = append(all, o.sessions...)
	}
	return all
}

// content returns what is between a whole element's start and end tags
// (nil for an empty element): a stanza's children as they came.
func content(raw []byte) []byte {
	n := stanza.StartLen(raw)
	end := bytes.LastIndex(raw, []byte("</"))
	if end < n {
		return nil
	}
	return raw[n:end]
}

// stripped returns a client's stanza children without what only the
// room may say: MUC payloads, occupant-ids (XEP-0421 §4), stanza-ids by
// the room (XEP-0359 §4).
func stripped(raw []byte) []byte {
	var b bytes.Buffer
	for c := range stanza.Children(raw) {
		switch {
		case c.Is(NS, "x"), c.Is(NSUser, "x"), c.Is(NSOccupantID, "occupant-id"),
			c.Is("urn:xmpp:sid:0", "stanza-id"), c.Is("urn:xmpp:delay", "delay"):
			continue
		}
		b.Write(c.Raw)
	}
	return b.Bytes()
}
