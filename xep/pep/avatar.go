package pep

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"image"
	_ "image/gif" // formats an avatar's size is read from
	_ "image/jpeg"
	_ "image/png"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Avatars: XEP-0398, the user avatar (XEP-0084) published over PEP and
// the vCard's photo (XEP-0054, XEP-0153) kept as one picture. A metadata
// publish copies the data item it points to into the vCard's PHOTO
// (§3.1); a vCard set with a photo publishes it as data and metadata
// (§3.2); each available presence the user sends, directed ones
// included, carries the picture's hash in <x xmlns='vcard-temp:x:update'/>
// unless the client put a <photo/> there itself (§4).

// The XEP-0084 nodes, the conversion's feature, and the vCard
// namespaces.
const (
	NSAvatarData       = "urn:xmpp:avatar:data"
	NSAvatarMetadata   = "urn:xmpp:avatar:metadata"
	NSAvatarConversion = "urn:xmpp:pep-vcard-conversion:0"
	nsVCard            = "vcard-temp"
	nsVCardUpdate      = "vcard-temp:x:update"
)

type avatarInfo struct {
	ID     string `xml:"id,attr"`
	Bytes  string `xml:"bytes,attr"`
	Type   string `xml:"type,attr"`
	URL    string `xml:"url,attr"`
	Width  string `xml:"width,attr"`
	Height string `xml:"height,attr"`
}

// storedInfo is the <info/> of a metadata item that points to a data
// item (§3.1: not to a URL); false for none, which disables the avatar
// (XEP-0084 §4.2).
func storedInfo(payload []byte) (avatarInfo, bool) {
	var m struct {
		Infos []avatarInfo `xml:"info"`
	}
	if xml.Unmarshal(payload, &m) != nil {
		return avatarInfo{}, false
	}
	for _, in := range m.Infos {
		if in.URL == "" && in.ID != "" {
			return in, true
		}
	}
	return avatarInfo{}, false
}

// decodeBase64 reads base64 with the line breaks vCards and data items
// carry.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

func sha1Hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}

// avatar returns owner's current avatar: the metadata node's last item's
// info; false when there is none.
func (s *Service) avatar(ctx context.Context, owner jid.JID) (avatarInfo, bool, error) {
	items, err := s.Store.PubSubItems(ctx, owner.Domainpart(), owner.Localpart(), NSAvatarMetadata, storage.PubSubItemsQuery{Last: 1})
	if errors.Is(err, storage.ErrNotFound) || err == nil && len(items) == 0 {
		return avatarInfo{}, false, nil
	}
	if err != nil {
		return avatarInfo{}, false, err
	}
	in, ok := storedInfo(items[0].Payload)
	return in, ok, nil
}

