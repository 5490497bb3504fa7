// Package caps tracks the entity capabilities (XEP-0115) of client
// sessions, so that what a session wants can be told without asking it:
// the personal eventing module sends a node's events to the sessions
// whose features include the node's "+notify" (XEP-0163 §4). It computes
// and checks verification strings (§5.1 generation, §5.4 processing),
// remembers the 'ver' each session's broadcast presence announced, asks
// the session for its disco#info when that 'ver' is not known yet — once
// per 'ver' at a time, whatever the number of sessions announcing it —,
// and keeps the verified answers in a bounded cache shared by every
// session and account.
//
// Presence sent by a client is seen at c2s.ClientStanza, before the
// presence package handles (and stops) it; the tracker never stops
// presence and changes nothing in it. The answers to its queries come
// from the session that was asked, so they are taken at c2s.ClientStanza
// too, by their id and session, and stopped there (the dispatcher would
// drop them anyway). Messages cost one comparison of the stanza's kind.
//
// What it does with what it is told:
//   - a 'hash' it supports (sha-1, which §5.1 requires, and the other
//     functions of the IANA registry the standard library offers): the
//     answer is hashed again; when it matches, the features are cached for
//     that 'ver' and given to every session that announced it; when it does
//     not, or the answer is ill-formed (§5.4), nothing is cached, the
//     session that answered keeps what it answered for itself (unverified),
//     and the next session announcing the same 'ver' is asked (§5.4
//     step 3.9);
//   - a 'hash' it does not support: the session is asked, and its answer
//     holds for that session only (§5.4 step 2);
//   - no 'hash' (the legacy format of before version 1.4): ignored, as if
//     the presence carried no capabilities. Every client still maintained
//     sends a hash.
//
// Entities of other servers (contacts reached over federation) are
// tracked the same way when the Tracker has a Router: their broadcast
// presence to a local account is seen at router.Routing (never stopped),
// each remote full JID becomes a Remote (a router.Session whose Deliver
// routes), asked for its disco#info from the local domain its presence
// reached, the answer taken at router.Routing by id and sender, verified
// and cached in the same cache; its unavailable presence forgets it, and
// at most MaxRemote are tracked (the least recently seen forgotten).
//
// A query unanswered after Timeout is given up, and the next session with
// that 'ver' asked. A session has at most one query in flight; a 'ver' it
// announces meanwhile is looked at when that query ends.
package caps

