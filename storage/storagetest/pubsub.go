package storagetest

// The suite's tests of the pubsub aggregate (personal eventing nodes and
// items, XEP-0163).

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

var pubsubT0 = time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("CEST", 2*3600))

// pubItem returns an item published at pubsubT0 + i seconds.
func pubItem(id, payload string, i int) storage.PubSubItem {
	return storage.PubSubItem{ID: id, Publisher: "alice@example.org/phone", Payload: []byte(payload),
		Published: pubsubT0.Add(time.Duration(i) * time.Second)}
}

func createNode(t *testing.T, s storage.Store, user, node string, cfg storage.PubSubNodeConfig) {
	t.Helper()
	if err := s.CreatePubSubNode(t.Context(), host, user, node, cfg, storage.PubSubLimits{}); err != nil {
		t.Fatalf("CreatePubSubNode(%s, %q): %v", user, node, err)
	}
}

func publish(t *testing.T, s storage.Store, user, node string, it storage.PubSubItem, lim storage.PubSubLimits) {
	t.Helper()
	if err := s.PublishPubSubItem(t.Context(), host, user, node, it, lim); err != nil {
		t.Fatalf("PublishPubSubItem(%s, %q, %q): %v", user, node, it.ID, err)
	}
}

func sameItemsPubSub(got, want []storage.PubSubItem) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Publisher != w.Publisher || !bytes.Equal(g.Payload, w.Payload) ||
			!g.Published.Equal(w.Published.Truncate(time.Millisecond)) || g.Published.Location() != time.UTC {
			return false
		}
	}
	return true
}

func itemIDs(items []storage.PubSubItem) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = fmt.Sprintf("%s=%q@%s", it.ID, it.Payload, it.Published.Format(time.RFC3339Nano))
	}
	return ids
}

// checkPubItems checks the items q selects, and when q selects all, the
// node's counters too.
func checkPubItems(t *testing.T, s storage.Store, user, node string, q storage.PubSubItemsQuery, want ...storage.PubSubItem) {
	t.Helper()
	got, err := s.PubSubItems(t.Context(), host, user, node, q)
	if err != nil {
		t.Fatalf("PubSubItems(%s, %q, %+v): %v", user, node, q, err)
	}
	if !sameItemsPubSub(got, want) {
		t.Errorf("PubSubItems(%s, %q, %+v) =\n\t%q\nwant\n\t%q", user, node, q, itemIDs(got), itemIDs(want))
	}
	if len(q.IDs) > 0 || q.Last > 0 {
		return
	}
	n, err := s.PubSubNode(t.Context(), host, user, node)
	if err != nil {
		t.Fatalf("PubSubNode(%s, %q): %v", user, node, err)
	}
	var size int64
	for _, it := range want {
		size += int64(len(it.Payload))
	}
	if n.Items != len(want) || n.Bytes != size {
		t.Errorf("node %q of %s holds %d items, %d bytes; want %d, %d", node, user, n.Items, n.Bytes, len(want), size)
	}
}

func checkUsage(t *testing.T, s storage.Store, user string, want storage.PubSubUsage) {
	t.Helper()
	got, err := s.PubSubUsage(t.Context(), host, user)
	if err != nil || got != want {
		t.Errorf("PubSubUsage(%s) = %+v, %v; want %+v", user, got, err, want)
	}
}

func checkNodes(t *testing.T, s storage.Store, user string, want ...storage.PubSubNode) {
	t.Helper()
	got, err := s.PubSubNodes(t.Context(), host, user)
	if err != nil {
		t.Fatalf("PubSubNodes(%s): %v", user, err)
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Errorf("PubSubNodes(%s) =\n\t%+v\nwant\n\t%+v", user, got, want)
	}
	for _, w := range want {
		n, err := s.PubSubNode(t.Context(), host, user, w.Name)
		if err != nil || !reflect.DeepEqual(n, w) {
			t.Errorf("PubSubNode(%s, %q) = %+v, %v; want %+v", user, w.Name, n, err, w)
		}
	}
}

const (
	devices = "eu.siacs.conversations.axolotl.devicelist"
	avatar  = "urn:xmpp:avatar:data"
)

