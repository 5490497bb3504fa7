// Package pep implements the Personal Eventing Protocol (XEP-0163): a
// publish-subscribe service on every account's bare JID, the subset of
// XEP-0060 that clients use for OMEMO keys, avatars, nicknames and the like.
//
// What it does (XEP-0163 §4–§7 on XEP-0060):
//   - node creation (§8.1.2, with a configuration form: §8.1.3);
//   - publish (§7.1), auto-creating the node (§7.1.4, XEP-0163 §6.1) with
//     the default configuration or the publish-options, and generating the
//     item id when the item has none (§7.1.2);
//   - publish-options (§7.1.5) with precondition checking for
//     pubsub#access_model, persist_items, max_items (a number or "max"),
//     send_last_published_item and notify_retract: a field that differs
//     from an existing node's configuration is <conflict/> with
//     <precondition-not-met/>, which clients answer by reconfiguring the
//     node (Conversations for OMEMO); other fields are ignored;
//   - items retrieval (§6.5): all, by id, or the last max_items, newest
//     first, by the owner and by anyone the access model lets read;
//   - retract (§7.2), notifying when the node's notify_retract is set or
//     the request asks with notify='true'; purge (§8.5) and node deletion
//     (§8.4), both notified; owner configuration get and set (§8.2) as a
//     data form of the fields the storage keeps (others kept as given);
//   - access models (§4.5) on every read: open; presence (contacts with a
//     subscription from or both); roster (the same: no roster groups);
//     whitelist (the owner and the node's members, managed as its
//     affiliations, §8.9: member or none);
//   - explicit subscriptions (subscriptions.go; XEP-0163 §4 item 1):
//     subscribe (§6.1) by the sender's bare or full JID (else
//     <bad-request/> with <invalid-jid/>), anyone's — other servers'
//     users too — the access model lets read, one per JID and node, no
//     subids, the last item sent after the result when the node's
//     send_last_published_item is on_sub or on_sub_and_presence
//     (§6.1.7); unsubscribe (§6.2, with §6.2.3's errors); the
//     requester's own subscriptions (§5.6); the owner's view and changes
//     of a node's (§8.8: subscribed or none); at most
//     max_subscriptions_per_node per node (<policy-violation/> with
//     <too-many-subscriptions/>); a node's deletion ends them;
//   - notifications (XEP-0163 §4): on publish, retract, purge and delete,
//     a headline message from the account's bare JID to every available
//     session of the account and of its local contacts the access model
//     lets read whose entity capabilities (XEP-0115, module.Env.Caps)
//     include NODE+notify; the last item of each node a session is
//     interested in, of its own account and of the contacts whose presence
//     it receives, when its capabilities become known (caps.Known) or it
//     becomes available (presence.Available), whichever comes second,
//     and to a contact's sessions when it is granted a presence
//     subscription (roster.PresenceGranted) (send_last_published_item
//     on_sub_and_presence, the default). Explicit subscribers the access
//     model lets read when the notification is sent get it too, at the
//     JID they subscribed (a full JID; a bare JID routed to, by the
//     router's rules; other servers' over federation), unless a session
//     got it already: a full JID the path above notified is skipped, and
//     so is a bare JID one of whose sessions it notified. A notification
//     that blocking (XEP-0191) would stop on its way (router.Routing,
//     asked quietly) is not sent.
//
// Errors (XEP-0060 §6.5.9, §7.1.3, §7.2.3, §8): a node or item that does
// not exist is <item-not-found/>; writes to another account's node are
// <forbidden/>; a read the access model refuses is <not-authorized/> with
// <presence-subscription-required/> or <not-in-roster-group/>, or
// <not-allowed/> with <closed-node/> (whitelist); an item larger than
// max_item_bytes is <not-acceptable/> with <payload-too-big/> (§7.1.3.4);
// an account quota (nodes, items, bytes) exceeded is <not-acceptable/>
// with a text, type cancel, nothing changed (Prosody's mod_pep has no
// account quotas to follow; not-acceptable is what §7.1.3.4 answers an
// item the service will not take); a malformed request is <bad-request/>;
// what PEP does not do here (affiliations other than member, pending or
// configurable subscriptions and their options, collection nodes,
// instant nodes, the domain as a pubsub service) is
// <feature-not-implemented/> with <unsupported/>.
//
// Contacts on other servers (federation) are notified too: their
// entities' capabilities are tracked from the presence they send local
// accounts (caps.Remote, asked over s2s), the notifications and last
// items routed to their full JIDs, under the same access models
// (presence and roster: a subscription from or both; open: contacts
// only).
//
// The server keeps two kinds of the user's data in step across their
// forms: bookmarks (XEP-0402 with §5.3's compatibility: the
// urn:xmpp:bookmarks:1 node, the storage:bookmarks node and private XML
// storage, XEP-0049; bookmarks.go) and avatars (XEP-0398: the XEP-0084
// nodes and the vCard's photo, with the photo's hash added to the user's
// presence; avatar.go). Private storage and the vCard are other modules':
// their sets are followed with dispatch's AfterSet, and their documents
// written through storage.Documents.
//
// Not done: notifications to entities on other servers that are neither
// contacts nor explicit subscribers (open nodes); the last item to an
// explicit subscriber that is no contact when it becomes available
// (on_sub_and_presence: its presence is not known here).
package pep

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/caps"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/presence"
	"github.com/starling-xmpp/starling/roster"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// The XEP-0060 namespaces.
const (
	NS       = "http://jabber.org/protocol/pubsub"
	NSOwner  = NS + "#owner"
	NSEvent  = NS + "#event"
	NSErrors = NS + "#errors"
	// NSNodeConfig is the FORM_TYPE of node configuration forms; NSPublishOptions that of publish-options.
	NSNodeConfig     = NS + "#node_config"
	NSPublishOptions = NS + "#publish-options"
	nsData           = "jabber:x:data"
)

