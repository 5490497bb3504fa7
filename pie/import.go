package pie

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/storage"
)

// ImportOptions says how Import stores what it reads.
type ImportOptions struct {
	// Hosts are the virtual hosts served: accounts of any other are
	// skipped, with a warning (XEP-0227 §4.1). Nil: no host is refused.
	Hosts []string
	// Iterations is the PBKDF2 count for keys derived from a plaintext
	// password (config auth.scram_iterations); 0 is
	// auth.DefaultIterations.
	Iterations int
	// Warn is told about what is skipped or left out (nil: nobody).
	Warn func(string)
	// Now is the clock for what the file gives no time for (PEP items'
	// publication, offline messages without a delay); nil: time.Now.
	Now func() time.Time
}

// maxIncludes bounds the depth of XIncludes, against a file that
// includes itself.
const maxIncludes = 8

// Import reads the XEP-0227 document at path, with the files it includes
// (XInclude, §5: hrefs relative to the including file), and stores its
// accounts. Each account is stored in one transaction with everything but
// its archive, which follows; an account that exists already is skipped,
// with a warning, so that a file imported twice adds nothing the second
// time. Elements it does not know are ignored (§4: "SHOULD ignore the
// unknown data, SHOULD notify the operator").
func Import(ctx context.Context, store storage.Store, path string, opts ImportOptions) (Stats, error) {
	im := &importer{ctx: ctx, db: store, opts: opts, used: map[int64]bool{}}
	if im.opts.Warn == nil {
		im.opts.Warn = func(string) {}
	}
	if im.opts.Now == nil {
		im.opts.Now = time.Now
	}
	if im.opts.Iterations == 0 {
		im.opts.Iterations = auth.DefaultIterations
	}
	err := im.file(path, "", 0)
	return im.st, err
}

type importer struct {
	ctx         context.Context
	db          storage.Store
	opts        ImportOptions
	st          Stats
	used        map[int64]bool  // archive IDs given by this import
	warnedHosts map[string]bool // hosts not served, told once
}

func (im *importer) warn(format string, a ...any) { im.opts.Warn(fmt.Sprintf(format, a...)) }

// file reads one file whose root is <server-data/>, <host/> or <user/>;
// host is the host a <user/> root belongs to.
func (im *importer) file(path, host string, depth int) error {
	if depth > maxIncludes {
		return fmt.Errorf("%s: XIncludes nested deeper than %d", path, maxIncludes)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: no element", path)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if err := im.element(d, start, filepath.Dir(path), host, depth); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return nil
		}
	}
}

func isPIE(space string) bool { return space == NS || space == nsOld }

// element handles an element at the level of <server-data/>, <host/> or
// <user/>, whose start has been read.
func (im *importer) element(d *xml.Decoder, start xml.StartElement, dir, host string, depth int) error {
	if err := im.ctx.Err(); err != nil {
		return err
	}
	switch {
	case start.Name == xincludeName:
		href := attr(start.Attr, "href")
		if err := d.Skip(); err != nil {
			return err
		}
		return im.include(dir, href, host, depth)
	case isPIE(start.Name.Space) && start.Name.Local == "server-data",
		isPIE(start.Name.Space) && start.Name.Local == "host":
		if start.Name.Local == "host" {
			j, err := jid.Parse(attr(start.Attr, "jid"))
			if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
				return fmt.Errorf("<host jid=%q/> is not a domain", attr(start.Attr, "jid"))
			}
			host = j.Domainpart()
		}
		for {
			tok, err := d.Token()
			if err != nil {
				return err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if err := im.element(d, t, dir, host, depth); err != nil {
					return err
				}
			case xml.EndElement:
				return nil
			}
		}
	case isPIE(start.Name.Space) && start.Name.Local == "user":
		if host == "" {
			return errors.New("<user/> outside <host/>")
		}
		n, err := readTree(d, start, "", func(inc *node) (*node, error) {
			return im.includeTree(dir, inc.attrValue("href"), depth)
		})
		if err != nil {
			return err
		}
		return im.user(host, n)
	default:
		im.warn("ignored: <%s xmlns='%s'/> where hosts and users are", start.Name.Local, start.Name.Space)
		return d.Skip()
	}
}