func testPubSub(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	all := storage.PubSubItemsQuery{}
	none := storage.PubSubLimits{}

	checkNodes(t, s, "alice")
	checkUsage(t, s, "alice", storage.PubSubUsage{})
	cfgD := storage.PubSubNodeConfig{AccessModel: storage.AccessOpen, PersistItems: true, MaxItems: 1,
		SendLastPublishedItem: "on_sub_and_presence", NotifyRetract: true}
	cfgA := storage.PubSubNodeConfig{AccessModel: storage.AccessWhitelist, MaxItems: storage.PubSubMaxItemsMax,
		SendLastPublishedItem: "never", Whitelist: []string{"zed@example.net", "bob@example.org"},
		Extra: map[string][]string{"pubsub#title": {"Avatar <&>"}, "pubsub#type": {}, "pubsub#multi": {"a", "b"}}}
	createNode(t, s, "alice", devices, cfgD)
	createNode(t, s, "alice", avatar, cfgA)
	if err := s.CreatePubSubNode(ctx, host, "alice", avatar, cfgD, none); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("CreatePubSubNode of an existing node: %v, want ErrConflict", err)
	}
	if err := s.CreatePubSubNode(ctx, host, "carol", avatar, cfgD, none); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("CreatePubSubNode for a missing account: %v, want ErrNotFound", err)
	}
	nodeA := storage.PubSubNode{Name: avatar, Config: cfgA}
	nodeD := storage.PubSubNode{Name: devices, Config: cfgD}
	checkNodes(t, s, "alice", nodeD, nodeA) // sorted by name
	checkNodes(t, s, "bob")
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 2})

	// A node that does not exist.
	for name, err := range map[string]error{
		"PubSubNode":                              func() error { _, err := s.PubSubNode(ctx, host, "alice", "nope"); return err }(),
		"ConfigurePubSubNode":                     s.ConfigurePubSubNode(ctx, host, "alice", "nope", cfgD, none),
		"DeletePubSubNode":                        s.DeletePubSubNode(ctx, host, "alice", "nope"),
		"PurgePubSubNode":                         func() error { _, err := s.PurgePubSubNode(ctx, host, "alice", "nope"); return err }(),
		"PublishPubSubItem":                       s.PublishPubSubItem(ctx, host, "alice", "nope", pubItem("1", "x", 0), none),
		"RetractPubSubItem":                       s.RetractPubSubItem(ctx, host, "alice", "nope", "1"),
		"PubSubItems":                             func() error { _, err := s.PubSubItems(ctx, host, "alice", "nope", all); return err }(),
		"PubSubItems of bob":                      func() error { _, err := s.PubSubItems(ctx, host, "bob", avatar, all); return err }(),
		"PublishPubSubItem for a missing account": s.PublishPubSubItem(ctx, host, "carol", avatar, pubItem("1", "x", 0), none),
	} {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}

	// Items in publication order; the last N and by ID.
	checkPubItems(t, s, "alice", avatar, all)
	i1, i2, i3 := pubItem("i1", "<data>one</data>", 0), pubItem("i2", "", 1), pubItem("i3", "<data>three</data>", 2)
	i2.Publisher = "alice@example.org"
	publish(t, s, "alice", avatar, i1, none)
	publish(t, s, "alice", avatar, i2, none)
	publish(t, s, "alice", avatar, i3, none)
	checkPubItems(t, s, "alice", avatar, all, i1, i2, i3)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{Last: 2}, i2, i3)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{Last: 1}, i3)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{Last: 10}, i1, i2, i3)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{IDs: []string{"i3", "nope", "i1", "i3"}}, i1, i3)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{IDs: []string{"nope"}})
	if err := s.PublishPubSubItem(ctx, host, "alice", avatar, pubItem("", "x", 9), none); err == nil {
		t.Errorf("PublishPubSubItem of an item without an ID succeeded")
	}
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 2, Items: 3, Bytes: 34})

	// Published again by ID: replaced and the newest.
	i1b := pubItem("i1", "<data>one again</data>", 3)
	i1b.Publisher = "alice@example.org/laptop"
	publish(t, s, "alice", avatar, i1b, none)
	checkPubItems(t, s, "alice", avatar, all, i2, i3, i1b)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{Last: 1}, i1b)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{IDs: []string{"i1"}}, i1b)
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 2, Items: 3, Bytes: 40})
	// The newest again: nothing moves.
	i1c := pubItem("i1", "<data>1</data>", 4)
	publish(t, s, "alice", avatar, i1c, none)
	checkPubItems(t, s, "alice", avatar, all, i2, i3, i1c)

	// Retracted by ID.
	if err := s.RetractPubSubItem(ctx, host, "alice", avatar, "i2"); err != nil {
		t.Fatalf("RetractPubSubItem: %v", err)
	}
	if err := s.RetractPubSubItem(ctx, host, "alice", avatar, "i2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RetractPubSubItem of a retracted item: %v, want ErrNotFound", err)
	}
	checkPubItems(t, s, "alice", avatar, all, i3, i1c)
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 2, Items: 2, Bytes: 32})

	// Configured: the new configuration, and the oldest beyond the new
	// max_items trimmed.
	cfgA2 := storage.PubSubNodeConfig{AccessModel: storage.AccessPresence, PersistItems: true, MaxItems: 1,
		SendLastPublishedItem: "on_sub", NotifyRetract: true, Extra: map[string][]string{"pubsub#title": {"Avatar"}}}
	if err := s.ConfigurePubSubNode(ctx, host, "alice", avatar, cfgA2, none); err != nil {
		t.Fatalf("ConfigurePubSubNode: %v", err)
	}
	checkPubItems(t, s, "alice", avatar, all, i1c)
	nodeA = storage.PubSubNode{Name: avatar, Config: cfgA2, Items: 1, Bytes: 14}
	checkNodes(t, s, "alice", nodeD, nodeA)
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 2, Items: 1, Bytes: 14})

	// Purged: the node stays, empty.
	d1, d2 := pubItem("current", "<list/>", 5), pubItem("current", "<list><device id='1'/></list>", 6)
	publish(t, s, "alice", devices, d1, none)
	publish(t, s, "alice", devices, d2, none)
	checkPubItems(t, s, "alice", devices, all, d2)
	if n, err := s.PurgePubSubNode(ctx, host, "alice", avatar); err != nil || n != 1 {
		t.Errorf("PurgePubSubNode = %d, %v; want 1", n, err)
	}
	checkPubItems(t, s, "alice", avatar, all)
	checkPubItems(t, s, "alice", avatar, storage.PubSubItemsQuery{Last: 1})
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 2, Items: 1, Bytes: int64(len(d2.Payload))})
	publish(t, s, "alice", avatar, i3, none)
	checkPubItems(t, s, "alice", avatar, all, i3)

	// Deleted: the node and its items go; created again, it is empty.
	if err := s.DeletePubSubNode(ctx, host, "alice", avatar); err != nil {
		t.Fatalf("DeletePubSubNode: %v", err)
	}
	if err := s.DeletePubSubNode(ctx, host, "alice", avatar); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeletePubSubNode of a deleted node: %v, want ErrNotFound", err)
	}
	if _, err := s.PubSubItems(ctx, host, "alice", avatar, all); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PubSubItems of a deleted node: %v, want ErrNotFound", err)
	}
	nodeD.Items, nodeD.Bytes = 1, int64(len(d2.Payload))
	checkNodes(t, s, "alice", nodeD)
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 1, Items: 1, Bytes: int64(len(d2.Payload))})
	createNode(t, s, "alice", avatar, cfgA)
	checkPubItems(t, s, "alice", avatar, all)
	publish(t, s, "alice", avatar, i3, none)
	checkPubItems(t, s, "alice", avatar, all, i3)
}

