package storage

import (
	"context"
	"time"
)

// PubSubAccessModel is who may read a node's items (XEP-0060 §4.5).
type PubSubAccessModel string

// The access models PEP nodes use (XEP-0163 §6.1.2 and XEP-0060 §4.5).
const (
	AccessOpen      PubSubAccessModel = "open"
	AccessPresence  PubSubAccessModel = "presence"
	AccessRoster    PubSubAccessModel = "roster"
	AccessWhitelist PubSubAccessModel = "whitelist"
)

// PubSubMaxItemsMax is PubSubNodeConfig.MaxItems for "max" (XEP-0060
// §16.4.4 pubsub#max_items): as many as the server allows, which is
// PubSubLimits.NodeItems.
const PubSubMaxItemsMax = 0

// PubSubNodeConfig is a node's configuration: the fields the PEP module
// enforces and checks publish-options preconditions against, typed, and
// the rest of the configuration form as given.
type PubSubNodeConfig struct {
	AccessModel  PubSubAccessModel // pubsub#access_model
	PersistItems bool              // pubsub#persist_items
	// MaxItems is pubsub#max_items: the most items the node keeps, or
	// PubSubMaxItemsMax (any value <= 0) for "max".
	MaxItems int
	// SendLastPublishedItem is pubsub#send_last_published_item: "never",
	// "on_sub" or "on_sub_and_presence"; opaque to the store.
	SendLastPublishedItem string
	NotifyRetract         bool // pubsub#notify_retract
	// Whitelist are the bare JIDs the whitelist access model lets read
	// the node, in the order given. Backends return nil for none.
	Whitelist []string
	// Extra are the configuration form's other fields by var, kept and
	// returned as given (opaque to the store). Backends return nil for
	// none.
	Extra map[string][]string
}

// PubSubNode is one node of an account's personal eventing service.
type PubSubNode struct {
	Name   string
	Config PubSubNodeConfig
	// Items and Bytes are how many items the node holds and the sum of
	// their payloads' lengths.
	Items int
	Bytes int64
}

// PubSubItem is one published item of a node.
type PubSubItem struct {
	ID        string // the item id, unique in its node; not empty
	Publisher string // the publisher's JID
	Payload   []byte // the item's payload as published (opaque bytes)
	// Published is when it was (last) published; stores keep
	// milliseconds.
	Published time.Time
}

// PubSubLimits are the limits a write is held to; a zero field is no
// limit. A write that would exceed one of an account's totals changes
// nothing and returns ErrQuota.
type PubSubLimits struct {
	// NodeItems is the most items a node keeps: what "max" means
	// (PubSubMaxItemsMax), and a ceiling on any node's MaxItems.
	NodeItems int
	// Nodes, Items and Bytes bound the account's totals: nodes, items of
	// all its nodes, and the sum of those items' payload lengths.
	Nodes int
	Items int
	Bytes int64
	// Subscriptions is the most explicit subscriptions one node has
	// (PubSubSubscribe), bounding what strangers can make an open node
	// hold.
	Subscriptions int
}

// PubSubSubscription is an explicit subscription (XEP-0060 §6.1) to an
// account's node: one per subscriber JID and node, in the state
// subscribed (no pending or unconfigured subscriptions, no subids: one
// subscription per JID, as Prosody keeps them).
type PubSubSubscription struct {
	Node string
	// JID is the subscriber as it subscribed: a bare or a full JID, in
	// its string form (jid.JID.String: localpart@domainpart/resource).
	JID string
}

// PubSubUsage is what an account's nodes hold, for its quotas.
type PubSubUsage struct {
	Nodes int
	Items int
	Bytes int64 // the sum of the items' payload lengths
}

// PubSubItemsQuery selects items of a node: those with the given IDs if
// any, else the last Last published if Last > 0, else all.
type PubSubItemsQuery struct {
	IDs  []string
	Last int
}