// includePath resolves an XInclude href: a relative reference, no
// scheme, no fragment (§5: "MUST support … a relative URI").
func includePath(dir, href string) (string, error) {
	if href == "" || strings.Contains(href, ":") || strings.ContainsAny(href, "#?") || filepath.IsAbs(href) {
		return "", fmt.Errorf("XInclude href %q: only relative file names are followed", href)
	}
	return filepath.Join(dir, filepath.FromSlash(href)), nil
}

func (im *importer) include(dir, href, host string, depth int) error {
	p, err := includePath(dir, href)
	if err != nil {
		return err
	}
	return im.file(p, host, depth+1)
}

// includeTree reads an included file inside a <user/> as a node.
func (im *importer) includeTree(dir, href string, depth int) (*node, error) {
	if depth+1 > maxIncludes {
		return nil, fmt.Errorf("XIncludes nested deeper than %d", maxIncludes)
	}
	p, err := includePath(dir, href)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			return readTree(d, start, "", func(inc *node) (*node, error) {
				return im.includeTree(filepath.Dir(p), inc.attrValue("href"), depth+1)
			})
		}
	}
}

func attr(attrs []xml.Attr, local string) string {
	for _, a := range attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// account is what one <user/> holds, read before anything is stored.
type account struct {
	host, user string
	keys       map[storage.Hash]storage.SCRAMKeys
	roster     []storage.RosterItem
	requests   []storage.SubscriptionRequest
	docs       [][2]string // key, document
	offline    []storage.OfflineMessage
	nodes      []pepNode
	archive    []storage.ArchivedMessage
	blocked    []string
}

type pepNode struct {
	name  string
	cfg   storage.PubSubNodeConfig
	subs  []string
	items []storage.PubSubItem
}

// user imports one account.
func (im *importer) user(host string, n *node) error {
	name := n.attrValue("name")
	j, err := jid.New(name, host, "")
	if err != nil || j.Localpart() == "" {
		im.warn("%s@%s: skipped: not a valid account name", name, host)
		im.st.Skipped++
		return nil
	}
	a := &account{host: j.Domainpart(), user: j.Localpart()}
	bare := a.user + "@" + a.host
	if im.opts.Hosts != nil && !slices.Contains(im.opts.Hosts, a.host) {
		if im.warnedHosts == nil {
			im.warnedHosts = map[string]bool{}
		}
		if !im.warnedHosts[a.host] {
			im.warn("host %s is not served (server.hosts: %s): its accounts are skipped", a.host, strings.Join(im.opts.Hosts, ", "))
			im.warnedHosts[a.host] = true
		}
		im.st.Skipped++
		return nil
	}
	if err := im.credentials(a, n); err != nil {
		im.warn("%s: skipped: %v", bare, err)
		im.st.Skipped++
		return nil
	}
	owners := map[string]*node{}
	var itemsEl []*node
	for _, c := range n.elements() {
		switch {
		case c.name.Space == nsSCRAM:
		case c.name == xml.Name{Space: nsRoster, Local: "query"}:
			im.roster(a, c)
		case c.name == xml.Name{Space: nsClient, Local: "presence"}:
			im.request(a, c)
		case c.name == xml.Name{Space: nsVCard, Local: "vCard"}:
			a.docs = append(a.docs, [2]string{storage.VCardKey, string(marshal(c, ""))})
		case c.name == xml.Name{Space: nsPrivate, Local: "query"}:
			for _, p := range c.elements() {
				if p.name.Space == "" {
					im.warn("%s: private element <%s/> without a namespace: left out", bare, p.name.Local)
					continue
				}
				a.docs = append(a.docs, [2]string{storage.PrivateKey(p.name.Space, p.name.Local), string(marshal(p, ""))})
			}
		case isPIE(c.name.Space) && c.name.Local == "offline-messages":
			im.offline(a, c)
		case c.name == xml.Name{Space: nsOwner, Local: "pubsub"}:
			for _, o := range c.elements() {
				nodeName := o.attrValue("node")
				if nodeName == "" {
					continue
				}
				if owners[nodeName] == nil {
					owners[nodeName] = &node{}
				}
				owners[nodeName].kids = append(owners[nodeName].kids, o)
			}
		case c.name == xml.Name{Space: nsPubSub, Local: "pubsub"}:
			itemsEl = append(itemsEl, c.elements()...)
		case c.name == xml.Name{Space: nsMAM, Local: "archive"}:
			im.archive(a, c)
		case c.name == xml.Name{Space: nsBlock, Local: "blocklist"}:
			for _, it := range c.elements() {
				if b := bareOrFull(it.attrValue("jid")); b != "" {
					a.blocked = append(a.blocked, b)
				}
			}
		default:
			im.warn("%s: ignored: <%s xmlns='%s'/>", bare, c.name.Local, c.name.Space)
		}
	}
	im.pep(a, owners, itemsEl)
	return im.store(a)
}

// credentials reads the SCRAM keys, or derives them from a plaintext
// password.
func (im *importer) credentials(a *account, n *node) error {
	bare := a.user + "@" + a.host
	for _, c := range n.elements() {
		if c.name.Space != nsSCRAM || c.name.Local != "scram-credentials" {
			continue
		}
		mech := c.attrValue("mechanism")
		var h storage.Hash
		for k, m := range mechanisms {
			if m == mech {
				h = k
			}
		}
		if h == "" {
			im.warn("%s: SCRAM credentials for %q left out: not a mechanism Starling has", bare, mech)
			continue
		}
		iter := c.childText(nsSCRAM, "iter-count")
		if iter == "" {
			iter = c.childText(nsSCRAM, "iteration-count")
		}
		k, err := scramKeys(h, iter, c.childText(nsSCRAM, "salt"), c.childText(nsSCRAM, "server-key"), c.childText(nsSCRAM, "stored-key"))
		if err != nil {
			im.warn("%s: %s credentials left out: %v", bare, mech, err)
			continue
		}
		if a.keys == nil {
			a.keys = map[storage.Hash]storage.SCRAMKeys{}
		}
		if _, dup := a.keys[h]; !dup {
			a.keys[h] = k
		}
	}
	pw := n.attrValue("password")
	if data, ok := strings.CutPrefix(pw, "scram:"); ok {
		// ejabberd's old form: [sha256,|sha512,]stored,server,salt,iterations.
		parts := strings.Split(data, ",")
		h := storage.SHA1
		if len(parts) == 5 {
			switch parts[0] {
			case "sha256":
				h = storage.SHA256
			case "sha512":
				h = storage.SHA512
			default:
				return fmt.Errorf("password 'scram:%s…' of an unknown hash", parts[0])
			}
			parts = parts[1:]
		}
		if len(parts) != 4 {
			return errors.New("password 'scram:…' not in ejabberd's form")
		}
		k, err := scramKeys(h, parts[3], parts[2], parts[1], parts[0])
		if err != nil {
			return fmt.Errorf("password 'scram:…': %w", err)
		}
		if a.keys == nil {
			a.keys = map[storage.Hash]storage.SCRAMKeys{h: k}
		} else if _, dup := a.keys[h]; !dup {
			a.keys[h] = k
		}
		pw = ""
	}
	if a.keys != nil {
		return nil
	}
	if pw == "" {
		return errors.New("neither SCRAM credentials Starling can use nor a password")
	}
	keys, err := auth.DeriveKeys(pw, im.opts.Iterations)
	if err != nil {
		return fmt.Errorf("its password: %w", err)
	}
	a.keys = keys
	return nil
}

// hashSize is each family's key length.
var hashSize = map[storage.Hash]int{storage.SHA1: 20, storage.SHA256: 32, storage.SHA512: 64}

func scramKeys(h storage.Hash, iter, salt, serverKey, storedKey string) (storage.SCRAMKeys, error) {
	n, err := strconv.Atoi(strings.TrimSpace(iter))
	if err != nil || n <= 0 {
		return storage.SCRAMKeys{}, fmt.Errorf("iteration count %q", iter)
	}
	k := storage.SCRAMKeys{Iterations: n}
	// ejabberd (23.01) keeps the keys and the salt base64-encoded and
	// writes them encoded once more: base64 twice, which the keys'
	// lengths tell.
	twice := false
	for _, f := range []struct {
		name, in string
		out      *[]byte
	}{{"server key", serverKey, &k.ServerKey}, {"stored key", storedKey, &k.StoredKey}} {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(f.in))
		if err == nil && len(b) != hashSize[h] {
			if bb, err2 := base64.StdEncoding.DecodeString(string(b)); err2 == nil && len(bb) == hashSize[h] {
				b, twice = bb, true
			}
		}
		if err != nil || len(b) != hashSize[h] {
			return storage.SCRAMKeys{}, fmt.Errorf("%s is not a %s key in base64", f.name, h)
		}
		*f.out = b
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(salt))
	if err == nil && twice {
		b, err = base64.StdEncoding.DecodeString(string(b))
	}
	if err != nil || len(b) == 0 {
		return storage.SCRAMKeys{}, errors.New("salt is not non-empty base64")
	}
	k.Salt = b
	return k, nil
}