// testPubSubTrim publishes beyond a node's max_items.
func testPubSubTrim(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	all := storage.PubSubItemsQuery{}
	none := storage.PubSubLimits{}
	items := make([]storage.PubSubItem, 8)
	for i := range items {
		items[i] = pubItem(fmt.Sprintf("i%d", i), fmt.Sprintf("<p>%d</p>", i), i)
	}

	createNode(t, s, "alice", "three", storage.PubSubNodeConfig{AccessModel: storage.AccessPresence, MaxItems: 3})
	for _, it := range items[:5] {
		publish(t, s, "alice", "three", it, none)
	}
	checkPubItems(t, s, "alice", "three", all, items[2], items[3], items[4])
	// Republishing one the node holds removes no other.
	i2 := pubItem("i2", "<p>2 again</p>", 10)
	publish(t, s, "alice", "three", i2, none)
	checkPubItems(t, s, "alice", "three", all, items[3], items[4], i2)
	publish(t, s, "alice", "three", items[5], none)
	checkPubItems(t, s, "alice", "three", all, items[4], i2, items[5])
	// Republishing an item trimmed before adds it as the newest.
	publish(t, s, "alice", "three", items[0], none)
	checkPubItems(t, s, "alice", "three", all, i2, items[5], items[0])
	// A ceiling below max_items holds.
	publish(t, s, "alice", "three", items[6], storage.PubSubLimits{NodeItems: 2})
	checkPubItems(t, s, "alice", "three", all, items[0], items[6])

	// One item: the newest only (PEP's singleton nodes).
	createNode(t, s, "alice", "one", storage.PubSubNodeConfig{MaxItems: 1})
	for _, it := range items[:4] {
		publish(t, s, "alice", "one", it, none)
	}
	checkPubItems(t, s, "alice", "one", all, items[3])

	// "max": the ceiling, or every item without one.
	createNode(t, s, "alice", "max", storage.PubSubNodeConfig{MaxItems: storage.PubSubMaxItemsMax})
	for _, it := range items[:6] {
		publish(t, s, "alice", "max", it, none)
	}
	checkPubItems(t, s, "alice", "max", all, items[:6]...)
	publish(t, s, "alice", "max", items[6], storage.PubSubLimits{NodeItems: 4})
	checkPubItems(t, s, "alice", "max", all, items[3:7]...)
	// Configuring a ceiling's node trims it too.
	if err := s.ConfigurePubSubNode(ctx, host, "alice", "max", storage.PubSubNodeConfig{MaxItems: 10}, storage.PubSubLimits{NodeItems: 2}); err != nil {
		t.Fatalf("ConfigurePubSubNode: %v", err)
	}
	checkPubItems(t, s, "alice", "max", all, items[5:7]...)
	// Raising max_items keeps what there is.
	if err := s.ConfigurePubSubNode(ctx, host, "alice", "max", storage.PubSubNodeConfig{MaxItems: 10}, none); err != nil {
		t.Fatalf("ConfigurePubSubNode: %v", err)
	}
	checkPubItems(t, s, "alice", "max", all, items[5:7]...)

	// items[0] and items[6] of "three", items[3] of "one", items[5:7] of
	// "max": 8 bytes each.
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 3, Items: 5, Bytes: 40})
}