// Features are what the account's disco#info lists (XEP-0060 §10,
// XEP-0163 §6.1): what Conversations, Monal and Gajim look for.
var Features = []string{
	NS,
	NS + "#access-open",
	NS + "#access-presence",
	NS + "#access-roster",
	NS + "#access-whitelist",
	NS + "#auto-create",
	NS + "#auto-subscribe",
	NS + "#config-node",
	NS + "#config-node-max",
	NS + "#create-and-configure",
	NS + "#create-nodes",
	NS + "#delete-items",
	NS + "#delete-nodes",
	NS + "#filtered-notifications",
	NS + "#item-ids",
	NS + "#last-published",
	NS + "#manage-subscriptions",
	NS + "#modify-affiliations",
	NS + "#multi-items",
	NS + "#persistent-items",
	NS + "#presence-notifications",
	NS + "#publish",
	NS + "#publish-options",
	NS + "#purge-nodes",
	NS + "#retract-items",
	NS + "#retrieve-items",
	NS + "#retrieve-subscriptions",
	NS + "#subscribe",
}

// Options are the module's: [modules.pep]. The quotas are per account.
type Options struct {
	MaxNodes        int   `toml:"max_nodes"`          // nodes of one account
	MaxItems        int   `toml:"max_items"`          // items of all its nodes
	MaxBytes        int64 `toml:"max_bytes"`          // the sum of those items' payloads
	MaxItemBytes    int   `toml:"max_item_bytes"`     // one item's payload
	MaxItemsPerNode int   `toml:"max_items_per_node"` // what pubsub#max_items "max" means, and its ceiling
	// MaxSubscriptionsPerNode bounds a node's explicit subscriptions.
	MaxSubscriptionsPerNode int `toml:"max_subscriptions_per_node"`
}

// DefaultOptions are the defaults: max_items_per_node is Prosody's
// pep_max_items; the item size the default stanza limit.
func DefaultOptions() *Options {
	return &Options{MaxNodes: 100, MaxItems: 2000, MaxBytes: 8 << 20, MaxItemBytes: 256 << 10, MaxItemsPerNode: 256,
		MaxSubscriptionsPerNode: 1000}
}

// Validate implements config.Validator.
func (o *Options) Validate() []config.OptionsProblem {
	var p []config.OptionsProblem
	check := func(key string, v int64) {
		if v < 1 {
			p = append(p, config.OptionsProblem{Key: key, Message: fmt.Sprintf("must be at least 1, not %d", v)})
		}
	}
	check("max_nodes", int64(o.MaxNodes))
	check("max_items", int64(o.MaxItems))
	check("max_bytes", o.MaxBytes)
	check("max_item_bytes", int64(o.MaxItemBytes))
	check("max_items_per_node", int64(o.MaxItemsPerNode))
	check("max_subscriptions_per_node", int64(o.MaxSubscriptionsPerNode))
	return p
}

func (o *Options) limits() storage.PubSubLimits {
	return storage.PubSubLimits{NodeItems: o.MaxItemsPerNode, Nodes: o.MaxNodes, Items: o.MaxItems, Bytes: o.MaxBytes,
		Subscriptions: o.MaxSubscriptionsPerNode}
}

// DefaultConfig is a new node's configuration (XEP-0163 §5: presence
// access, the last item sent on subscription and presence).
func DefaultConfig() storage.PubSubNodeConfig {
	return storage.PubSubNodeConfig{
		AccessModel:           storage.AccessPresence,
		PersistItems:          true,
		MaxItems:              1,
		SendLastPublishedItem: "on_sub_and_presence",
		NotifyRetract:         true,
	}
}

// Service is PEP. Set its fields, then Register it.
type Service struct {
	// Store holds the nodes, and the documents of the forms kept in
	// step with them (private XML's bookmarks, the vCard).
	Store interface {
		storage.PubSub
		storage.Documents
	}
	Router router.Router
	// Subscription is contact's subscription in user's roster.
	Subscription func(ctx context.Context, user, contact jid.JID) storage.Subscription
	// Contacts are user's contacts whose subscription keep accepts.
	Contacts func(ctx context.Context, user jid.JID, keep func(storage.Subscription) bool) []jid.JID
	// Interested reports whether a session's capabilities include a
	// feature; Features lists them (nil when unknown).
	Interested func(sess router.Session, feature string) bool
	Features   func(sess router.Session) []string
	// Remotes are the available entities (full JIDs, as sessions whose
	// Deliver routes) of a contact on another server whose capabilities
	// are tracked (caps.Remote). Nil: none.
	Remotes func(bare jid.JID) []router.Session
	Options func() *Options
	// Stopped reports whether a stanza would be stopped on its way
	// (router.Routing, Quiet): a notification for a contact the owner
	// blocks, or who blocks the owner (XEP-0191), is not sent. Nil: none
	// is.
	Stopped func(ctx context.Context, st *stanza.Stanza) bool
	Log     *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	// bookmarkLocks serialise each account's bookmark conversions
	// (lockBookmarks).
	bookmarkLocks [64]sync.Mutex
	// photos caches the accounts' avatar hashes (avatar.go).
	photos photoCache
}

// Register adds the IQ handlers and disco entries to m.
func (s *Service) Register(m *dispatch.Mux) {
	m.AddAccountIdentity(dispatch.Identity{Category: "pubsub", Type: "pep"})
	m.AddAccountFeatures(Features...)
	m.AddAccountFeatures(BookmarkFeatures...)
	m.AddAccountFeatures(NSAvatarConversion)
	m.HandleForAccounts(NS, "pubsub", s.handle)
	m.HandleForAccounts(NSOwner, "pubsub", s.handleOwner)
	m.AfterSet(NS, "pubsub", s.subscribed)
	m.AfterSet(nsPrivate, "query", s.privateSet)
	m.AfterSet(nsVCard, "vCard", s.vcardSet)
}

// Errors.

func pubsubErr(typ stanza.ErrorType, cond, app, text string) *stanza.Error {
	e := &stanza.Error{Type: typ, Condition: cond, Text: text}
	if app != "" {
		e.App = []byte("<" + app + " xmlns='" + NSErrors + "'/>")
	}
	return e
}