func (im *importer) roster(a *account, q *node) {
	self := a.user + "@" + a.host
	seen := map[string]bool{}
	for _, it := range q.elements() {
		if it.name.Local != "item" {
			continue
		}
		contact := bareOf(it.attrValue("jid"))
		if contact == "" || contact == self || seen[contact] {
			if contact == "" {
				im.warn("%s: roster item %q left out: not a JID", self, it.attrValue("jid"))
			}
			continue
		}
		seen[contact] = true
		sub := storage.Subscription(it.attrValue("subscription"))
		switch sub {
		case "":
			sub = storage.SubNone
		case storage.SubNone, storage.SubTo, storage.SubFrom, storage.SubBoth:
		default:
			im.warn("%s: roster item %s: subscription %q read as none", self, contact, sub)
			sub = storage.SubNone
		}
		ri := storage.RosterItem{
			Contact:      contact,
			Name:         it.attrValue("name"),
			Subscription: sub,
			Ask:          it.attrValue("ask") == "subscribe",
			Approved:     it.attrValue("approved") == "true" || it.attrValue("approved") == "1",
		}
		for _, g := range it.elements() {
			if g.name.Local == "group" {
				if t := g.content(); t != "" && !slices.Contains(ri.Groups, t) {
					ri.Groups = append(ri.Groups, t)
				}
			}
		}
		slices.Sort(ri.Groups)
		a.roster = append(a.roster, ri)
	}
}