// testPubSubQuota checks the per-account limits.
func testPubSubQuota(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	all := storage.PubSubItemsQuery{}

	lim := storage.PubSubLimits{Nodes: 2}
	for _, n := range []string{"a", "b"} {
		if err := s.CreatePubSubNode(ctx, host, "alice", n, storage.PubSubNodeConfig{}, lim); err != nil {
			t.Fatalf("CreatePubSubNode(%q): %v", n, err)
		}
	}
	if err := s.CreatePubSubNode(ctx, host, "alice", "c", storage.PubSubNodeConfig{}, lim); !errors.Is(err, storage.ErrQuota) {
		t.Errorf("a third node with a limit of 2: %v, want ErrQuota", err)
	}
	if err := s.CreatePubSubNode(ctx, host, "bob", "c", storage.PubSubNodeConfig{}, lim); err != nil {
		t.Errorf("bob's first node: %v", err)
	}
	createNode(t, s, "alice", "one", storage.PubSubNodeConfig{MaxItems: 1})

	// Items: three in all.
	lim = storage.PubSubLimits{Items: 3, Bytes: 20}
	x1, x2, x3 := pubItem("1", "12345", 0), pubItem("2", "12345", 1), pubItem("3", "12345", 2)
	publish(t, s, "alice", "a", x1, lim)
	publish(t, s, "alice", "a", x2, lim)
	publish(t, s, "alice", "one", x3, lim)
	if err := s.PublishPubSubItem(ctx, host, "alice", "b", pubItem("4", "1", 3), lim); !errors.Is(err, storage.ErrQuota) {
		t.Errorf("a fourth item with a limit of 3: %v, want ErrQuota", err)
	}
	checkPubItems(t, s, "alice", "b", all)
	// A replacement adds no item, nor an item that pushes out another.
	x1b := pubItem("1", "1234", 4)
	publish(t, s, "alice", "a", x1b, lim)
	x4 := pubItem("4", "123456", 5)
	publish(t, s, "alice", "one", x4, lim)
	checkPubItems(t, s, "alice", "one", all, x4)
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 3, Items: 3, Bytes: 15})
	// Bytes: 20 in all.
	if err := s.PublishPubSubItem(ctx, host, "alice", "a", pubItem("2", "12345678901", 6), lim); !errors.Is(err, storage.ErrQuota) {
		t.Errorf("an item taking the bytes beyond the limit: %v, want ErrQuota", err)
	}
	checkPubItems(t, s, "alice", "a", all, x2, x1b)
	x2b := pubItem("2", "1234567890", 7)
	publish(t, s, "alice", "a", x2b, lim)
	checkPubItems(t, s, "alice", "a", all, x1b, x2b)
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 3, Items: 3, Bytes: 20})
	// Over the limits (lowered since): what does not add is allowed.
	lim = storage.PubSubLimits{Items: 1, Bytes: 5}
	publish(t, s, "alice", "a", pubItem("2", "123", 8), lim)
	if err := s.PublishPubSubItem(ctx, host, "alice", "a", pubItem("2", "1234", 9), lim); !errors.Is(err, storage.ErrQuota) {
		t.Errorf("a replacement adding bytes beyond the limit: %v, want ErrQuota", err)
	}
	// Another account's usage is its own.
	publish(t, s, "bob", "c", pubItem("1", "12345", 0), lim)
	checkUsage(t, s, "bob", storage.PubSubUsage{Nodes: 1, Items: 1, Bytes: 5})
}