func unsupported(feature string) *stanza.Error {
	return &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented,
		App: []byte("<unsupported xmlns='" + NSErrors + "' feature='" + feature + "'/>")}
}

var (
	errBadRequest = &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	errNoNode     = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	errForbidden  = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	errNodeID     = pubsubErr(stanza.Modify, stanza.BadRequest, "nodeid-required", "")
)

func precondition(field string) *stanza.Error {
	return pubsubErr(stanza.Cancel, stanza.Conflict, "precondition-not-met", "the node's "+field+" differs")
}

// The request's XML.

type itemXML struct {
	ID    string `xml:"id,attr"`
	Inner []byte `xml:",innerxml"`
}

type nodeItems struct {
	Node     string    `xml:"node,attr"`
	MaxItems string    `xml:"max_items,attr"`
	Notify   string    `xml:"notify,attr"`
	Items    []itemXML `xml:"item"`
}

type field struct {
	Var    string   `xml:"var,attr"`
	Values []string `xml:"value"`
}

type form struct {
	XMLName xml.Name
	Type    string  `xml:"type,attr"`
	Fields  []field `xml:"field"`
}

type withForm struct {
	Node  string `xml:"node,attr"`
	Forms []form `xml:"jabber:x:data x"`
}

type pubsubXML struct {
	Children []struct {
		XMLName xml.Name
	} `xml:",any"`
	Publish        *nodeItems        `xml:"publish"`
	PublishOptions *withForm         `xml:"publish-options"`
	Items          *nodeItems        `xml:"items"`
	Retract        *nodeItems        `xml:"retract"`
	Configure      *withForm         `xml:"configure"`
	Create         *withForm         `xml:"create"`
	Delete         *withForm         `xml:"delete"`
	Purge          *withForm         `xml:"purge"`
	Affiliations   *affiliationsXML  `xml:"affiliations"`
	Subscribe      *subscribeXML     `xml:"subscribe"`
	Unsubscribe    *subscribeXML     `xml:"unsubscribe"`
	Subscriptions  *subscriptionsXML `xml:"subscriptions"`
}

func decode(raw []byte) (*pubsubXML, error) {
	var p pubsubXML
	if err := xml.Unmarshal(raw, &p); err != nil {
		return nil, errBadRequest
	}
	return &p, nil
}

// handle answers <pubsub xmlns='…pubsub'/>.
func (s *Service) handle(ctx context.Context, req dispatch.Request) ([]byte, error) {
	if req.ForServer() {
		return nil, unsupported("pep-on-domain")
	}
	p, err := decode(req.Payload)
	if err != nil {
		return nil, err
	}
	owner := req.To.Bare()
	own := owner.Equal(req.Stanza.From.Bare())
	switch {
	case req.Set() && p.Publish != nil:
		if !own {
			return nil, errForbidden
		}
		return s.publish(ctx, req.Stanza.From, p)
	case req.Set() && p.Retract != nil:
		if !own {
			return nil, errForbidden
		}
		return nil, s.retract(ctx, owner, p.Retract)
	case req.Set() && p.Create != nil:
		if !own {
			return nil, errForbidden
		}
		return nil, s.create(ctx, owner, p.Create.Node, p.Configure)
	case !req.Set() && p.Items != nil:
		return s.items(ctx, owner, req.Stanza.From.Bare(), p.Items)
	case req.Set() && p.Subscribe != nil:
		return s.subscribe(ctx, owner, req.Stanza.From, p.Subscribe)
	case req.Set() && p.Unsubscribe != nil:
		return nil, s.unsubscribe(ctx, owner, req.Stanza.From, p.Unsubscribe)
	case !req.Set() && p.Subscriptions != nil:
		return s.subscriptionsOf(ctx, owner, req.Stanza.From, p.Subscriptions.Node)
	}
	for _, c := range p.Children {
		return nil, unsupported(c.XMLName.Local)
	}
	return nil, errBadRequest
}

// handleOwner answers <pubsub xmlns='…pubsub#owner'/>.
func (s *Service) handleOwner(ctx context.Context, req dispatch.Request) ([]byte, error) {
	if req.ForServer() {
		return nil, unsupported("pep-on-domain")
	}
	p, err := decode(req.Payload)
	if err != nil {
		return nil, err
	}
	owner := req.To.Bare()
	if !owner.Equal(req.Stanza.From.Bare()) {
		return nil, errForbidden
	}
	switch {
	case p.Configure != nil && req.Set():
		return nil, s.configure(ctx, owner, p.Configure)
	case p.Configure != nil:
		return s.configuration(ctx, owner, p.Configure.Node)
	case p.Delete != nil && req.Set():
		return nil, s.deleteNode(ctx, owner, p.Delete.Node)
	case p.Purge != nil && req.Set():
		return nil, s.purge(ctx, owner, p.Purge.Node)
	case p.Affiliations != nil && req.Set():
		return nil, s.setAffiliations(ctx, owner, p.Affiliations)
	case p.Affiliations != nil:
		return s.affiliations(ctx, owner, p.Affiliations.Node)
	case p.Subscriptions != nil && req.Set():
		return nil, s.setSubscriptions(ctx, owner, p.Subscriptions)
	case p.Subscriptions != nil:
		return s.nodeSubscriptions(ctx, owner, p.Subscriptions.Node)
	}
	for _, c := range p.Children {
		return nil, unsupported(c.XMLName.Local)
	}
	return nil, errBadRequest
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return errNoNode
	case errors.Is(err, storage.ErrQuota):
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable,
			Text: "the account's personal eventing quota (nodes, items or bytes) is reached"}
	}
	return err
}