func (im *importer) request(a *account, p *node) {
	if p.attrValue("type") != "subscribe" {
		return
	}
	from := bareOf(p.attrValue("from"))
	if from == "" || from == a.user+"@"+a.host {
		return
	}
	setAttr(p, "from", from)
	setAttr(p, "to", a.user+"@"+a.host)
	for i, r := range a.requests {
		if r.Contact == from {
			a.requests = slices.Delete(a.requests, i, i+1)
			break
		}
	}
	a.requests = append(a.requests, storage.SubscriptionRequest{Contact: from, Stanza: marshal(p, nsClient)})
}

func (im *importer) offline(a *account, el *node) {
	now := im.opts.Now().UTC()
	for _, m := range el.elements() {
		if m.name.Local != "message" || m.name.Space != nsClient && m.name.Space != "" && !isPIE(m.name.Space) {
			continue
		}
		if m.name.Space != nsClient {
			// Written without its namespace, it took the file's.
			renameNS(m, m.name.Space, nsClient)
		}
		stored := now
		// The delay the exporting server added for offline storage
		// (from its domain): the time it was stored, and Starling adds
		// its own when it delivers the message.
		for i, k := range m.kids {
			if k.isTxt || k.name != (xml.Name{Space: nsDelay, Local: "delay"}) || k.attrValue("from") != a.host {
				continue
			}
			if t, ok := parseStamp(k.attrValue("stamp")); ok {
				stored = t
				m.kids = slices.Delete(m.kids, i, i+1)
			}
			break
		}
		a.offline = append(a.offline, storage.OfflineMessage{Stanza: marshal(m, nsClient), Stored: stored})
	}
}