// PubSub stores each account's personal eventing nodes and their items
// (XEP-0163 on XEP-0060), keyed by the account; node names are unique per
// account. Items of a node are ordered by publication: a publish (a new
// item or the replacement of one with the same ID) makes its item the
// newest, and when the node then holds more than its MaxItems (capped by
// PubSubLimits.NodeItems), the oldest go in the same transaction.
// Writes return ErrNotFound for an account that does not exist; every
// method but PubSubNodes, PubSubUsage and PubSubSubscriptionsOf (which
// find nothing) returns it for a node that does not exist.
//
// A node's explicit subscriptions go with the node (DeletePubSubNode) and
// with its account; those a local account made to any node go when that
// account is deleted (DeleteAccount: the subscriber's JID names its host
// and username).
type PubSub interface {
	// CreatePubSubNode adds a node; ErrConflict if the account has one of
	// that name; ErrQuota if it would have more than lim.Nodes.
	CreatePubSubNode(ctx context.Context, host, username, node string, cfg PubSubNodeConfig, lim PubSubLimits) error
	// PubSubNode returns a node.
	PubSubNode(ctx context.Context, host, username, node string) (PubSubNode, error)
	// PubSubNodes returns the account's nodes, sorted by name.
	PubSubNodes(ctx context.Context, host, username string) ([]PubSubNode, error)
	// ConfigurePubSubNode replaces a node's configuration, removing the
	// oldest items beyond its new MaxItems in the same transaction.
	ConfigurePubSubNode(ctx context.Context, host, username, node string, cfg PubSubNodeConfig, lim PubSubLimits) error
	// DeletePubSubNode removes a node, its items and its subscriptions.
	DeletePubSubNode(ctx context.Context, host, username, node string) error
	// PurgePubSubNode removes every item of a node and returns how many
	// it removed.
	PurgePubSubNode(ctx context.Context, host, username, node string) (int, error)

	// PublishPubSubItem adds it to a node as its newest item, replacing
	// the item with the same ID, and trims the node to its MaxItems.
	// ErrQuota (and nothing changed) if that adds to an account's total
	// and takes it beyond lim's. it.Published is stored as given.
	PublishPubSubItem(ctx context.Context, host, username, node string, it PubSubItem, lim PubSubLimits) error
	// RetractPubSubItem removes the item with that ID; ErrNotFound if
	// the node has none.
	RetractPubSubItem(ctx context.Context, host, username, node, id string) error
	// PubSubItems returns the items q selects, oldest published first
	// (the last one is the last published item). Items asked for by ID
	// that the node does not hold are left out.
	PubSubItems(ctx context.Context, host, username, node string, q PubSubItemsQuery) ([]PubSubItem, error)

	// PubSubUsage returns the account's totals (kept per node as items
	// change, so reading them costs a row per node).
	PubSubUsage(ctx context.Context, host, username string) (PubSubUsage, error)

	// PubSubSubscribe subscribes jid (a bare or full JID's string) to a
	// node; subscribing again is no change and no error. ErrQuota (and
	// nothing changed) if jid is new and the node has lim.Subscriptions
	// already.
	PubSubSubscribe(ctx context.Context, host, username, node, jid string, lim PubSubLimits) error
	// PubSubUnsubscribe removes jid's subscription to a node; ErrNotFound
	// if it has none (or there is no such node).
	PubSubUnsubscribe(ctx context.Context, host, username, node, jid string) error
	// PubSubSubscriptions returns a node's subscriptions, sorted by JID.
	PubSubSubscriptions(ctx context.Context, host, username, node string) ([]PubSubSubscription, error)
	// PubSubSubscriptionsOf returns the subscriptions to the account's
	// nodes of bare (a bare JID) and of its full JIDs, sorted by node,
	// then JID.
	PubSubSubscriptionsOf(ctx context.Context, host, username, bare string) ([]PubSubSubscription, error)
}