// publish is XEP-0060 §7.1 with §7.1.5's publish-options.
func (s *Service) publish(ctx context.Context, from jid.JID, p *pubsubXML) ([]byte, error) {
	pub := p.Publish
	if pub.Node == "" {
		return nil, errNodeID
	}
	if len(pub.Items) != 1 {
		// §7.1.3.6 (no item), and one item per publish (XEP-0060 §7.1.1).
		return nil, pubsubErr(stanza.Modify, stanza.BadRequest, "item-required", "")
	}
	opts := s.Options()
	payload, ok := onePayload(pub.Items[0].Inner)
	if !ok {
		return nil, pubsubErr(stanza.Modify, stanza.BadRequest, "invalid-payload", "")
	}
	if len(payload) > opts.MaxItemBytes {
		return nil, pubsubErr(stanza.Modify, stanza.NotAcceptable, "payload-too-big",
			"the item is larger than "+strconv.Itoa(opts.MaxItemBytes)+" bytes")
	}
	var want map[string][]string
	if p.PublishOptions != nil {
		f, ok := submitted(p.PublishOptions.Forms, NSPublishOptions)
		if !ok {
			return nil, errBadRequest
		}
		want = f
	}
	owner := from.Bare()
	cfg := DefaultConfig()
	if err := applyForm(&cfg, want, false); err != nil {
		return nil, err
	}
	node, err := s.node(ctx, owner, pub.Node, cfg)
	if err != nil {
		return nil, storeErr(err)
	}
	if err := preconditions(node.Config, want); err != nil {
		return nil, err
	}
	id := pub.Items[0].ID
	if id == "" {
		id = newID()
	}
	it, err := s.store(ctx, owner, node, id, bytes.Clone(payload))
	if err != nil {
		return nil, storeErr(err)
	}
	s.converted(ctx, owner, pub.Node, &it)
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NS + "'><publish node='")
	stanza.EscapeAttr(&b, pub.Node)
	b.WriteString("'><item id='")
	stanza.EscapeAttr(&b, id)
	b.WriteString("'/></publish></pubsub>")
	return b.Bytes(), nil
}

// node returns owner's node name, creating it with cfg if it does not
// exist (XEP-0060 §7.1.4, auto-create).
func (s *Service) node(ctx context.Context, owner jid.JID, name string, cfg storage.PubSubNodeConfig) (storage.PubSubNode, error) {
	host, user := owner.Domainpart(), owner.Localpart()
	node, err := s.Store.PubSubNode(ctx, host, user, name)
	if !errors.Is(err, storage.ErrNotFound) {
		return node, err
	}
	if err := s.Store.CreatePubSubNode(ctx, host, user, name, cfg, s.Options().limits()); err != nil && !errors.Is(err, storage.ErrConflict) {
		return node, err
	}
	return s.Store.PubSubNode(ctx, host, user, name)
}

// store keeps an item in node (if it persists items) and notifies it.
func (s *Service) store(ctx context.Context, owner jid.JID, node storage.PubSubNode, id string, payload []byte) (storage.PubSubItem, error) {
	it := storage.PubSubItem{ID: id, Publisher: owner.String(), Payload: payload, Published: s.now()}
	if node.Config.PersistItems {
		if err := s.Store.PublishPubSubItem(ctx, owner.Domainpart(), owner.Localpart(), node.Name, it, s.Options().limits()); err != nil {
			return it, err
		}
	}
	s.notify(ctx, owner, node, eventItems(node.Name, []storage.PubSubItem{it}))
	return it, nil
}

// put publishes an item on the owner's behalf — the server keeping one
// form of the owner's data in step with another (bookmarks, avatars) —,
// creating the node with cfg if needed, and notifies it as a publish
// would; it converts nothing further.
func (s *Service) put(ctx context.Context, owner jid.JID, name string, cfg storage.PubSubNodeConfig, id string, payload []byte) error {
	node, err := s.node(ctx, owner, name, cfg)
	if err != nil {
		return err
	}
	_, err = s.store(ctx, owner, node, id, payload)
	return err
}