// pep gathers the nodes: their configuration forms, whitelists
// (member affiliations) and subscriptions, and their items.
func (im *importer) pep(a *account, owners map[string]*node, items []*node) {
	byName := map[string]*pepNode{}
	var order []string
	get := func(name string) *pepNode {
		if n, ok := byName[name]; ok {
			return n
		}
		n := &pepNode{name: name, cfg: defaultConfig()}
		byName[name] = n
		order = append(order, name)
		return n
	}
	bare := a.user + "@" + a.host
	names := make([]string, 0, len(owners))
	for name := range owners {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		pn := get(name)
		for _, o := range owners[name].kids {
			switch o.name.Local {
			case "configure":
				if x := o.child(nsData, "x"); x != nil {
					if err := applyForm(&pn.cfg, x); err != nil {
						im.warn("%s: PEP node %s: configuration: %v; the default kept", bare, name, err)
						pn.cfg = defaultConfig()
					}
				}
			case "affiliations":
				for _, af := range o.elements() {
					if j := bareOf(af.attrValue("jid")); j != "" && af.attrValue("affiliation") == "member" && !slices.Contains(pn.cfg.Whitelist, j) {
						pn.cfg.Whitelist = append(pn.cfg.Whitelist, j)
					}
				}
			case "subscriptions":
				for _, s := range o.elements() {
					// Prosody 0.12 writes the state as subscribed='subscribed'.
					state := s.attrValue("subscription")
					if state == "" {
						state = s.attrValue("subscribed")
					}
					if j := bareOrFull(s.attrValue("jid")); j != "" && state == "subscribed" {
						pn.subs = append(pn.subs, j)
					}
				}
			}
		}
	}
	for _, its := range items {
		if its.name.Local != "items" || its.attrValue("node") == "" {
			continue
		}
		pn := get(its.attrValue("node"))
		for _, it := range its.elements() {
			if it.name.Local != "item" || it.attrValue("id") == "" {
				continue
			}
			payloads := it.elements()
			if len(payloads) != 1 {
				im.warn("%s: PEP node %s item %s left out: %d payloads, not one", bare, pn.name, it.attrValue("id"), len(payloads))
				continue
			}
			publisher := it.attrValue("publisher")
			if publisher == "" {
				publisher = bare
			}
			pn.items = append(pn.items, storage.PubSubItem{ID: it.attrValue("id"), Publisher: publisher, Payload: marshal(payloads[0], "")})
		}
	}
	for _, name := range order {
		a.nodes = append(a.nodes, *byName[name])
	}
}

// defaultConfig is a node's configuration when the file has none: the
// PEP module's default (XEP-0163 §5).
func defaultConfig() storage.PubSubNodeConfig {
	return storage.PubSubNodeConfig{
		AccessModel:           storage.AccessPresence,
		PersistItems:          true,
		MaxItems:              1,
		SendLastPublishedItem: "on_sub_and_presence",
		NotifyRetract:         true,
	}
}