// testPubSubAccounts checks that accounts' nodes of the same name are
// apart, on one host and across hosts.
func testPubSubAccounts(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	create(t, s, account("example.net", "alice", 3))
	ctx := t.Context()
	all := storage.PubSubItemsQuery{}
	none := storage.PubSubLimits{}
	cfg := storage.PubSubNodeConfig{AccessModel: storage.AccessOpen, MaxItems: 2}
	createNode(t, s, "alice", avatar, cfg)
	createNode(t, s, "bob", avatar, storage.PubSubNodeConfig{AccessModel: storage.AccessRoster, MaxItems: 5})
	if err := s.CreatePubSubNode(ctx, "example.net", "alice", avatar, storage.PubSubNodeConfig{AccessModel: storage.AccessWhitelist}, none); err != nil {
		t.Fatal(err)
	}
	a, b, c := pubItem("x", "alice's", 0), pubItem("x", "bob's", 1), pubItem("x", "other alice's", 2)
	publish(t, s, "alice", avatar, a, none)
	publish(t, s, "bob", avatar, b, none)
	if err := s.PublishPubSubItem(ctx, "example.net", "alice", avatar, c, none); err != nil {
		t.Fatal(err)
	}
	for _, it := range []storage.PubSubItem{pubItem("y", "y", 3), pubItem("z", "z", 4)} {
		publish(t, s, "bob", avatar, it, none)
	}
	checkPubItems(t, s, "alice", avatar, all, a)
	checkPubItems(t, s, "bob", avatar, all, b, pubItem("y", "y", 3), pubItem("z", "z", 4))
	if err := s.RetractPubSubItem(ctx, host, "alice", avatar, "x"); err != nil {
		t.Fatal(err)
	}
	checkPubItems(t, s, "bob", avatar, storage.PubSubItemsQuery{IDs: []string{"x"}}, b)
	if _, err := s.PurgePubSubNode(ctx, host, "bob", avatar); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePubSubNode(ctx, host, "alice", avatar); err != nil {
		t.Fatal(err)
	}
	got, err := s.PubSubItems(ctx, "example.net", "alice", avatar, all)
	if err != nil || !sameItemsPubSub(got, []storage.PubSubItem{c}) {
		t.Errorf("example.net's alice's items = %q, %v; want %q", itemIDs(got), err, itemIDs([]storage.PubSubItem{c}))
	}
	n, err := s.PubSubNode(ctx, "example.net", "alice", avatar)
	if err != nil || n.Config.AccessModel != storage.AccessWhitelist || n.Items != 1 {
		t.Errorf("example.net's alice's node = %+v, %v", n, err)
	}
	checkNodes(t, s, "bob", storage.PubSubNode{Name: avatar, Config: storage.PubSubNodeConfig{AccessModel: storage.AccessRoster, MaxItems: 5}})
	checkNodes(t, s, "alice")
}

