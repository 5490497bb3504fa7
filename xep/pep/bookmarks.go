package pep

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"hash/fnv"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Bookmarks: XEP-0402 (PEP Native Bookmarks) with its compatibility
// (§5.3, "#compat" and "#compat-pep"), kept in step with the two forms of
// XEP-0048 clients still use — the storage:bookmarks PEP node (XEP-0223)
// and the same element in private XML storage (XEP-0049) — in every
// direction, so that a bookmark Gajim or Dino stores privately shows up
// in Conversations over XEP-0402, and Monal's PEP node follows both.
// XEP-0402's node is the reference; a XEP-0048 list replaces it.

// The bookmark namespaces, and XEP-0402's node.
const (
	NSBookmarks       = "urn:xmpp:bookmarks:1"
	NSLegacyBookmarks = "storage:bookmarks"
	nsPrivate         = "jabber:iq:private"
)

// BookmarkFeatures are the account features saying the server keeps the
// forms in step (XEP-0402 §5.3; XEP-0411 §2 for older Conversations).
var BookmarkFeatures = []string{
	NSBookmarks + "#compat",
	NSBookmarks + "#compat-pep",
	"urn:xmpp:bookmarks-conversion:0",
}

// legacyItem is the one item of the storage:bookmarks node (XEP-0223 §3).
const legacyItem = "current"

// nativeConfig is the configuration XEP-0402 §3 asks for, given to the
// node when the server creates it.
func nativeConfig() storage.PubSubNodeConfig {
	return storage.PubSubNodeConfig{AccessModel: storage.AccessWhitelist, PersistItems: true,
		MaxItems: storage.PubSubMaxItemsMax, SendLastPublishedItem: "never", NotifyRetract: true}
}

// legacyConfig is XEP-0223 §3's, for the storage:bookmarks node.
func legacyConfig() storage.PubSubNodeConfig {
	return storage.PubSubNodeConfig{AccessModel: storage.AccessWhitelist, PersistItems: true,
		MaxItems: 1, SendLastPublishedItem: "never", NotifyRetract: true}
}

// bookmark is one conference bookmark, in either form.
type bookmark struct {
	JID, Name, Nick, Password string
	Autojoin                  bool
	// Extensions are the elements of other namespaces a client keeps
	// with it (XEP-0402 §3's <extensions/>; children of the XEP-0048
	// conference), each declaring its namespace.
	Extensions []byte
}

func (b bookmark) equal(o bookmark) bool {
	return b.JID == o.JID && b.Name == o.Name && b.Nick == o.Nick && b.Password == o.Password &&
		b.Autojoin == o.Autojoin && bytes.Equal(b.Extensions, o.Extensions)
}

type conferenceXML struct {
	JID      string `xml:"jid,attr"`
	Name     string `xml:"name,attr"`
	Autojoin string `xml:"autojoin,attr"`
	Nick     string `xml:"nick"`
	Password string `xml:"password"`
}

// parseConference reads a conference element of namespace space; the
// bookmark's JID is id for XEP-0402, the jid attribute for XEP-0048.
func parseConference(raw []byte, space, id string) (bookmark, bool) {
	var c conferenceXML
	if err := xml.Unmarshal(raw, &c); err != nil {
		return bookmark{}, false
	}
	if id == "" {
		id = c.JID
	}
	if _, err := jid.Parse(id); err != nil || id == "" {
		return bookmark{}, false
	}
	b := bookmark{JID: id, Name: c.Name, Nick: c.Nick, Password: c.Password,
		Autojoin: c.Autojoin == "true" || c.Autojoin == "1"}
	var ext bytes.Buffer
	keep := func(parent []byte) {
		for e := range stanza.Children(parent) {
			if string(e.Space) != space && stanza.SelfContained(e.Raw) {
				ext.Write(e.Raw)
			}
		}
	}
	for e := range stanza.Children(raw) {
		if space == NSBookmarks && e.Is(NSBookmarks, "extensions") {
			keep(e.Raw)
		}
	}
	if space == NSLegacyBookmarks {
		keep(raw)
	}
	if ext.Len() > 0 {
		b.Extensions = ext.Bytes()
	}
	return b, true
}