var accessModels = map[string]bool{"open": true, "presence": true, "roster": true, "whitelist": true}

// applyForm sets cfg from a node_config form; fields it does not know
// are kept in Extra.
func applyForm(cfg *storage.PubSubNodeConfig, x *node) error {
	for _, f := range x.elements() {
		if f.name.Local != "field" {
			continue
		}
		v := f.attrValue("var")
		var values []string
		for _, val := range f.elements() {
			if val.name.Local == "value" {
				values = append(values, val.content())
			}
		}
		one := ""
		if len(values) > 0 {
			one = values[0]
		}
		switch v {
		case "FORM_TYPE", "":
		case "pubsub#access_model":
			if !accessModels[one] {
				return fmt.Errorf("access model %q", one)
			}
			cfg.AccessModel = storage.PubSubAccessModel(one)
		case "pubsub#persist_items":
			cfg.PersistItems = one == "1" || one == "true"
		case "pubsub#notify_retract":
			cfg.NotifyRetract = one == "1" || one == "true"
		case "pubsub#max_items":
			if one == "max" {
				cfg.MaxItems = storage.PubSubMaxItemsMax
			} else if n, err := strconv.Atoi(one); err == nil && n > 0 {
				cfg.MaxItems = n
			} else {
				return fmt.Errorf("max_items %q", one)
			}
		case "pubsub#send_last_published_item":
			switch one {
			case "never", "on_sub", "on_sub_and_presence":
				cfg.SendLastPublishedItem = one
			default:
				return fmt.Errorf("send_last_published_item %q", one)
			}
		default:
			if cfg.Extra == nil {
				cfg.Extra = map[string][]string{}
			}
			cfg.Extra[v] = values
		}
	}
	return nil
}