// testPubSubTx publishes in transactions: a node created unless it
// exists, then an item (a conflict does not spoil the transaction), many
// at once on one node, so that the node's counters stay exact.
func testPubSubTx(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	cfg := storage.PubSubNodeConfig{MaxItems: 5}
	var wg sync.WaitGroup
	const goroutines, each = 4, 8
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				err := s.InTx(ctx, func(tx storage.Tx) error {
					if err := tx.LockAccount(ctx, host, "alice"); err != nil {
						return err
					}
					if err := tx.CreatePubSubNode(ctx, host, "alice", "n", cfg, storage.PubSubLimits{}); err != nil && !errors.Is(err, storage.ErrConflict) {
						return err
					}
					return tx.PublishPubSubItem(ctx, host, "alice", "n",
						pubItem(fmt.Sprintf("%d-%d", g, i%3), fmt.Sprintf("<p>%d</p>", i), g*each+i), storage.PubSubLimits{})
				})
				if err != nil {
					t.Errorf("publish in a transaction: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := s.PubSubItems(ctx, host, "alice", "n", storage.PubSubItemsQuery{})
	if err != nil || len(got) != 5 {
		t.Fatalf("PubSubItems = %q, %v; want 5", itemIDs(got), err)
	}
	var size int64
	for _, it := range got {
		size += int64(len(it.Payload))
	}
	checkUsage(t, s, "alice", storage.PubSubUsage{Nodes: 1, Items: 5, Bytes: size})

	// A transaction that fails leaves nothing.
	errStop := errors.New("stop")
	err = s.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.CreatePubSubNode(ctx, host, "alice", "m", cfg, storage.PubSubLimits{}); err != nil {
			return err
		}
		if err := tx.PublishPubSubItem(ctx, host, "alice", "m", pubItem("1", "x", 0), storage.PubSubLimits{}); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx: %v", err)
	}
	if _, err := s.PubSubNode(ctx, host, "alice", "m"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("node of a rolled back transaction: %v, want ErrNotFound", err)
	}
}

// fillPubSub stores a node with two items for user (what fill adds of
// the pubsub aggregate).
func fillPubSub(t *testing.T, s storage.Store, user string) error {
	t.Helper()
	ctx := t.Context()
	return errors.Join(
		s.CreatePubSubNode(ctx, host, user, avatar, storage.PubSubNodeConfig{AccessModel: storage.AccessPresence, Whitelist: []string{"a@example.net"}}, storage.PubSubLimits{}),
		s.PublishPubSubItem(ctx, host, user, avatar, pubItem("1", "<one/>", 0), storage.PubSubLimits{}),
		s.PublishPubSubItem(ctx, host, user, avatar, pubItem("2", "<two/>", 1), storage.PubSubLimits{}),
	)
}

// checkFilledPubSub checks what fillPubSub stored for user, or with
// empty, that user has no node.
func checkFilledPubSub(t *testing.T, s storage.Store, user string, empty bool) {
	t.Helper()
	if empty {
		checkNodes(t, s, user)
		checkUsage(t, s, user, storage.PubSubUsage{})
		return
	}
	checkNodes(t, s, user, storage.PubSubNode{Name: avatar, Items: 2, Bytes: 12,
		Config: storage.PubSubNodeConfig{AccessModel: storage.AccessPresence, Whitelist: []string{"a@example.net"}}})
	checkPubItems(t, s, user, avatar, storage.PubSubItemsQuery{}, pubItem("1", "<one/>", 0), pubItem("2", "<two/>", 1))
	checkUsage(t, s, user, storage.PubSubUsage{Nodes: 1, Items: 2, Bytes: 12})
}

func checkSubs(t *testing.T, s storage.Store, user, node string, want ...storage.PubSubSubscription) {
	t.Helper()
	got, err := s.PubSubSubscriptions(t.Context(), host, user, node)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("PubSubSubscriptions(%s, %q) = %v, %v; want %v", user, node, got, err, want)
	}
}

