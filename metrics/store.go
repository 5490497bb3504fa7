package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starling-xmpp/starling/storage"
)

// timedOps are the operations Store times: those on the paths users wait
// on (login, roster, offline delivery, the archive, blocking, private
// storage and vCards, PEP, MUC archives, push) and whole transactions.
// The others pass through untimed.
var timedOps = []string{
	"Account", "CreateAccount", "SetKeys", "DeleteAccount",
	"RosterItems", "PutRosterItem",
	"StoreOffline", "OfflineMessages", "DeleteOffline",
	"AppendArchive", "QueryArchive", "AppendMUCArchive", "QueryMUCArchive",
	"BlockedJIDs", "Document", "PutDocument",
	"PubSubItems", "PublishPubSubItem", "PushRegistrations",
	"InTx",
}

// Store returns s with the latency of its main operations recorded in the
// histogram starling_storage_operation_duration_seconds, by operation.
// Every other method is s's own, untimed; so are those of the Tx an InTx
// hands out, the transaction being timed as a whole.
func (m *Metrics) Store(s storage.Store) storage.Store {
	t := &timedStore{Store: s, obs: make(map[string]prometheus.Observer, len(timedOps))}
	for _, op := range timedOps {
		t.obs[op] = m.storage.WithLabelValues(op)
	}
	return t
}

// timedStore is a storage.Store that times the operations of timedOps.
type timedStore struct {
	storage.Store
	obs map[string]prometheus.Observer // read-only
}

// since records the time since start for op.
func (t *timedStore) since(op string, start time.Time) {
	t.obs[op].Observe(time.Since(start).Seconds())
}

func (t *timedStore) Account(ctx context.Context, host, username string) (storage.Account, error) {
	defer t.since("Account", time.Now())
	return t.Store.Account(ctx, host, username)
}

func (t *timedStore) CreateAccount(ctx context.Context, a storage.Account) error {
	defer t.since("CreateAccount", time.Now())
	return t.Store.CreateAccount(ctx, a)
}

func (t *timedStore) SetKeys(ctx context.Context, host, username string, keys map[storage.Hash]storage.SCRAMKeys) error {
	defer t.since("SetKeys", time.Now())
	return t.Store.SetKeys(ctx, host, username, keys)
}

func (t *timedStore) DeleteAccount(ctx context.Context, host, username string) error {
	defer t.since("DeleteAccount", time.Now())
	return t.Store.DeleteAccount(ctx, host, username)
}

func (t *timedStore) RosterItems(ctx context.Context, host, username string) ([]storage.RosterItem, int64, error) {
	defer t.since("RosterItems", time.Now())
	return t.Store.RosterItems(ctx, host, username)
}

func (t *timedStore) PutRosterItem(ctx context.Context, host, username string, item storage.RosterItem) (int64, error) {
	defer t.since("PutRosterItem", time.Now())
	return t.Store.PutRosterItem(ctx, host, username, item)
}

func (t *timedStore) StoreOffline(ctx context.Context, host, username string, stanza []byte, stored time.Time, max int) error {
	defer t.since("StoreOffline", time.Now())
	return t.Store.StoreOffline(ctx, host, username, stanza, stored, max)
}

func (t *timedStore) OfflineMessages(ctx context.Context, host, username string) ([]storage.OfflineMessage, error) {
	defer t.since("OfflineMessages", time.Now())
	return t.Store.OfflineMessages(ctx, host, username)
}

func (t *timedStore) DeleteOffline(ctx context.Context, host, username string, through int64) error {
	defer t.since("DeleteOffline", time.Now())
	return t.Store.DeleteOffline(ctx, host, username, through)
}

func (t *timedStore) AppendArchive(ctx context.Context, entries []storage.ArchiveEntry) error {
	defer t.since("AppendArchive", time.Now())
	return t.Store.AppendArchive(ctx, entries)
}

func (t *timedStore) QueryArchive(ctx context.Context, host, username string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	defer t.since("QueryArchive", time.Now())
	return t.Store.QueryArchive(ctx, host, username, q)
}

func (t *timedStore) AppendMUCArchive(ctx context.Context, entries []storage.MUCArchiveEntry) error {
	defer t.since("AppendMUCArchive", time.Now())
	return t.Store.AppendMUCArchive(ctx, entries)
}

func (t *timedStore) QueryMUCArchive(ctx context.Context, service, name string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	defer t.since("QueryMUCArchive", time.Now())
	return t.Store.QueryMUCArchive(ctx, service, name, q)
}

func (t *timedStore) BlockedJIDs(ctx context.Context, host, username string) ([]string, error) {
	defer t.since("BlockedJIDs", time.Now())
	return t.Store.BlockedJIDs(ctx, host, username)
}

func (t *timedStore) Document(ctx context.Context, host, username, key string) ([]byte, error) {
	defer t.since("Document", time.Now())
	return t.Store.Document(ctx, host, username, key)
}

func (t *timedStore) PutDocument(ctx context.Context, host, username, key string, doc []byte) error {
	defer t.since("PutDocument", time.Now())
	return t.Store.PutDocument(ctx, host, username, key, doc)
}

func (t *timedStore) PubSubItems(ctx context.Context, host, username, node string, q storage.PubSubItemsQuery) ([]storage.PubSubItem, error) {
	defer t.since("PubSubItems", time.Now())
	return t.Store.PubSubItems(ctx, host, username, node, q)
}

func (t *timedStore) PublishPubSubItem(ctx context.Context, host, username, node string, it storage.PubSubItem, lim storage.PubSubLimits) error {
	defer t.since("PublishPubSubItem", time.Now())
	return t.Store.PublishPubSubItem(ctx, host, username, node, it, lim)
}

func (t *timedStore) PushRegistrations(ctx context.Context, host, username string) ([]storage.PushRegistration, error) {
	defer t.since("PushRegistrations", time.Now())
	return t.Store.PushRegistrations(ctx, host, username)
}

func (t *timedStore) InTx(ctx context.Context, f func(tx storage.Tx) error) error {
	defer t.since("InTx", time.Now())
	return t.Store.InTx(ctx, f)
}