// drop retracts an item on the owner's behalf, as put publishes one;
// nothing to retract is no error.
func (s *Service) drop(ctx context.Context, owner jid.JID, name, id string) error {
	node, err := s.Store.PubSubNode(ctx, owner.Domainpart(), owner.Localpart(), name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.remove(ctx, owner, node, id, node.Config.NotifyRetract); !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// remove retracts id from node (ErrNotFound if it is not there),
// notifying if notify.
func (s *Service) remove(ctx context.Context, owner jid.JID, node storage.PubSubNode, id string, notify bool) error {
	err := s.Store.RetractPubSubItem(ctx, owner.Domainpart(), owner.Localpart(), node.Name, id)
	if err != nil || !notify {
		return err
	}
	var b bytes.Buffer
	b.WriteString("<items node='")
	stanza.EscapeAttr(&b, node.Name)
	b.WriteString("'><retract id='")
	stanza.EscapeAttr(&b, id)
	b.WriteString("'/></items>")
	s.notify(ctx, owner, node, b.Bytes())
	return nil
}

// converted keeps the forms the server holds in step with a node after a
// client changed it (it the item published; nil for a retraction, purge
// or deletion): bookmarks (bookmarks.go) and avatars (avatar.go).
func (s *Service) converted(ctx context.Context, owner jid.JID, node string, it *storage.PubSubItem) {
	var err error
	switch {
	case node == NSBookmarks:
		err = s.bookmarksFromNative(ctx, owner)
	case node == NSLegacyBookmarks && it != nil:
		err = s.bookmarksFromLegacy(ctx, owner, it.Payload, fromPEP)
	case node == NSAvatarMetadata:
		err = s.avatarToVCard(ctx, owner, it)
	}
	if err != nil && ctx.Err() == nil {
		s.Log.Error("converting personal data failed", "jid", owner.String(), "node", node, "err", err)
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// create is §8.1.2 (a named node; PEP has no instant nodes) with
// §8.1.3's configuration form.
func (s *Service) create(ctx context.Context, owner jid.JID, name string, c *withForm) error {
	if name == "" {
		return errNodeID
	}
	cfg := DefaultConfig()
	if c != nil && len(c.Forms) > 0 {
		f, ok := submitted(c.Forms, NSNodeConfig)
		if !ok {
			return errBadRequest
		}
		if err := applyForm(&cfg, f, true); err != nil {
			return err
		}
	}
	err := s.Store.CreatePubSubNode(ctx, owner.Domainpart(), owner.Localpart(), name, cfg, s.Options().limits())
	if errors.Is(err, storage.ErrConflict) {
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict}
	}
	return storeErr(err)
}

// retract is §7.2.
func (s *Service) retract(ctx context.Context, owner jid.JID, r *nodeItems) error {
	if r.Node == "" {
		return errNodeID
	}
	if len(r.Items) != 1 || r.Items[0].ID == "" {
		return pubsubErr(stanza.Modify, stanza.BadRequest, "item-required", "")
	}
	host, user := owner.Domainpart(), owner.Localpart()
	node, err := s.Store.PubSubNode(ctx, host, user, r.Node)
	if err != nil {
		return storeErr(err)
	}
	if err := s.remove(ctx, owner, node, r.Items[0].ID, node.Config.NotifyRetract || r.Notify == "true" || r.Notify == "1"); err != nil {
		return storeErr(err)
	}
	s.converted(ctx, owner, r.Node, nil)
	return nil
}

// items is §6.5.
func (s *Service) items(ctx context.Context, owner, reader jid.JID, q *nodeItems) ([]byte, error) {
	if q.Node == "" {
		return nil, errNodeID
	}
	host, user := owner.Domainpart(), owner.Localpart()
	node, err := s.Store.PubSubNode(ctx, host, user, q.Node)
	if errors.Is(err, storage.ErrNotFound) && owner.Equal(reader) && (q.Node == NSBookmarks || q.Node == NSLegacyBookmarks) {
		// Bookmarks stored privately before: the PEP forms start
		// with them.
		s.migrateBookmarks(ctx, owner)
		node, err = s.Store.PubSubNode(ctx, host, user, q.Node)
	}
	if err != nil {
		return nil, storeErr(err)
	}
	if err := s.mayRead(ctx, owner, reader, node.Config); err != nil {
		return nil, err
	}
	var sel storage.PubSubItemsQuery
	for _, it := range q.Items {
		if it.ID == "" {
			return nil, errBadRequest
		}
		sel.IDs = append(sel.IDs, it.ID)
	}
	if q.MaxItems != "" && len(sel.IDs) == 0 {
		n, err := strconv.Atoi(q.MaxItems)
		if err != nil || n < 1 {
			return nil, errBadRequest
		}
		sel.Last = n
	}
	items, err := s.Store.PubSubItems(ctx, host, user, q.Node, sel)
	if err != nil {
		return nil, storeErr(err)
	}
	if len(sel.IDs) > 0 && len(items) == 0 {
		return nil, errNoNode
	}
	slices.Reverse(items) // newest first
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NS + "'><items node='")
	stanza.EscapeAttr(&b, q.Node)
	b.WriteString("'>")
	for _, it := range items {
		writeItem(&b, it)
	}
	b.WriteString("</items></pubsub>")
	return b.Bytes(), nil
}

func writeItem(b *bytes.Buffer, it storage.PubSubItem) {
	b.WriteString("<item id='")
	stanza.EscapeAttr(b, it.ID)
	b.WriteString("'>")
	b.Write(it.Payload)
	b.WriteString("</item>")
}

// mayRead checks the access model (§4.5, §6.5.9.x).
func (s *Service) mayRead(ctx context.Context, owner, reader jid.JID, cfg storage.PubSubNodeConfig) error {
	if owner.Equal(reader) {
		return nil
	}
	switch cfg.AccessModel {
	case storage.AccessOpen:
		return nil
	case storage.AccessWhitelist:
		if slices.Contains(cfg.Whitelist, reader.String()) {
			return nil
		}
		return pubsubErr(stanza.Cancel, stanza.NotAllowed, "closed-node", "")
	case storage.AccessRoster:
		if roster.SeesPresence(s.Subscription(ctx, owner, reader)) {
			return nil
		}
		return pubsubErr(stanza.Auth, stanza.NotAuthorized, "not-in-roster-group", "")
	default: // presence
		if roster.SeesPresence(s.Subscription(ctx, owner, reader)) {
			return nil
		}
		return pubsubErr(stanza.Auth, stanza.NotAuthorized, "presence-subscription-required", "")
	}
}

// ownedNode returns owner's node for a request of the owner's (§8):
// nodeid-required without a name, item-not-found without the node.
func (s *Service) ownedNode(ctx context.Context, owner jid.JID, name string) (storage.PubSubNode, error) {
	if name == "" {
		return storage.PubSubNode{}, errNodeID
	}
	node, err := s.Store.PubSubNode(ctx, owner.Domainpart(), owner.Localpart(), name)
	if err != nil {
		return node, storeErr(err)
	}
	return node, nil
}

// configuration is §8.2.1's form.
func (s *Service) configuration(ctx context.Context, owner jid.JID, name string) ([]byte, error) {
	node, err := s.ownedNode(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NSOwner + "'><configure node='")
	stanza.EscapeAttr(&b, name)
	b.WriteString("'>")
	writeForm(&b, node.Config)
	b.WriteString("</configure></pubsub>")
	return b.Bytes(), nil
}

func writeForm(b *bytes.Buffer, cfg storage.PubSubNodeConfig) {
	f := func(typ, v string, values ...string) {
		b.WriteString("<field var='" + v + "'")
		if typ != "" {
			b.WriteString(" type='" + typ + "'")
		}
		b.WriteString(">")
		for _, x := range values {
			b.WriteString("<value>")
			b.WriteString(stanza.Escape(x))
			b.WriteString("</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("<x xmlns='" + nsData + "' type='form'>")
	f("hidden", "FORM_TYPE", NSNodeConfig)
	f("list-single", "pubsub#access_model", string(cfg.AccessModel))
	f("boolean", "pubsub#persist_items", boolValue(cfg.PersistItems))
	f("text-single", "pubsub#max_items", maxItemsValue(cfg.MaxItems))
	f("list-single", "pubsub#send_last_published_item", cfg.SendLastPublishedItem)
	f("boolean", "pubsub#notify_retract", boolValue(cfg.NotifyRetract))
	keys := make([]string, 0, len(cfg.Extra))
	for k := range cfg.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString("<field var='")
		stanza.EscapeAttr(b, k)
		b.WriteString("'>")
		for _, x := range cfg.Extra[k] {
			b.WriteString("<value>" + stanza.Escape(x) + "</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
}

func boolValue(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func maxItemsValue(n int) string {
	if n <= storage.PubSubMaxItemsMax {
		return "max"
	}
	return strconv.Itoa(n)
}

// configure is §8.2.4.
func (s *Service) configure(ctx context.Context, owner jid.JID, c *withForm) error {
	if c.Node == "" {
		return errNodeID
	}
	host, user := owner.Domainpart(), owner.Localpart()
	node, err := s.Store.PubSubNode(ctx, host, user, c.Node)
	if err != nil {
		return storeErr(err)
	}
	if len(c.Forms) == 1 && c.Forms[0].Type == "cancel" {
		return nil
	}
	f, ok := submitted(c.Forms, NSNodeConfig)
	if !ok {
		return errBadRequest
	}
	cfg := node.Config
	if err := applyForm(&cfg, f, true); err != nil {
		return err
	}
	err = s.Store.ConfigurePubSubNode(ctx, host, user, c.Node, cfg, s.Options().limits())
	if c.Node == NSAvatarMetadata {
		// A new max_items or persist_items may have taken the last
		// item: the hash is read again at the next presence.
		s.photos.forget(owner.String())
	}
	return storeErr(err)
}

func (s *Service) deleteNode(ctx context.Context, owner jid.JID, name string) error {
	node, err := s.ownedNode(ctx, owner, name)
	if err != nil {
		return err
	}
	host, user := owner.Domainpart(), owner.Localpart()
	// The subscribers are told of the deletion, which takes their
	// subscriptions (§8.4.2).
	subs := s.subscriptions(ctx, owner, name)
	if err := s.Store.DeletePubSubNode(ctx, host, user, name); err != nil {
		return storeErr(err)
	}
	s.notifyAll(ctx, owner, node, []byte("<delete node='"+stanza.Escape(name)+"'/>"), subs)
	s.converted(ctx, owner, name, nil)
	return nil
}

func (s *Service) purge(ctx context.Context, owner jid.JID, name string) error {
	node, err := s.ownedNode(ctx, owner, name)
	if err != nil {
		return err
	}
	host, user := owner.Domainpart(), owner.Localpart()
	if _, err := s.Store.PurgePubSubNode(ctx, host, user, name); err != nil {
		return storeErr(err)
	}
	s.notify(ctx, owner, node, []byte("<purge node='"+stanza.Escape(name)+"'/>"))
	s.converted(ctx, owner, name, nil)
	return nil
}

// Affiliations (§8.9): on a personal node they are the owner and the
// whitelist's members, who may read a whitelist node (§4.5); PEP has no
// publishers or outcasts (XEP-0163 §4: only the owner publishes).

type affiliationsXML struct {
	Node         string `xml:"node,attr"`
	Affiliations []struct {
		JID         string `xml:"jid,attr"`
		Affiliation string `xml:"affiliation,attr"`
	} `xml:"affiliation"`
}

// affiliations is §8.9.1.
func (s *Service) affiliations(ctx context.Context, owner jid.JID, name string) ([]byte, error) {
	node, err := s.ownedNode(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NSOwner + "'><affiliations node='")
	stanza.EscapeAttr(&b, name)
	b.WriteString("'><affiliation jid='")
	stanza.EscapeAttr(&b, owner.String())
	b.WriteString("' affiliation='owner'/>")
	for _, w := range node.Config.Whitelist {
		b.WriteString("<affiliation jid='")
		stanza.EscapeAttr(&b, w)
		b.WriteString("' affiliation='member'/>")
	}
	b.WriteString("</affiliations></pubsub>")
	return b.Bytes(), nil
}

// setAffiliations is §8.9.2: member adds a bare JID to the whitelist,
// none removes it; all or nothing (§8.9.2.4).
func (s *Service) setAffiliations(ctx context.Context, owner jid.JID, a *affiliationsXML) error {
	if a.Node == "" {
		return errNodeID
	}
	host, user := owner.Domainpart(), owner.Localpart()
	node, err := s.Store.PubSubNode(ctx, host, user, a.Node)
	if err != nil {
		return storeErr(err)
	}
	cfg := node.Config
	list := slices.Clone(cfg.Whitelist)
	for _, af := range a.Affiliations {
		j, err := jid.Parse(af.JID)
		if err != nil {
			return &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
		}
		bare := j.Bare().String()
		if j.Bare().Equal(owner) {
			// §8.9.2.4: the owner stays the owner.
			return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "the owner's affiliation cannot change"}
		}
		list = slices.DeleteFunc(list, func(w string) bool { return w == bare })
		switch af.Affiliation {
		case "member":
			list = append(list, bare)
		case "none":
		case "publisher", "publish-only", "outcast", "owner":
			return unsupported("modify-affiliations")
		default:
			return errBadRequest
		}
	}
	if len(list) == 0 {
		list = nil
	}
	cfg.Whitelist = list
	return storeErr(s.Store.ConfigurePubSubNode(ctx, host, user, a.Node, cfg, s.Options().limits()))
}

// Forms.

// submitted returns the fields of the one submitted form of FORM_TYPE
// formType (a form without FORM_TYPE is taken as one).
func submitted(forms []form, formType string) (map[string][]string, bool) {
	if len(forms) != 1 || (forms[0].Type != "submit" && forms[0].Type != "") {
		return nil, false
	}
	out := make(map[string][]string)
	for _, f := range forms[0].Fields {
		if f.Var == "" {
			return nil, false
		}
		out[f.Var] = f.Values
	}
	if ft, ok := out["FORM_TYPE"]; ok && (len(ft) != 1 || ft[0] != formType) {
		return nil, false
	}
	delete(out, "FORM_TYPE")
	return out, true
}

func one(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	return strings.TrimSpace(values[0]), true
}

func parseBool(v string) (bool, bool) {
	switch v {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

func parseMaxItems(v string) (int, bool) {
	if v == "max" {
		return storage.PubSubMaxItemsMax, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 1
}

var accessModels = map[string]bool{"open": true, "presence": true, "roster": true, "whitelist": true}

var sendLast = map[string]bool{"never": true, "on_sub": true, "on_sub_and_presence": true}

func invalid(v string) *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "invalid value of " + v}
}

// applyForm sets cfg's fields from a submitted form; with extra, the
// fields it does not know are kept in cfg.Extra (a configuration form),
// else ignored (publish-options).
func applyForm(cfg *storage.PubSubNodeConfig, f map[string][]string, extra bool) error {
	for k, values := range f {
		v, single := one(values)
		switch k {
		case "pubsub#access_model":
			if !single || !accessModels[v] {
				return invalid(k)
			}
			cfg.AccessModel = storage.PubSubAccessModel(v)
		case "pubsub#persist_items", "pubsub#notify_retract":
			b, ok := parseBool(v)
			if !single || !ok {
				return invalid(k)
			}
			if k == "pubsub#persist_items" {
				cfg.PersistItems = b
			} else {
				cfg.NotifyRetract = b
			}
		case "pubsub#max_items":
			n, ok := parseMaxItems(v)
			if !single || !ok {
				return invalid(k)
			}
			cfg.MaxItems = n
		case "pubsub#send_last_published_item":
			if !single || !sendLast[v] {
				return invalid(k)
			}
			cfg.SendLastPublishedItem = v
		default:
			if extra {
				if cfg.Extra == nil {
					cfg.Extra = make(map[string][]string)
				}
				cfg.Extra[k] = slices.Clone(values)
			}
		}
	}
	return nil
}

// preconditions checks publish-options against a node's configuration
// (XEP-0060 §7.1.5).
func preconditions(cfg storage.PubSubNodeConfig, f map[string][]string) error {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, single := one(f[k])
		var same bool
		switch k {
		case "pubsub#access_model":
			same = single && v == string(cfg.AccessModel)
		case "pubsub#persist_items":
			b, ok := parseBool(v)
			same = single && ok && b == cfg.PersistItems
		case "pubsub#notify_retract":
			b, ok := parseBool(v)
			same = single && ok && b == cfg.NotifyRetract
		case "pubsub#max_items":
			n, ok := parseMaxItems(v)
			same = single && ok && (n == cfg.MaxItems || n <= 0 && cfg.MaxItems <= 0)
		case "pubsub#send_last_published_item":
			same = single && v == cfg.SendLastPublishedItem
		default:
			continue
		}
		if !same {
			return precondition(k)
		}
	}
	return nil
}

// onePayload returns the one element an item holds, which must declare
// its own namespace and every prefix it uses (stanza.SelfContained).
func onePayload(inner []byte) ([]byte, bool) {
	p := bytes.TrimSpace(inner)
	if !stanza.SelfContained(p) {
		return nil, false
	}
	return p, true
}

// Notifications.

func eventItems(node string, items []storage.PubSubItem) []byte {
	var b bytes.Buffer
	b.WriteString("<items node='")
	stanza.EscapeAttr(&b, node)
	b.WriteString("'>")
	for _, it := range items {
		writeItem(&b, it)
	}
	b.WriteString("</items>")
	return b.Bytes()
}

func eventMessage(from, to jid.JID, ev []byte) []byte {
	var b bytes.Buffer
	b.WriteString("<message type='headline' from='")
	stanza.EscapeAttr(&b, from.String())
	b.WriteString("' to='")
	stanza.EscapeAttr(&b, to.String())
	b.WriteString("'><event xmlns='" + NSEvent + "'>")
	b.Write(ev)
	b.WriteString("</event></message>")
	return b.Bytes()
}

// notify sends ev about node to every available session of the owner and
// of the local contacts the access model lets read that are interested,
// to the remote contacts' entities (Remotes) the access model lets read
// whose capabilities are interested, and to the node's explicit
// subscribers the access model lets read that none of those reached
// (notifySubscribers).
func (s *Service) notify(ctx context.Context, owner jid.JID, node storage.PubSubNode, ev []byte) {
	s.notifyAll(ctx, owner, node, ev, s.subscriptions(ctx, owner, node.Name))
}

// notifyAll is notify with the node's subscriptions read already.
func (s *Service) notifyAll(ctx context.Context, owner jid.JID, node storage.PubSubNode, ev []byte, subs []storage.PubSubSubscription) {
	feature := node.Name + "+notify"
	notified := make(map[string]bool)
	readers := []jid.JID{owner}
	if node.Config.AccessModel != storage.AccessWhitelist {
		readers = append(readers, s.Contacts(ctx, owner, roster.SeesPresence)...)
	} else {
		for _, w := range node.Config.Whitelist {
			if j, err := jid.Parse(w); err == nil && s.Router.IsLocal(j.Domainpart()) && roster.SeesPresence(s.Subscription(ctx, owner, j)) {
				readers = append(readers, j)
			}
		}
	}
	for _, r := range readers {
		sessions := s.Router.Sessions
		if !s.Router.IsLocal(r.Domainpart()) {
			if s.Remotes == nil {
				continue
			}
			sessions = s.Remotes
		}
		for _, sess := range sessions(r) {
			if ok, _ := sess.Available(); ok && s.Interested(sess, feature) {
				notified[sess.JID().String()] = true
				s.deliver(ctx, sess, owner, ev)
			}
		}
	}
	s.notifySubscribers(ctx, owner, node, ev, subs, notified)
}

// interests are the nodes a session's capabilities ask for (NODE+notify).
func (s *Service) interests(sess router.Session) []string {
	var nodes []string
	for _, f := range s.Features(sess) {
		if n, ok := strings.CutSuffix(f, "+notify"); ok && n != "" {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// sendLast sends sess the last item of each node it is interested in, of
// its own account and of the contacts whose presence it receives.
func (s *Service) sendLast(ctx context.Context, sess router.Session) {
	nodes := s.interests(sess)
	if len(nodes) == 0 {
		return
	}
	user := sess.JID().Bare()
	for _, owner := range append([]jid.JID{user}, s.Contacts(ctx, user, roster.ReceivesPresence)...) {
		s.sendLastFrom(ctx, sess, owner, nodes)
	}
}

// granted sends contact's available sessions the last items of user's
// nodes they are interested in, now that contact sees user's presence
// (XEP-0060 §4.4.2 "on_sub": the presence subscription is PEP's).
func (s *Service) granted(ctx context.Context, user, contact jid.JID) {
	if !s.Router.IsLocal(user.Domainpart()) {
		return
	}
	sessions := s.Router.Sessions
	if !s.Router.IsLocal(contact.Domainpart()) {
		if s.Remotes == nil {
			return
		}
		sessions = s.Remotes
	}
	for _, sess := range sessions(contact.Bare()) {
		if ok, _ := sess.Available(); ok {
			if nodes := s.interests(sess); len(nodes) > 0 {
				s.sendLastFrom(ctx, sess, user.Bare(), nodes)
			}
		}
	}
}

// sendLastRemote sends a remote entity the last item of each node it is
// interested in of the local accounts (locals) its presence reached.
func (s *Service) sendLastRemote(ctx context.Context, sess router.Session, locals []jid.JID) {
	nodes := s.interests(sess)
	if len(nodes) == 0 {
		return
	}
	for _, owner := range locals {
		s.sendLastFrom(ctx, sess, owner, nodes)
	}
}

// sendLastFrom sends sess the last item of owner's nodes among names that
// it may read and that send their last item.
func (s *Service) sendLastFrom(ctx context.Context, sess router.Session, owner jid.JID, names []string) {
	if !s.Router.IsLocal(owner.Domainpart()) {
		return
	}
	user := sess.JID().Bare()
	// One read of the owner's nodes, not one per interest: a client
	// asks for a dozen nodes, most contacts have a few, and this runs
	// for every contact at each login.
	nodes, err := s.Store.PubSubNodes(ctx, owner.Domainpart(), owner.Localpart())
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Error("reading nodes failed", "jid", owner.String(), "err", err)
		}
		return
	}
	for _, node := range nodes {
		name := node.Name
		if !slices.Contains(names, name) || node.Config.SendLastPublishedItem == "never" || s.mayRead(ctx, owner, user, node.Config) != nil {
			continue
		}
		items, err := s.Store.PubSubItems(ctx, owner.Domainpart(), owner.Localpart(), name, storage.PubSubItemsQuery{Last: 1})
		if err != nil || len(items) == 0 {
			continue
		}
		s.deliver(ctx, sess, owner, eventItems(name, items))
	}
}

// deliver sends sess the event ev from owner, unless it would be stopped
// on its way (blocking).
func (s *Service) deliver(ctx context.Context, sess router.Session, owner jid.JID, ev []byte) {
	raw := eventMessage(owner, sess.JID(), ev)
	if s.Stopped != nil && !sess.JID().Bare().Equal(owner) {
		st, err := stanza.ParseElement(raw)
		if err != nil || s.Stopped(ctx, st) {
			return
		}
	}
	sess.Deliver(raw)
}

// Module is XEP-0163 as a module.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "pep" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Options implements module.Configurable.
func (Module) Options() any { return DefaultOptions() }

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	s := &Service{
		Store:  env.Store,
		Router: env.Router,
		Subscription: func(ctx context.Context, user, contact jid.JID) storage.Subscription {
			sub, err := env.Roster.Subscription(ctx, user, contact)
			if err != nil {
				env.Log.Error("reading roster failed", "jid", user.String(), "err", err)
				return storage.SubNone
			}
			return sub
		},
		Contacts:   env.Roster.Contacts,
		Interested: env.Caps.Has,
		Features: func(sess router.Session) []string {
			f, _ := env.Caps.Features(sess)
			return f.List()
		},
		Remotes: func(bare jid.JID) []router.Session {
			rs := env.Caps.Remotes(bare)
			out := make([]router.Session, len(rs))
			for i, r := range rs {
				out[i] = r
			}
			return out
		},
		Options: func() *Options { return env.Options().(*Options) },
		Stopped: func(ctx context.Context, st *stanza.Stanza) bool {
			return event.Fire(ctx, env.Bus, &router.Routing{Stanza: st, Quiet: true})
		},
		Log: env.Log,
	}
	s.Register(env.IQ)
	event.On(env.Bus, event.Normal, "pep", func(ctx context.Context, e *caps.Known) bool {
		if r, ok := e.Session.(*caps.Remote); ok {
			locals := e.Locals
			if locals == nil {
				locals = r.Locals()
			}
			s.sendLastRemote(ctx, r, locals)
			return false
		}
		if ok, _ := e.Session.Available(); ok {
			s.sendLast(ctx, e.Session)
		}
		return false
	})
	event.On(env.Bus, event.Normal, "pep", func(ctx context.Context, e *roster.PresenceGranted) bool {
		s.granted(ctx, e.User, e.Contact)
		return false
	})
	// Before presence (Normal), which broadcasts what this leaves.
	event.On(env.Bus, event.Normal+20, "pep", s.presenceHash)
	// The avatar hash outlives the account's sessions (photoCache), not
	// the account.
	event.On(env.Bus, event.Normal, "pep", func(_ context.Context, e *auth.AccountDeleted) bool {
		s.photos.forget(e.JID.Bare().String())
		return false
	})
	event.On(env.Bus, event.Normal, "pep", func(ctx context.Context, e *presence.Available) bool {
		if _, known := env.Caps.Features(e.Session); known {
			s.sendLast(ctx, e.Session)
		}
		return false
	})
	return nil
}