func checkSubsOf(t *testing.T, s storage.Store, user, bare string, want ...storage.PubSubSubscription) {
	t.Helper()
	got, err := s.PubSubSubscriptionsOf(t.Context(), host, user, bare)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("PubSubSubscriptionsOf(%s, %s) = %v, %v; want %v", user, bare, got, err, want)
	}
}

func subscribe(t *testing.T, s storage.Store, user, node, jid string, lim storage.PubSubLimits) {
	t.Helper()
	if err := s.PubSubSubscribe(t.Context(), host, user, node, jid, lim); err != nil {
		t.Fatalf("PubSubSubscribe(%s, %q, %s): %v", user, node, jid, err)
	}
}

// testPubSubSubscriptions checks explicit subscriptions: bare and full
// JIDs apart, one per JID and node, the per-node limit, the errors, and
// a node's deletion taking its subscriptions.
func testPubSubSubscriptions(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	none := storage.PubSubLimits{}
	cfg := storage.PubSubNodeConfig{AccessModel: storage.AccessOpen, MaxItems: 1}
	createNode(t, s, "alice", devices, cfg)
	createNode(t, s, "alice", avatar, cfg)
	createNode(t, s, "bob", devices, cfg)
	checkSubs(t, s, "alice", devices)
	checkSubsOf(t, s, "alice", "bob@example.org")

	sub := func(node, j string) storage.PubSubSubscription { return storage.PubSubSubscription{Node: node, JID: j} }
	subscribe(t, s, "alice", devices, "bob@example.org", none)
	subscribe(t, s, "alice", devices, "bob@example.org/desk", none)
	subscribe(t, s, "alice", devices, "bob@example.org", none) // again: no change
	subscribe(t, s, "alice", devices, "juliet@example.net/balcony", none)
	subscribe(t, s, "alice", avatar, "bob@example.org/phone", none)
	subscribe(t, s, "alice", avatar, "example.net", none)
	subscribe(t, s, "bob", devices, "bob@example.org", none)
	checkSubs(t, s, "alice", devices, sub(devices, "bob@example.org"), sub(devices, "bob@example.org/desk"), sub(devices, "juliet@example.net/balcony"))
	checkSubs(t, s, "alice", avatar, sub(avatar, "bob@example.org/phone"), sub(avatar, "example.net"))
	checkSubs(t, s, "bob", devices, sub(devices, "bob@example.org"))
	checkSubsOf(t, s, "alice", "bob@example.org",
		sub(devices, "bob@example.org"), sub(devices, "bob@example.org/desk"), sub(avatar, "bob@example.org/phone"))
	checkSubsOf(t, s, "alice", "juliet@example.net", sub(devices, "juliet@example.net/balcony"))
	checkSubsOf(t, s, "alice", "example.net", sub(avatar, "example.net"))
	checkSubsOf(t, s, "alice", "nobody@example.org")
	checkSubsOf(t, s, "carol", "bob@example.org")

	// The limit counts the node's subscriptions; a JID subscribed
	// already is no addition.
	lim := storage.PubSubLimits{Subscriptions: 3}
	if err := s.PubSubSubscribe(ctx, host, "alice", devices, "eve@example.org", lim); !errors.Is(err, storage.ErrQuota) {
		t.Errorf("a subscription beyond the limit: %v, want ErrQuota", err)
	}
	subscribe(t, s, "alice", devices, "bob@example.org/desk", lim)
	subscribe(t, s, "alice", avatar, "eve@example.org", lim)

	// Errors.
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"subscribe to a missing node", s.PubSubSubscribe(ctx, host, "alice", "none", "bob@example.org", none)},
		{"subscribe to a missing account's node", s.PubSubSubscribe(ctx, host, "carol", devices, "bob@example.org", none)},
		{"unsubscribe from a missing node", s.PubSubUnsubscribe(ctx, host, "alice", "none", "bob@example.org")},
		{"unsubscribe what is not subscribed", s.PubSubUnsubscribe(ctx, host, "alice", devices, "bob@example.org/phone")},
	} {
		if !errors.Is(tc.err, storage.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", tc.what, tc.err)
		}
	}
	if _, err := s.PubSubSubscriptions(ctx, host, "alice", "none"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PubSubSubscriptions of a missing node: %v, want ErrNotFound", err)
	}

	// Unsubscribing the bare JID leaves the full one.
	if err := s.PubSubUnsubscribe(ctx, host, "alice", devices, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	checkSubs(t, s, "alice", devices, sub(devices, "bob@example.org/desk"), sub(devices, "juliet@example.net/balcony"))

	// Purging and reconfiguring keep them; deleting the node takes them.
	if _, err := s.PurgePubSubNode(ctx, host, "alice", devices); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfigurePubSubNode(ctx, host, "alice", devices, storage.PubSubNodeConfig{AccessModel: storage.AccessPresence}, none); err != nil {
		t.Fatal(err)
	}
	checkSubs(t, s, "alice", devices, sub(devices, "bob@example.org/desk"), sub(devices, "juliet@example.net/balcony"))
	if err := s.DeletePubSubNode(ctx, host, "alice", devices); err != nil {
		t.Fatal(err)
	}
	createNode(t, s, "alice", devices, cfg)
	checkSubs(t, s, "alice", devices)
	checkSubsOf(t, s, "alice", "bob@example.org", sub(avatar, "bob@example.org/phone"))
	checkSubs(t, s, "bob", devices, sub(devices, "bob@example.org"))
}