import (
	"bytes"
	"container/list"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// Defaults of the Tracker's settings.
const (
	DefaultMaxCached = 10000
	DefaultTimeout   = 30 * time.Second
)

// idPrefix starts the id of every query the tracker sends.
const idPrefix = "caps-"

// Priority is the tracker's priority for c2s.ClientStanza: before the
// presence package, which stops every presence stanza.
const Priority = event.Normal + 100

// Features is what a session supports: the features of its disco#info.
// A Features is never modified: sessions with the same 'ver' share one.
type Features struct {
	set map[string]struct{}
	// Verified is false for features a session told about itself only:
	// its answer did not match its 'ver', or its hash is not supported.
	Verified bool
}

func newFeatures(list []string, verified bool) *Features {
	f := &Features{set: make(map[string]struct{}, len(list)), Verified: verified}
	for _, v := range list {
		f.set[v] = struct{}{}
	}
	return f
}

// Has reports whether the feature is among them. A nil Features has none.
func (f *Features) Has(feature string) bool {
	if f == nil {
		return false
	}
	_, ok := f.set[feature]
	return ok
}

// List returns the features, sorted.
func (f *Features) List() []string {
	if f == nil {
		return nil
	}
	out := make([]string, 0, len(f.set))
	for v := range f.set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// Known is fired (on Tracker.Bus) when a session's features become known
// or change: from the cache when its presence announced a 'ver' already
// verified, or when an answer came. It may come before or after the
// presence.Available of the same presence (a cached 'ver' is seen before
// presence handles the stanza): a module that needs both acts on the
// second.
//
// Session may be a *Remote: an entity on another server whose presence
// reached local accounts. Known is fired again for it, with Locals set to
// that account alone, when its presence reaches another local account
// once its features are known; Locals nil means all of Remote.Locals.
type Known struct {
	Session  router.Session
	Features *Features
	Locals   []jid.JID
}

// Tracker tracks the capabilities of client sessions. Set its fields,
// then Register it.
type Tracker struct {
	Bus *event.Bus
	Log *slog.Logger
	// MaxCached bounds the cache of verified 'ver's (least recently used
	// first out); 0 is DefaultMaxCached.
	MaxCached int
	// Timeout is how long an answer is waited for; 0 is DefaultTimeout.
	Timeout time.Duration
	// Router, when set, lets the tracker follow entities of other
	// servers (Remote): their presence and the answers to its queries
	// are seen at router.Routing, its queries routed to them.
	Router router.Router
	// MaxRemote bounds the remote entities tracked (least recently seen
	// first out); 0 is DefaultMaxRemote.
	MaxRemote int

	mu       sync.Mutex // guards everything below
	sessions map[router.Session]*session
	pending  map[string]*query // by key (hash and ver), or by id for per-session ones
	byID     map[string]*query
	cache    map[string]*list.Element // key → element of lru, holding *entry
	lru      list.List                // front: most recently used
	seq      uint64
	// remotes are the Remote entities, by bare JID and resource; remoteLRU
	// holds them, most recently seen first.
	remotes   map[string]map[string]*Remote
	remoteLRU list.List
}

// session is what the tracker knows of one session.
type session struct {
	hash, node, ver string
	features        *Features // nil until known
	asked           *query    // the query in flight to it, if any
}

// query is a disco#info request in flight.
type query struct {
	key, id   string
	hash, ver string
	shared    bool // the answer may be cached for every session
	target    router.Session
	waiters   []router.Session // sessions waiting for this 'ver', target among them
	timer     *time.Timer
}

// entry is one cached 'ver'.
type entry struct {
	key      string
	features *Features
}

// Register hooks the tracker to client stanzas (c2s.ClientStanza) and
// the end of sessions (c2s.SessionEnded).
func (t *Tracker) Register() {
	event.On(t.Bus, Priority, "caps", t.clientStanza)
	event.On(t.Bus, event.Normal, "caps", func(ctx context.Context, e *c2s.SessionEnded) bool {
		t.ended(ctx, e.Session)
		return false
	})
	if t.Router != nil {
		event.On(t.Bus, Priority, "caps", t.routing)
	}
}

// Features returns the features of a session, and whether they are known.
func (t *Tracker) Features(s router.Session) (*Features, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.sessions[s]
	if st == nil || st.features == nil {
		return nil, false
	}
	return st.features, true
}

// Has reports whether a session's features are known and include this one.
func (t *Tracker) Has(s router.Session, feature string) bool {
	f, _ := t.Features(s)
	return f.Has(feature)
}

// Cached returns the features cached for a verified 'ver' of this hash.
func (t *Tracker) Cached(hash, ver string) (*Features, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.cache[cacheKey(hash, ver)]; ok {
		return el.Value.(*entry).features, true
	}
	return nil, false
}

func cacheKey(hash, ver string) string { return hash + " " + ver }

// clientStanza looks at broadcast available presence for capabilities
// and takes the answers to the tracker's queries.
func (t *Tracker) clientStanza(ctx context.Context, e *c2s.ClientStanza) bool {
	st := e.Stanza
	switch st.Kind {
	case stanza.Presence:
		if st.Type == "" && st.To.Domainpart() == "" {
			t.presence(ctx, e.Session, st)
		}
		return false
	case stanza.IQ:
		if (st.Type == "result" || st.Type == "error") && strings.HasPrefix(st.ID, idPrefix) {
			return t.answer(ctx, e.Session, st)
		}
	}
	return false
}

// caps returns the <c/> of a presence stanza.
func capsOf(st *stanza.Stanza) (hash, node, ver string, ok bool) {
	raw, found := st.Child(NS, "c")
	if !found {
		return "", "", "", false
	}
	hash, node, ver, ok = scanCaps(raw)
	if !ok {
		// Character references, or something odd: decode it properly.
		var c struct {
			Hash string `xml:"hash,attr"`
			Node string `xml:"node,attr"`
			Ver  string `xml:"ver,attr"`
		}
		if stanza.Decode(raw, &c) != nil {
			return "", "", "", false
		}
		hash, node, ver = c.Hash, c.Node, c.Ver
	}
	if ver == "" || node == "" {
		return "", "", "", false
	}
	return hash, node, ver, true
}

// scanCaps reads the attributes of a <c/> start tag without decoding it,
// for presence that repeats a known 'ver' costs little; ok is false when
// a value has a character reference.
func scanCaps(raw []byte) (hash, node, ver string, ok bool) {
	tag := raw[:stanza.StartLen(raw)]
	i := bytes.IndexAny(tag, " \t\r\n")
	if i < 0 {
		return "", "", "", true
	}
	tag = tag[i:]
	for {
		tag = bytes.TrimLeft(tag, " \t\r\n")
		eq := bytes.IndexByte(tag, '=')
		if eq < 0 {
			return hash, node, ver, true
		}
		name := bytes.TrimRight(tag[:eq], " \t\r\n")
		rest := bytes.TrimLeft(tag[eq+1:], " \t\r\n")
		if len(rest) == 0 || (rest[0] != '\'' && rest[0] != '"') {
			return "", "", "", false
		}
		end := bytes.IndexByte(rest[1:], rest[0])
		if end < 0 {
			return "", "", "", false
		}
		value := rest[1 : 1+end]
		tag = rest[end+2:]
		var dst *string
		switch string(name) {
		case "hash":
			dst = &hash
		case "node":
			dst = &node
		case "ver":
			dst = &ver
		default:
			continue
		}
		if bytes.IndexByte(value, '&') >= 0 {
			return "", "", "", false
		}
		*dst = string(value)
	}
}

// presence records the 'ver' a session announced.
func (t *Tracker) presence(ctx context.Context, sess router.Session, st *stanza.Stanza) {
	hash, node, ver, ok := capsOf(st)
	if !ok || hash == "" {
		return // no capabilities, or the legacy format: ignored
	}
	t.mu.Lock()
	s := t.sessions[sess]
	if s != nil && s.ver == ver && s.hash == hash && s.node == node {
		t.mu.Unlock()
		return
	}
	if t.sessions == nil {
		t.sessions = make(map[router.Session]*session)
	}
	if s == nil {
		s = &session{}
		t.sessions[sess] = s
	}
	s.hash, s.node, s.ver, s.features = hash, node, ver, nil
	var known []Known
	var send []*query
	t.resolve(sess, s, &known, &send)
	t.mu.Unlock()
	t.after(ctx, known, send)
}

// resolve finds the features of a session's current 'ver': in the cache,
// from a query in flight, or by a new query (returned in send). t.mu is
// held.
func (t *Tracker) resolve(sess router.Session, s *session, known *[]Known, send *[]*query) {
	if s.features != nil || s.ver == "" {
		return
	}
	if !Supported(s.hash) {
		// §5.4 step 2: asked, for this session only.
		if s.asked == nil {
			*send = append(*send, t.ask(sess, s, false, nil))
		}
		return
	}
	key := cacheKey(s.hash, s.ver)
	if el, ok := t.cache[key]; ok {
		t.lru.MoveToFront(el)
		s.features = el.Value.(*entry).features
		*known = append(*known, Known{Session: sess, Features: s.features})
		return
	}
	if q := t.pending[key]; q != nil {
		// A session announcing A, then B, then A again may be listed
		// twice: harmless, the first answer sets its features.
		q.waiters = append(q.waiters, sess)
		return
	}
	if s.asked == nil {
		*send = append(*send, t.ask(sess, s, true, nil))
	}
	// Else: looked at again when its query in flight ends.
}

// ask makes a query to sess for its current 'ver'. t.mu is held.
func (t *Tracker) ask(sess router.Session, s *session, shared bool, waiters []router.Session) *query {
	t.seq++
	q := &query{
		id:     idPrefix + strconv.FormatUint(t.seq, 36),
		hash:   s.hash,
		ver:    s.ver,
		shared: shared,
		target: sess,
	}
	q.key = q.id
	if shared {
		q.key = cacheKey(s.hash, s.ver)
	}
	q.waiters = append(q.waiters, sess)
	for _, w := range waiters {
		if w != sess {
			q.waiters = append(q.waiters, w)
		}
	}
	if t.pending == nil {
		t.pending = make(map[string]*query)
		t.byID = make(map[string]*query)
	}
	t.pending[q.key] = q
	t.byID[q.id] = q
	s.asked = q
	return q
}

// after sends the queries made and fires the events due, with t.mu not
// held.
func (t *Tracker) after(ctx context.Context, known []Known, send []*query) {
	for _, q := range send {
		t.send(ctx, q)
	}
	for i := range known {
		event.Fire(ctx, t.Bus, &known[i])
	}
}

// send writes a query to its target and starts its timer.
func (t *Tracker) send(ctx context.Context, q *query) {
	t.mu.Lock()
	s := t.sessions[q.target]
	if t.byID[q.id] != q || s == nil {
		t.mu.Unlock()
		return
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	node := s.node
	from := q.target.JID().Domainpart()
	if r, ok := q.target.(*Remote); ok {
		from = r.local
	}
	q.timer = time.AfterFunc(timeout, func() { t.expired(context.WithoutCancel(ctx), q) })
	t.mu.Unlock()
	full := q.target.JID()
	raw := "<iq type='get' from='" + stanza.Escape(from) + "' to='" + stanza.Escape(full.String()) +
		"' id='" + q.id + "'><query xmlns='" + NSInfo + "' node='" + stanza.Escape(node+"#"+q.ver) + "'/></iq>"
	if t.Log != nil {
		t.Log.Debug("asking for capabilities", "jid", full.String(), "ver", q.ver, "hash", q.hash, "id", q.id)
	}
	q.target.Deliver([]byte(raw))
}

// answer takes the answer to a query, from the session asked.
func (t *Tracker) answer(ctx context.Context, sess router.Session, st *stanza.Stanza) bool {
	t.mu.Lock()
	q := t.byID[st.ID]
	if q == nil || q.target != sess {
		t.mu.Unlock()
		return false
	}
	var info *Info
	if st.Type == "result" {
		if _, raw, ok := st.Payload(); ok {
			if i, err := ParseInfo(raw); err == nil {
				info = &i
			}
		}
	}
	var known []Known
	var send []*query
	t.finish(q, info, &known, &send)
	t.mu.Unlock()
	t.after(ctx, known, send)
	return true
}

// expired gives up a query unanswered.
func (t *Tracker) expired(ctx context.Context, q *query) {
	t.mu.Lock()
	if t.byID[q.id] != q {
		t.mu.Unlock()
		return
	}
	if t.Log != nil {
		t.Log.Debug("capabilities query unanswered", "jid", q.target.JID().String(), "ver", q.ver, "id", q.id)
	}
	var known []Known
	var send []*query
	t.finish(q, nil, &known, &send)
	t.mu.Unlock()
	t.after(ctx, known, send)
}

// finish ends a query with its answer (nil: an error, none or not
// understood). t.mu is held.
func (t *Tracker) finish(q *query, info *Info, known *[]Known, send *[]*query) {
	delete(t.byID, q.id)
	if t.pending[q.key] == q {
		delete(t.pending, q.key)
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	target := t.sessions[q.target]
	if target != nil && target.asked == q {
		target.asked = nil
	}
	current := func(sess router.Session) *session {
		s := t.sessions[sess]
		if s == nil || s.hash != q.hash || s.ver != q.ver || s.features != nil {
			return nil
		}
		return s
	}
	verified := false
	if info != nil && q.shared {
		ver, err := Ver(*info, q.hash)
		verified = err == nil && ver == q.ver
		if !verified && t.Log != nil {
			t.Log.Info("capabilities not verified", "jid", q.target.JID().String(), "ver", q.ver, "hash", q.hash, "computed", ver, "err", err)
		}
	}
	switch {
	case verified:
		f := newFeatures(info.Features, true)
		t.put(q.key, f)
		for _, w := range q.waiters {
			if s := current(w); s != nil {
				s.features = f
				*known = append(*known, Known{Session: w, Features: f})
			}
		}
	default:
		if info != nil {
			if _, err := VerString(*info); err == nil || !q.shared {
				// Not matching, or not checkable: true of the session
				// that said it, for itself only.
				if s := current(q.target); s != nil {
					s.features = newFeatures(info.Features, false)
					*known = append(*known, Known{Session: q.target, Features: s.features})
				}
			}
		}
		// §5.4 step 3.9: ask another session announcing the same 'ver'.
		if q.shared && t.pending[q.key] == nil {
			// The session that failed stays among those waiting: another
			// one's verified answer holds for it too.
			var rest []router.Session
			for _, w := range q.waiters {
				if current(w) != nil {
					rest = append(rest, w)
				}
			}
			for _, w := range rest {
				if s := t.sessions[w]; w != q.target && s.asked == nil {
					*send = append(*send, t.ask(w, s, true, rest))
					break
				}
			}
		}
	}
	// The target may have announced another 'ver' meanwhile.
	if target != nil && target.asked == nil && (target.ver != q.ver || target.hash != q.hash) {
		t.resolve(q.target, target, known, send)
	}
}

// put caches the features of a verified 'ver'. t.mu is held.
func (t *Tracker) put(key string, f *Features) {
	if t.cache == nil {
		t.cache = make(map[string]*list.Element)
	}
	if el, ok := t.cache[key]; ok {
		el.Value.(*entry).features = f
		t.lru.MoveToFront(el)
		return
	}
	t.cache[key] = t.lru.PushFront(&entry{key: key, features: f})
	max := t.MaxCached
	if max <= 0 {
		max = DefaultMaxCached
	}
	for t.lru.Len() > max {
		last := t.lru.Back()
		delete(t.cache, last.Value.(*entry).key)
		t.lru.Remove(last)
	}
}

// ended forgets a session; a query in flight to it is given up at once.
func (t *Tracker) ended(ctx context.Context, sess router.Session) {
	t.mu.Lock()
	s := t.sessions[sess]
	if s == nil {
		t.mu.Unlock()
		return
	}
	delete(t.sessions, sess)
	var known []Known
	var send []*query
	if q := s.asked; q != nil {
		t.finish(q, nil, &known, &send)
	}
	t.mu.Unlock()
	t.after(ctx, known, send)
}

// Sessions returns how many sessions the tracker knows of, and how many
// queries are in flight (for tests and diagnostics).
func (t *Tracker) Sessions() (sessions, inFlight int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions), len(t.byID)
}
