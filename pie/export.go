package pie

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/storage"
)

// ExportOptions says what Export writes.
type ExportOptions struct {
	// Hosts are the virtual hosts whose accounts are written, in order.
	Hosts []string
	// Hashes are the SCRAM hash families written for each account, in
	// order (nil: DefaultHashes). A server that keeps one family takes
	// the first (ejabberd) or the one it is configured for (Prosody):
	// put the target's first, or write it alone.
	Hashes []storage.Hash
	// Base64Twice writes the salts and keys base64-encoded twice, as
	// ejabberd (23.01) writes and reads them: it keeps them encoded once
	// and encodes them again for the file. Import reads both forms.
	Base64Twice bool
	// Warn is told about data left out (nil: nobody).
	Warn func(string)
}

// stampFormat is XEP-0082's DateTime with microseconds, the precision of
// archive IDs and offline storage times.
const stampFormat = "2006-01-02T15:04:05.000000Z"

// Export writes the accounts of opts.Hosts in store to w as one XEP-0227
// document, account by account (each read on its own: an account changed
// while the export runs is written as it was at some moment, not the
// whole server at one; run it on a copy from starling backup for that).
func Export(ctx context.Context, store storage.Store, w io.Writer, opts ExportOptions) (Stats, error) {
	var st Stats
	e, err := newExporter(store, opts, &st)
	if err != nil {
		return st, err
	}
	if _, err := io.WriteString(w, "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='"+NS+"'>\n"); err != nil {
		return st, err
	}
	for _, host := range opts.Hosts {
		users, err := store.ListAccounts(ctx, host)
		if err != nil {
			return st, err
		}
		var b bytes.Buffer
		b.WriteString("<host jid='")
		escapeAttr(&b, host)
		b.WriteString("'>\n")
		if _, err := w.Write(b.Bytes()); err != nil {
			return st, err
		}
		for _, user := range users {
			b.Reset()
			if err := e.user(ctx, &b, host, user); err != nil {
				return st, fmt.Errorf("%s@%s: %w", user, host, err)
			}
			if _, err := w.Write(b.Bytes()); err != nil {
				return st, err
			}
		}
		if _, err := io.WriteString(w, "</host>\n"); err != nil {
			return st, err
		}
	}
	_, err = io.WriteString(w, "</server-data>\n")
	return st, err
}

// ExportAccount writes one account of store as a whole document
// (<server-data/>, its <host/>, its <user/>): the layout of Prosody's
// mod_storage_xep0227, which keeps a file per account, USER@HOST.xml.
// opts.Hosts is not used.
func ExportAccount(ctx context.Context, store storage.Store, w io.Writer, host, user string, opts ExportOptions) (Stats, error) {
	var st Stats
	e, err := newExporter(store, opts, &st)
	if err != nil {
		return st, err
	}
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='" + NS + "'><host jid='")
	escapeAttr(&b, host)
	b.WriteString("'>")
	if err := e.user(ctx, &b, host, user); err != nil {
		return st, fmt.Errorf("%s@%s: %w", user, host, err)
	}
	b.WriteString("</host></server-data>\n")
	_, err = w.Write(b.Bytes())
	return st, err
}

func newExporter(store storage.Store, opts ExportOptions, st *Stats) (*exporter, error) {
	hashes := opts.Hashes
	if hashes == nil {
		hashes = DefaultHashes
	}
	for _, h := range hashes {
		if mechanisms[h] == "" {
			return nil, fmt.Errorf("unknown SCRAM hash family %q", h)
		}
	}
	e := &exporter{store: store, hashes: hashes, twice: opts.Base64Twice, warn: opts.Warn, st: st}
	if e.warn == nil {
		e.warn = func(string) {}
	}
	return e, nil
}

type exporter struct {
	store  storage.Store
	hashes []storage.Hash
	twice  bool // ExportOptions.Base64Twice
	warn   func(string)
	st     *Stats
}