// avatarToVCard is §3.1: the picture the metadata names (it, or the
// node's last item when it is nil) becomes the vCard's PHOTO; no picture
// removes it. A data item whose SHA-1 is not its id is not copied.
func (s *Service) avatarToVCard(ctx context.Context, owner jid.JID, it *storage.PubSubItem) error {
	var in avatarInfo
	var ok bool
	if it != nil {
		in, ok = storedInfo(it.Payload)
	} else {
		var err error
		if in, ok, err = s.avatar(ctx, owner); err != nil {
			return err
		}
	}
	host, user := owner.Domainpart(), owner.Localpart()
	var typ, b64 string
	if ok {
		items, err := s.Store.PubSubItems(ctx, host, user, NSAvatarData, storage.PubSubItemsQuery{IDs: []string{in.ID}})
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if len(items) == 0 {
			return nil // metadata before its data: nothing to copy
		}
		var d struct {
			Text string `xml:",chardata"`
		}
		if xml.Unmarshal(items[0].Payload, &d) != nil {
			return nil
		}
		data, err := decodeBase64(d.Text)
		if err != nil || !strings.EqualFold(sha1Hex(data), in.ID) {
			s.Log.Info("avatar not copied to the vCard: its data is not the SHA-1 its id names", "jid", owner.String())
			return nil
		}
		typ, b64 = in.Type, base64.StdEncoding.EncodeToString(data)
	}
	old, err := s.Store.Document(ctx, host, user, storage.VCardKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	s.photos.set(owner.String(), strings.ToLower(in.ID))
	if old == nil && !ok {
		return nil
	}
	doc := withPhoto(old, typ, b64)
	if bytes.Equal(doc, old) {
		return nil
	}
	return s.Store.PutDocument(ctx, host, user, storage.VCardKey, doc)
}

// withPhoto returns the vCard doc (nil for none) with its PHOTO replaced
// by one of type typ and base64 content b64, or removed when b64 is "".
// The other children are kept as they are.
func withPhoto(doc []byte, typ, b64 string) []byte {
	var w bytes.Buffer
	start := "<vCard xmlns='" + nsVCard + "'>"
	if n := stanza.StartLen(doc); n > 0 && bytes.HasPrefix(doc, []byte("<vCard")) && !bytes.HasSuffix(doc[:n], []byte("/>")) {
		start = string(doc[:n])
	}
	w.WriteString(start)
	for c := range stanza.Children(doc) {
		if !c.Is(nsVCard, "PHOTO") {
			w.Write(c.Raw)
		}
	}
	if b64 != "" {
		w.WriteString("<PHOTO>")
		if typ != "" {
			w.WriteString("<TYPE>" + stanza.Escape(typ) + "</TYPE>")
		}
		w.WriteString("<BINVAL>" + b64 + "</BINVAL></PHOTO>")
	}
	w.WriteString("</vCard>")
	return w.Bytes()
}

// vcardSet is §3.2, after the vCard module stored a vCard (dispatch
// AfterSet): a photo that is not the current avatar is published as one.
// A vCard without a photo leaves the avatar alone: clients that know
// nothing of avatars edit vCards too.
func (s *Service) vcardSet(ctx context.Context, req dispatch.Request) {
	owner := req.Stanza.From.Bare()
	if !req.To.Equal(owner) {
		return
	}
	var v struct {
		Photo *struct {
			Type   string `xml:"TYPE"`
			Binval string `xml:"BINVAL"`
		} `xml:"PHOTO"`
	}
	if xml.Unmarshal(req.Payload, &v) != nil || v.Photo == nil {
		return
	}
	data, err := decodeBase64(v.Photo.Binval)
	if err != nil || len(data) == 0 {
		return
	}
	if err := s.vcardToAvatar(ctx, owner, strings.TrimSpace(v.Photo.Type), data); err != nil && ctx.Err() == nil {
		s.Log.Error("converting the vCard photo failed", "jid", owner.String(), "err", err)
	}
}

func (s *Service) vcardToAvatar(ctx context.Context, owner jid.JID, typ string, data []byte) error {
	id := sha1Hex(data)
	if cur, ok, err := s.avatar(ctx, owner); err != nil || ok && strings.EqualFold(cur.ID, id) {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString(data)
	if len(b64) > s.Options().MaxItemBytes {
		s.Log.Info("vCard photo not published as the avatar: larger than max_item_bytes", "jid", owner.String())
		return nil
	}
	var info bytes.Buffer
	info.WriteString("<metadata xmlns='" + NSAvatarMetadata + "'><info id='" + id + "' bytes='" + strconv.Itoa(len(data)) + "'")
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if typ == "" && err == nil {
		typ = "image/" + format
	}
	if typ == "" {
		typ = "image/png" // XEP-0084 §4.2.1's required type, as most avatars are
	}
	info.WriteString(" type='")
	stanza.EscapeAttr(&info, typ)
	info.WriteString("'")
	if err == nil {
		info.WriteString(" width='" + strconv.Itoa(cfg.Width) + "' height='" + strconv.Itoa(cfg.Height) + "'")
	}
	info.WriteString("/></metadata>")
	if err := s.put(ctx, owner, NSAvatarData, DefaultConfig(), id, []byte("<data xmlns='"+NSAvatarData+"'>"+b64+"</data>")); err != nil {
		return err
	}
	if err := s.put(ctx, owner, NSAvatarMetadata, DefaultConfig(), id, info.Bytes()); err != nil {
		return err
	}
	s.photos.set(owner.String(), id)
	return nil
}

// maxPhotos bounds photoCache: the accounts whose avatar hash is kept.
const maxPhotos = 10000

// photoCache holds accounts' avatar hashes, for their presence (XEP-0398
// §4, XEP-0153 §3.1): "" for none. It outlives the accounts' sessions, so
// that a login does not read the metadata node again (Prosody keeps the
// hash with the user's vCard too); it is kept right by this module's own
// changes of the avatar — a metadata publish, retraction, purge or node
// deletion (avatarToVCard), a vCard set (dispatch's AfterSet,
// vcardToAvatar) — and goes with the account (auth.AccountDeleted). At
// most maxPhotos accounts, the least recently used out first. Safe for
// concurrent use.
type photoCache struct {
	mu sync.Mutex
	m  map[string]*list.Element // of photoEntry, in lru
	// lru orders the entries, most recently used first.
	lru list.List
	// changes counts set and forget calls, so that load can tell a hash
	// read from storage before one of them from a current one.
	changes uint64
	max     int // 0: maxPhotos
}

type photoEntry struct{ bare, hash string }

func (c *photoCache) get(bare string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[bare]
	if !ok {
		return "", false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*photoEntry).hash, true
}

// put stores hash for bare; c.mu is held.
func (c *photoCache) put(bare, hash string) {
	if c.m == nil {
		c.m = make(map[string]*list.Element)
	}
	if e, ok := c.m[bare]; ok {
		e.Value.(*photoEntry).hash = hash
		c.lru.MoveToFront(e)
		return
	}
	c.m[bare] = c.lru.PushFront(&photoEntry{bare, hash})
	limit := c.max
	if limit <= 0 {
		limit = maxPhotos
	}
	for c.lru.Len() > limit {
		old := c.lru.Back()
		delete(c.m, old.Value.(*photoEntry).bare)
		c.lru.Remove(old)
	}
}

// set records the hash a change of the avatar made current.
func (c *photoCache) set(bare, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes++
	c.put(bare, hash)
}

// version is to be taken before storage is read for load.
func (c *photoCache) version() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changes
}

// load stores hash, read from storage after version returned v, unless
// an entry is there already or a change came since (what was read may
// be older than it).
func (c *photoCache) load(bare, hash string, v uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changes != v {
		return
	}
	if _, ok := c.m[bare]; !ok {
		c.put(bare, hash)
	}
}

func (c *photoCache) forget(bare string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes++
	if e, ok := c.m[bare]; ok {
		delete(c.m, bare)
		c.lru.Remove(e)
	}
}

// photoHash returns owner's avatar hash, "" for none.
func (s *Service) photoHash(ctx context.Context, owner jid.JID) string {
	key := owner.String()
	if h, ok := s.photos.get(key); ok {
		return h
	}
	v := s.photos.version()
	in, ok, err := s.avatar(ctx, owner)
	if err != nil {
		return ""
	}
	h := ""
	if ok {
		h = strings.ToLower(in.ID)
	}
	s.photos.load(key, h, v)
	return h
}

// presenceHash is §4 on c2s.ClientStanza, before presence broadcasts: an
// available presence without a <photo/> of vcard-temp:x:update gets the
// user's avatar hash; an empty <x/> of it is replaced.
func (s *Service) presenceHash(ctx context.Context, e *c2s.ClientStanza) bool {
	st := e.Stanza
	if st.Kind != stanza.Presence || st.Type != "" {
		return false
	}
	hash := s.photoHash(ctx, st.From.Bare())
	if hash == "" {
		return false
	}
	x, hasX := st.Child(nsVCardUpdate, "x")
	if hasX {
		for c := range stanza.Children(x) {
			if c.Is(nsVCardUpdate, "photo") {
				return false
			}
		}
	}
	raw := st.Raw
	upd := "<x xmlns='" + nsVCardUpdate + "'><photo>" + hash + "</photo></x>"
	var b bytes.Buffer
	b.Grow(len(raw) + len(upd) + 16)
	n := stanza.StartLen(raw)
	switch {
	case hasX:
		i := bytes.Index(raw, x)
		b.Write(raw[:i])
		b.WriteString(upd)
		b.Write(raw[i+len(x):])
	case bytes.HasSuffix(raw[:n], []byte("/>")):
		b.Write(raw[:n-2])
		b.WriteString(">" + upd + "</presence>")
	default:
		i := bytes.LastIndexByte(raw, '<')
		b.Write(raw[:i])
		b.WriteString(upd)
		b.Write(raw[i:])
	}
	out := b.Bytes()
	next, err := stanza.Parse(out, stanza.StartLen(out))
	if err != nil {
		return false
	}
	e.Stanza = next
	return false
}