func (im *importer) archive(a *account, el *node) {
	bare := a.user + "@" + a.host
	for _, r := range el.elements() {
		if r.name.Local != "result" {
			continue
		}
		fwd := r.child(nsForward, "forwarded")
		if fwd == nil {
			continue
		}
		delay := fwd.child(nsDelay, "delay")
		msg := fwd.child(nsClient, "message")
		if msg == nil {
			msg = fwd.child("", "message")
		}
		if delay == nil || msg == nil {
			im.warn("%s: archived message %q left out: no message or no time", bare, r.attrValue("id"))
			continue
		}
		t, ok := parseStamp(delay.attrValue("stamp"))
		if !ok {
			im.warn("%s: archived message %q left out: time %q", bare, r.attrValue("id"), delay.attrValue("stamp"))
			continue
		}
		msg.name.Space = nsClient
		from, to := msg.attrValue("from"), msg.attrValue("to")
		m := storage.ArchivedMessage{Direction: storage.Incoming}
		other := from
		if bareOf(from) == bare || from == "" {
			// Sent by the account (a copy stored as the client sent it
			// may lack its from).
			m.Direction, other = storage.Outgoing, to
		}
		oj, err := jid.Parse(other)
		if err != nil {
			im.warn("%s: archived message %q left out: no other party", bare, r.attrValue("id"))
			continue
		}
		m.With, m.WithResource = oj.Bare().String(), oj.Resourcepart()
		// The archive ID is the time it was archived in microseconds:
		// kept when the file's ID is such a time (Starling's), else made
		// from the time, unique among those this import gives.
		id := storage.ArchiveID(t)
		if n, err := strconv.ParseInt(r.attrValue("id"), 10, 64); err == nil && n >= id && n-id < int64(time.Second/time.Microsecond) {
			id = n
		}
		for im.used[id] {
			id++
		}
		im.used[id] = true
		m.ID = id
		m.Stanza = marshal(msg, nsClient)
		a.archive = append(a.archive, m)
	}
	slices.SortStableFunc(a.archive, func(x, y storage.ArchivedMessage) int {
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
}

// renameNS moves n and its descendants in namespace from to namespace to.
func renameNS(n *node, from, to string) {
	if n.isTxt || n.name.Space != from {
		return
	}
	n.name.Space = to
	for _, k := range n.kids {
		renameNS(k, from, to)
	}
}

// bareOrFull is s prepared as a JID, bare or full; "" if it is none.
func bareOrFull(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return ""
	}
	return j.String()
}

// store writes an account: everything but its archive in one
// transaction, then the archive.
func (im *importer) store(a *account) error {
	bare := a.user + "@" + a.host
	now := im.opts.Now().UTC()
	err := im.db.InTx(im.ctx, func(tx storage.Tx) error {
		err := tx.CreateAccount(im.ctx, storage.Account{Host: a.host, Username: a.user, Keys: a.keys, Created: now})
		if err != nil {
			return err
		}
		for _, it := range a.roster {
			if _, err := tx.PutRosterItem(im.ctx, a.host, a.user, it); err != nil {
				return err
			}
		}
		for _, r := range a.requests {
			if err := tx.PutSubscriptionRequest(im.ctx, a.host, a.user, r); err != nil {
				return err
			}
		}
		for _, d := range a.docs {
			if err := tx.PutDocument(im.ctx, a.host, a.user, d[0], []byte(d[1])); err != nil {
				return err
			}
		}
		for _, m := range a.offline {
			if err := tx.StoreOffline(im.ctx, a.host, a.user, m.Stanza, m.Stored, 0); err != nil {
				return err
			}
		}
		for _, n := range a.nodes {
			if err := tx.CreatePubSubNode(im.ctx, a.host, a.user, n.name, n.cfg, storage.PubSubLimits{}); err != nil {
				return fmt.Errorf("PEP node %s: %w", n.name, err)
			}
			for _, it := range n.items {
				// In the file's order, oldest first; the file has no
				// publication times.
				it.Published = now
				if err := tx.PublishPubSubItem(im.ctx, a.host, a.user, n.name, it, storage.PubSubLimits{}); err != nil {
					return fmt.Errorf("PEP node %s item %s: %w", n.name, it.ID, err)
				}
			}
			for _, s := range n.subs {
				if err := tx.PubSubSubscribe(im.ctx, a.host, a.user, n.name, s, storage.PubSubLimits{}); err != nil {
					return fmt.Errorf("PEP node %s subscription of %s: %w", n.name, s, err)
				}
			}
		}
		if len(a.blocked) > 0 {
			if err := tx.Block(im.ctx, a.host, a.user, a.blocked); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, storage.ErrConflict) {
		im.warn("%s: skipped: the account exists already (delete it first to import it again)", bare)
		im.st.Skipped++
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", bare, err)
	}
	for i := 0; i < len(a.archive); i += archivePage {
		batch := a.archive[i:min(i+archivePage, len(a.archive))]
		entries := make([]storage.ArchiveEntry, len(batch))
		for j, m := range batch {
			entries[j] = storage.ArchiveEntry{Host: a.host, Username: a.user, ArchivedMessage: m}
		}
		if err := im.db.AppendArchive(im.ctx, entries); err != nil {
			return fmt.Errorf("%s: the account was imported, its archive not entirely: %w", bare, err)
		}
	}
	im.st.Accounts++
	im.st.RosterItems += len(a.roster)
	im.st.Requests += len(a.requests)
	for _, d := range a.docs {
		if d[0] == storage.VCardKey {
			im.st.VCards++
		} else {
			im.st.PrivateElements++
		}
	}
	im.st.Offline += len(a.offline)
	im.st.PEPNodes += len(a.nodes)
	for _, n := range a.nodes {
		im.st.PEPItems += len(n.items)
	}
	im.st.Archived += len(a.archive)
	im.st.Blocked += len(a.blocked)
	return nil
}