func (e *exporter) user(ctx context.Context, b *bytes.Buffer, host, user string) error {
	acct, err := e.store.Account(ctx, host, user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // deleted since it was listed
	}
	if err != nil {
		return err
	}
	bare := user + "@" + host
	b.WriteString("<user name='")
	escapeAttr(b, user)
	b.WriteString("'>")
	wrote := false
	for _, h := range e.hashes {
		k, ok := acct.Keys[h]
		if !ok {
			continue
		}
		wrote = true
		b.WriteString("<scram-credentials xmlns='" + nsSCRAM + "' mechanism='" + mechanisms[h] + "'>")
		b.WriteString("<iter-count>" + strconv.Itoa(k.Iterations) + "</iter-count>")
		b.WriteString("<salt>" + e.b64(k.Salt) + "</salt>")
		b.WriteString("<server-key>" + e.b64(k.ServerKey) + "</server-key>")
		b.WriteString("<stored-key>" + e.b64(k.StoredKey) + "</stored-key>")
		b.WriteString("</scram-credentials>")
	}
	if !wrote {
		e.warn(fmt.Sprintf("%s: no SCRAM keys of the families exported: it will have no password", bare))
	}
	e.st.Accounts++
	for _, f := range []func(context.Context, *bytes.Buffer, string, string) error{
		e.roster, e.vcard, e.private, e.offline, e.pep, e.archive, e.blocklist,
	} {
		if err := f(ctx, b, host, user); err != nil {
			return err
		}
	}
	b.WriteString("</user>\n")
	return nil
}

// b64 encodes a SCRAM value for the file.
func (e *exporter) b64(v []byte) string {
	s := base64.StdEncoding.EncodeToString(v)
	if e.twice {
		s = base64.StdEncoding.EncodeToString([]byte(s))
	}
	return s
}

// stanza writes a stored stanza (which inherits jabber:client from its
// stream) with its namespace declared, under a parent in another one.
func (e *exporter) stanza(b *bytes.Buffer, what string, raw []byte, edit func(*node)) bool {
	n, err := parseElement(raw, nsClient)
	if err != nil {
		e.warn(fmt.Sprintf("%s: left out, unreadable: %v", what, err))
		return false
	}
	if edit != nil {
		edit(n)
	}
	writeNode(b, n, "")
	return true
}

// payload writes a stored self-contained element.
func (e *exporter) payload(b *bytes.Buffer, what string, raw []byte) bool {
	n, err := parseElement(raw, "")
	if err != nil {
		e.warn(fmt.Sprintf("%s: left out, unreadable: %v", what, err))
		return false
	}
	writeNode(b, n, "")
	return true
}

func (e *exporter) roster(ctx context.Context, b *bytes.Buffer, host, user string) error {
	items, _, err := e.store.RosterItems(ctx, host, user)
	if err != nil {
		return err
	}
	reqs, err := e.store.SubscriptionRequests(ctx, host, user)
	if err != nil {
		return err
	}
	if len(items) > 0 {
		b.WriteString("<query xmlns='" + nsRoster + "'>")
		for _, it := range items {
			b.WriteString("<item jid='")
			escapeAttr(b, it.Contact)
			b.WriteString("'")
			if it.Name != "" {
				b.WriteString(" name='")
				escapeAttr(b, it.Name)
				b.WriteString("'")
			}
			b.WriteString(" subscription='" + string(it.Subscription) + "'")
			if it.Ask {
				b.WriteString(" ask='subscribe'")
			}
			if it.Approved {
				b.WriteString(" approved='true'")
			}
			b.WriteString(">")
			for _, g := range it.Groups {
				b.WriteString("<group>")
				escapeText(b, g)
				b.WriteString("</group>")
			}
			b.WriteString("</item>")
			e.st.RosterItems++
		}
		b.WriteString("</query>")
	}
	for _, r := range reqs {
		// As Prosody and ejabberd write them: from the contact, to the
		// user, type subscribe (the stored stanza as received, with its
		// status if any).
		ok := e.stanza(b, user+"@"+host+": subscription request from "+r.Contact, r.Stanza, func(n *node) {
			setAttr(n, "from", r.Contact)
			setAttr(n, "to", user+"@"+host)
			setAttr(n, "type", "subscribe")
		})
		if ok {
			e.st.Requests++
		}
	}
	return nil
}

func setAttr(n *node, name, value string) {
	for i, a := range n.attr {
		if a.Name.Space == "" && a.Name.Local == name {
			n.attr[i].Value = value
			return
		}
	}
	n.attr = append(n.attr, xmlAttr(name, value))
}