// testPubSubSubscriptionsDelete checks that deleting an account removes
// the subscriptions to its nodes and those it made to others' nodes (by
// its bare and full JIDs), and no one else's: not those of an account of
// the same name on another host.
func testPubSubSubscriptionsDelete(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	create(t, s, account(host, "carol", 3))
	ctx := t.Context()
	none := storage.PubSubLimits{}
	cfg := storage.PubSubNodeConfig{AccessModel: storage.AccessOpen, MaxItems: 1}
	createNode(t, s, "alice", devices, cfg)
	createNode(t, s, "bob", devices, cfg)
	createNode(t, s, "carol", devices, cfg)
	subscribe(t, s, "alice", devices, "bob@example.org", none)
	subscribe(t, s, "alice", devices, "bob@example.org/desk", none)
	subscribe(t, s, "alice", devices, "bob@example.net", none)
	subscribe(t, s, "alice", devices, "carol@example.org", none)
	subscribe(t, s, "carol", devices, "bob@example.org/phone", none)
	subscribe(t, s, "carol", devices, "alice@example.org", none)
	subscribe(t, s, "bob", devices, "alice@example.org", none)
	subscribe(t, s, "bob", devices, "carol@example.org", none)

	if err := s.DeleteAccount(ctx, host, "bob"); err != nil {
		t.Fatal(err)
	}
	sub := func(j string) storage.PubSubSubscription { return storage.PubSubSubscription{Node: devices, JID: j} }
	checkSubs(t, s, "alice", devices, sub("bob@example.net"), sub("carol@example.org"))
	checkSubs(t, s, "carol", devices, sub("alice@example.org"))
	checkSubsOf(t, s, "bob", "alice@example.org")
	create(t, s, account(host, "bob", 4))
	createNode(t, s, "bob", devices, cfg)
	checkSubs(t, s, "bob", devices)
	checkSubsOf(t, s, "alice", "bob@example.org")
}