// native is b as a XEP-0402 item's payload.
func (b bookmark) native() []byte {
	var w bytes.Buffer
	w.WriteString("<conference xmlns='" + NSBookmarks + "'")
	b.writeAttrs(&w, false)
	w.WriteString(">")
	b.writeChildren(&w)
	if len(b.Extensions) > 0 {
		w.WriteString("<extensions>")
		w.Write(b.Extensions)
		w.WriteString("</extensions>")
	}
	w.WriteString("</conference>")
	return w.Bytes()
}

// legacy writes b as a XEP-0048 conference, inside <storage/>.
func (b bookmark) legacy(w *bytes.Buffer) {
	w.WriteString("<conference")
	b.writeAttrs(w, true)
	w.WriteString(">")
	b.writeChildren(w)
	w.Write(b.Extensions)
	w.WriteString("</conference>")
}

func (b bookmark) writeAttrs(w *bytes.Buffer, withJID bool) {
	if withJID {
		w.WriteString(" jid='")
		stanza.EscapeAttr(w, b.JID)
		w.WriteString("'")
	}
	if b.Name != "" {
		w.WriteString(" name='")
		stanza.EscapeAttr(w, b.Name)
		w.WriteString("'")
	}
	if b.Autojoin {
		w.WriteString(" autojoin='true'")
	}
}

func (b bookmark) writeChildren(w *bytes.Buffer) {
	if b.Nick != "" {
		w.WriteString("<nick>" + stanza.Escape(b.Nick) + "</nick>")
	}
	if b.Password != "" {
		w.WriteString("<password>" + stanza.Escape(b.Password) + "</password>")
	}
}

// parseLegacy reads <storage xmlns='storage:bookmarks'/>: its conferences,
// and the rest (<url/> bookmarks, which XEP-0402 dropped) as it is.
func parseLegacy(raw []byte) (bms []bookmark, rest []byte) {
	var r bytes.Buffer
	for e := range stanza.Children(raw) {
		if e.Is(NSLegacyBookmarks, "conference") {
			if b, ok := parseConference(e.Raw, NSLegacyBookmarks, ""); ok {
				bms = append(bms, b)
			}
			continue
		}
		r.Write(e.Raw)
	}
	return bms, r.Bytes()
}

// legacyStorage is the XEP-0048 element of bms, with rest after them.
func legacyStorage(bms []bookmark, rest []byte) []byte {
	var w bytes.Buffer
	w.WriteString("<storage xmlns='" + NSLegacyBookmarks + "'>")
	for _, b := range bms {
		b.legacy(&w)
	}
	w.Write(rest)
	w.WriteString("</storage>")
	return w.Bytes()
}

// lockBookmarks serialises the conversions of one account's bookmarks.
func (s *Service) lockBookmarks(owner jid.JID) func() {
	h := fnv.New32a()
	h.Write([]byte(owner.String()))
	mu := &s.bookmarkLocks[h.Sum32()%uint32(len(s.bookmarkLocks))]
	mu.Lock()
	return mu.Unlock
}

// privateKey is where XEP-0049 keeps the legacy element.
var privateKey = storage.PrivateKey(NSLegacyBookmarks, "storage")

// nativeBookmarks returns owner's XEP-0402 bookmarks in publication order.
func (s *Service) nativeBookmarks(ctx context.Context, owner jid.JID) ([]bookmark, error) {
	items, err := s.Store.PubSubItems(ctx, owner.Domainpart(), owner.Localpart(), NSBookmarks, storage.PubSubItemsQuery{})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	bms := make([]bookmark, 0, len(items))
	for _, it := range items {
		if b, ok := parseConference(it.Payload, NSBookmarks, it.ID); ok {
			bms = append(bms, b)
		}
	}
	return bms, nil
}