func xmlAttr(name, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: name}, Value: value} }

func (e *exporter) vcard(ctx context.Context, b *bytes.Buffer, host, user string) error {
	doc, err := e.store.Document(ctx, host, user, storage.VCardKey)
	if errors.Is(err, storage.ErrNotFound) || err == nil && len(bytes.TrimSpace(doc)) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	if e.payload(b, user+"@"+host+": vCard", doc) {
		e.st.VCards++
	}
	return nil
}

func (e *exporter) private(ctx context.Context, b *bytes.Buffer, host, user string) error {
	keys, err := e.store.DocumentKeys(ctx, host, user, privatePrefix)
	if err != nil {
		return err
	}
	var inner bytes.Buffer
	for _, k := range keys {
		doc, err := e.store.Document(ctx, host, user, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if e.payload(&inner, user+"@"+host+": private "+strings.TrimPrefix(k, "private "), doc) {
			e.st.PrivateElements++
		}
	}
	if inner.Len() > 0 {
		b.WriteString("<query xmlns='" + nsPrivate + "'>")
		b.Write(inner.Bytes())
		b.WriteString("</query>")
	}
	return nil
}

func (e *exporter) offline(ctx context.Context, b *bytes.Buffer, host, user string) error {
	msgs, err := e.store.OfflineMessages(ctx, host, user)
	if err != nil || len(msgs) == 0 {
		return err
	}
	b.WriteString("<offline-messages>")
	for _, m := range msgs {
		ok := e.stanza(b, user+"@"+host+": offline message", m.Stanza, func(n *node) {
			// The delay it would be delivered with (XEP-0160, XEP-0203).
			n.kids = append(n.kids, &node{
				name: xml.Name{Space: nsDelay, Local: "delay"},
				attr: []xml.Attr{xmlAttr("from", host), xmlAttr("stamp", m.Stored.UTC().Format(stampFormat))},
				kids: []*node{{isTxt: true, text: "Offline Storage"}},
			})
		})
		if ok {
			e.st.Offline++
		}
	}
	b.WriteString("</offline-messages>")
	return nil
}

func (e *exporter) pep(ctx context.Context, b *bytes.Buffer, host, user string) error {
	nodes, err := e.store.PubSubNodes(ctx, host, user)
	if err != nil || len(nodes) == 0 {
		return err
	}
	b.WriteString("<pubsub xmlns='" + nsOwner + "'>")
	for _, n := range nodes {
		writeConfigure(b, n.Name, n.Config)
		if len(n.Config.Whitelist) > 0 {
			b.WriteString("<affiliations node='")
			escapeAttr(b, n.Name)
			b.WriteString("'>")
			for _, j := range n.Config.Whitelist {
				b.WriteString("<affiliation jid='")
				escapeAttr(b, j)
				b.WriteString("' affiliation='member'/>")
			}
			b.WriteString("</affiliations>")
		}
		subs, err := e.store.PubSubSubscriptions(ctx, host, user, n.Name)
		if err != nil {
			return err
		}
		if len(subs) > 0 {
			b.WriteString("<subscriptions node='")
			escapeAttr(b, n.Name)
			b.WriteString("'>")
			for _, s := range subs {
				b.WriteString("<subscription jid='")
				escapeAttr(b, s.JID)
				b.WriteString("' subscription='subscribed'/>")
			}
			b.WriteString("</subscriptions>")
		}
		e.st.PEPNodes++
	}
	b.WriteString("</pubsub>")
	var items bytes.Buffer
	for _, n := range nodes {
		its, err := e.store.PubSubItems(ctx, host, user, n.Name, storage.PubSubItemsQuery{})
		if err != nil {
			return err
		}
		if len(its) == 0 {
			continue
		}
		items.WriteString("<items node='")
		escapeAttr(&items, n.Name)
		items.WriteString("'>")
		for _, it := range its {
			var one bytes.Buffer
			one.WriteString("<item id='")
			escapeAttr(&one, it.ID)
			one.WriteString("'")
			if it.Publisher != "" {
				one.WriteString(" publisher='")
				escapeAttr(&one, it.Publisher)
				one.WriteString("'")
			}
			one.WriteString(">")
			if !e.payload(&one, fmt.Sprintf("%s@%s: PEP node %s item %s", user, host, n.Name, it.ID), it.Payload) {
				continue
			}
			one.WriteString("</item>")
			items.Write(one.Bytes())
			e.st.PEPItems++
		}
		items.WriteString("</items>")
	}
	if items.Len() > 0 {
		b.WriteString("<pubsub xmlns='" + nsPubSub + "'>")
		b.Write(items.Bytes())
		b.WriteString("</pubsub>")
	}
	return nil
}

// writeConfigure writes a node's configuration as XEP-0060's submitted
// node_config form, the fields the PEP module knows and the others kept.
func writeConfigure(b *bytes.Buffer, name string, cfg storage.PubSubNodeConfig) {
	field := func(v string, values ...string) {
		b.WriteString("<field var='")
		escapeAttr(b, v)
		b.WriteString("'>")
		for _, x := range values {
			b.WriteString("<value>")
			escapeText(b, x)
			b.WriteString("</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("<configure node='")
	escapeAttr(b, name)
	b.WriteString("'><x xmlns='" + nsData + "' type='submit'>")
	field("FORM_TYPE", nsNodeCfg)
	field("pubsub#access_model", string(cfg.AccessModel))
	field("pubsub#persist_items", boolValue(cfg.PersistItems))
	maxItems := "max"
	if cfg.MaxItems > storage.PubSubMaxItemsMax {
		maxItems = strconv.Itoa(cfg.MaxItems)
	}
	field("pubsub#max_items", maxItems)
	if cfg.SendLastPublishedItem != "" {
		field("pubsub#send_last_published_item", cfg.SendLastPublishedItem)
	}
	field("pubsub#notify_retract", boolValue(cfg.NotifyRetract))
	keys := make([]string, 0, len(cfg.Extra))
	for k := range cfg.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field(k, cfg.Extra[k]...)
	}
	b.WriteString("</x></configure>")
}

func boolValue(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// privatePrefix begins the Documents key of every private XML element
// (storage.PrivateKey).
const privatePrefix = "private "

// archivePage is how many archived messages are read at a time.
const archivePage = 500

func (e *exporter) archive(ctx context.Context, b *bytes.Buffer, host, user string) error {
	bare := user + "@" + host
	var after int64
	open := false
	for {
		page, err := e.store.QueryArchive(ctx, host, user, storage.ArchiveQuery{AfterID: after, Max: archivePage})
		if err != nil {
			return err
		}
		for _, m := range page.Messages {
			after = m.ID
			var one bytes.Buffer
			id := strconv.FormatInt(m.ID, 10)
			one.WriteString("<result xmlns='" + nsResult2 + "' id='" + id + "'><forwarded xmlns='" + nsForward + "'>")
			one.WriteString("<delay xmlns='" + nsDelay + "' stamp='" + m.Time().Format(stampFormat) + "'/>")
			ok := e.stanza(&one, bare+": archived message "+id, m.Stanza, nil)
			if !ok {
				continue
			}
			one.WriteString("</forwarded></result>")
			if !open {
				b.WriteString("<archive xmlns='" + nsMAM + "'>")
				open = true
			}
			b.Write(one.Bytes())
			e.st.Archived++
		}
		if page.Complete || len(page.Messages) == 0 {
			break
		}
	}
	if open {
		b.WriteString("</archive>")
	}
	return nil
}

func (e *exporter) blocklist(ctx context.Context, b *bytes.Buffer, host, user string) error {
	jids, err := e.store.BlockedJIDs(ctx, host, user)
	if err != nil || len(jids) == 0 {
		return err
	}
	b.WriteString("<blocklist xmlns='" + nsBlock + "'>")
	for _, j := range jids {
		b.WriteString("<item jid='")
		escapeAttr(b, j)
		b.WriteString("'/>")
		e.st.Blocked++
	}
	b.WriteString("</blocklist>")
	return nil
}

// bareOf returns the bare form of a JID's string, "" if it is not one.
func bareOf(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return ""
	}
	return j.Bare().String()
}

// parseStamp reads a XEP-0082 DateTime.
func parseStamp(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}