// legacySource is where a XEP-0048 list came from.
type legacySource int

const (
	fromPrivate legacySource = iota // XEP-0049
	fromPEP                         // the storage:bookmarks node
)

// bookmarksFromLegacy applies a replacement list of bookmarks sent in a
// XEP-0048 form: XEP-0402 items published for new and changed bookmarks
// and retracted for those gone, unchanged ones left alone (XEP-0402
// §5.3.2: no notification for them); then the other XEP-0048 form
// replaced by the same element.
func (s *Service) bookmarksFromLegacy(ctx context.Context, owner jid.JID, raw []byte, from legacySource) error {
	defer s.lockBookmarks(owner)()
	bms, _ := parseLegacy(raw)
	current, err := s.nativeBookmarks(ctx, owner)
	if err != nil {
		return err
	}
	have := make(map[string]bookmark, len(current))
	for _, b := range current {
		have[b.JID] = b
	}
	want := make(map[string]bool, len(bms))
	for _, b := range bms {
		want[b.JID] = true
		if old, ok := have[b.JID]; ok && old.equal(b) {
			continue
		}
		if err := s.put(ctx, owner, NSBookmarks, nativeConfig(), b.JID, b.native()); err != nil {
			return err
		}
	}
	for _, b := range current {
		if !want[b.JID] {
			if err := s.drop(ctx, owner, NSBookmarks, b.JID); err != nil {
				return err
			}
		}
	}
	if from == fromPrivate {
		return s.put(ctx, owner, NSLegacyBookmarks, legacyConfig(), legacyItem, bytes.Clone(raw))
	}
	return s.Store.PutDocument(ctx, owner.Domainpart(), owner.Localpart(), privateKey, bytes.Clone(raw))
}

// bookmarksFromNative rewrites both XEP-0048 forms from the XEP-0402 items
// (§5.3.1: each conference with its item id as jid), keeping the <url/>
// bookmarks of the private element, which XEP-0402 has no place for.
func (s *Service) bookmarksFromNative(ctx context.Context, owner jid.JID) error {
	defer s.lockBookmarks(owner)()
	bms, err := s.nativeBookmarks(ctx, owner)
	if err != nil {
		return err
	}
	host, user := owner.Domainpart(), owner.Localpart()
	var rest []byte
	switch old, err := s.Store.Document(ctx, host, user, privateKey); {
	case err == nil:
		_, rest = parseLegacy(old)
	case !errors.Is(err, storage.ErrNotFound):
		return err
	}
	doc := legacyStorage(bms, rest)
	if err := s.Store.PutDocument(ctx, host, user, privateKey, doc); err != nil {
		return err
	}
	return s.put(ctx, owner, NSLegacyBookmarks, legacyConfig(), legacyItem, doc)
}

// migrateBookmarks fills XEP-0402's node from a private element stored
// before it existed, when a client first reads either PEP form.
func (s *Service) migrateBookmarks(ctx context.Context, owner jid.JID) {
	old, err := s.Store.Document(ctx, owner.Domainpart(), owner.Localpart(), privateKey)
	if err != nil {
		return
	}
	if err := s.bookmarksFromLegacy(ctx, owner, old, fromPrivate); err != nil && ctx.Err() == nil {
		s.Log.Error("converting bookmarks failed", "jid", owner.String(), "err", err)
	}
}

// privateSet follows XEP-0049 sets of the legacy element (dispatch
// AfterSet, once private storage has stored it).
func (s *Service) privateSet(ctx context.Context, req dispatch.Request) {
	owner := req.Stanza.From.Bare()
	if !req.To.Equal(owner) {
		return
	}
	for e := range stanza.Children(req.Payload) {
		if e.Is(NSLegacyBookmarks, "storage") {
			if err := s.bookmarksFromLegacy(ctx, owner, e.Raw, fromPrivate); err != nil && ctx.Err() == nil {
				s.Log.Error("converting bookmarks failed", "jid", owner.String(), "err", err)
			}
		}
	}
}
