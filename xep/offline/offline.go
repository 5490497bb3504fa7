// Package offline stores the messages of accounts that have no available
// resource and delivers them when the account comes back: Best Practices
// for Handling Offline Messages (XEP-0160 §2 process flow, §3 handling of
// message types, §4 the "msgoffline" disco feature), each delivered
// message carrying a Delayed Delivery stamp (XEP-0203 §4; XEP-0160 §2
// recommends it), and the storage hints of Message Processing Hints
// (XEP-0334 §4.2 no-store, §4.4 store).
//
// The router decides when a message is "offline" (RFC 6121 §8.5.2.2.1: a
// chat or normal message for an existing account with no available
// resource of non-negative priority) and calls Store; groupchat, headline
// and error messages never get here (XEP-0160 §3). Choices where the XEPs
// leave room, with ejabberd's mod_offline as the reference (Prosody's
// mod_offline stores everything it is given and has no limit):
//   - a message with no content worth keeping — nothing but chat states
//     (XEP-0085), <thread/>, delays, legacy message events and hints — is
//     dropped silently (XEP-0160 §3 says so for chat states; ejabberd's
//     default store_empty_body: unless_chat_state does the same);
//   - <no-store/> (and its 0.1 spelling <no-storage/>) drops the message
//     silently (XEP-0334 §4.2: not even stored temporarily); <store/>
//     keeps one that would otherwise be dropped and wins over <no-store/>
//     (XEP-0334 §4.4; ejabberd checks it first). <no-permanent-store/>
//     allows offline storage, which is temporary (XEP-0334 §4.1);
//   - a full queue bounces the message with <service-unavailable/>, as
//     XEP-0160 §2 prescribes (ejabberd answers <resource-constraint/>
//     instead), with a text saying why;
//   - a storage failure bounces it with <internal-server-error/>, type
//     wait, and is logged (ejabberd: "Database failure");
//   - a message whose sender the user has blocked since it was stored is
//     dropped at delivery (XEP-0191 §3.3; ejabberd applies privacy lists
//     there too).
package offline

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/presence"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Feature is the disco#info feature of offline storage (XEP-0160 §4).
const Feature = "msgoffline"

// Namespaces that decide whether a message is worth storing.
const (
	nsDelay      = "urn:xmpp:delay"                        // XEP-0203
	nsHints      = "urn:xmpp:hints"                        // XEP-0334
	nsChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	nsEvent      = "jabber:x:event"                        // XEP-0022
	nsClient     = "jabber:client"
)

// stampFormat is a XEP-0082 DateTime in UTC with milliseconds.
const stampFormat = "2006-01-02T15:04:05.000Z"

// Errors bounced to the sender.
var (
	errQueueFull = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable, Text: "offline message queue is full"}
	errNoAccount = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	errStorage   = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
)

// Storage is what the service needs of storage: the offline aggregate,
// and transactions (storage.Store.InTx) in which a delivery holds the
// account (storage.Tx.LockAccount), so that the database serialises
// deliveries to one account, also between servers sharing it.
type Storage interface {
	storage.Offline
	InTx(ctx context.Context, f func(tx storage.Tx) error) error
}

// Service stores and delivers offline messages. Set its fields before use.
type Service struct {
	// Storage keeps the messages. (Not "Store": that is the method the
	// router calls.)
	Storage Storage
	// Max returns the most messages kept for one account of host; 0 or
	// less means no limit. nil: no limit.
	Max func(host string) int
	// Now is the clock for the delay stamps; nil means time.Now.
	Now func() time.Time
	// Stopped reports whether a stored message would be stopped if it
	// were routed now (router.Routing, Quiet): one stored before its
	// sender was blocked (XEP-0191 §3.3: no stanza from a blocked JID is
	// delivered once the block is in force; ejabberd's mod_offline checks
	// the same) is dropped instead of delivered. nil: every message is
	// delivered.
	Stopped func(ctx context.Context, m *stanza.Stanza) bool
	Log     *slog.Logger

	// empty remembers the accounts whose offline store is empty (empty).
	empty emptySet
}

// maxEmpty bounds emptySet: the accounts remembered as having no
// offline message.
const maxEmpty = 100000

// emptySet is the accounts known, in this process, to have no offline
// message: found so by Deliver, with no message stored for them since.
// Deliver skips reading storage for them at available presence (XEP-0160
// §2: most logins find nothing), as a cache of what every store here
// changes: unknown (after a start, or beyond the bound) means read. A
// message another server sharing the database stores is not seen here
// until the account is unknown again: several servers on one database
// need their router to tell each other's offline modules (there is no
// such router yet: router.Local serves one process). At most maxEmpty
// accounts, an arbitrary one forgotten to make room. Safe for concurrent
// use.
type emptySet struct {
	mu sync.Mutex
	m  map[string]struct{}
	// stored counts the stores that ended, so that Deliver does not mark
	// an account empty from a read that one of them may have missed.
	stored uint64
	max    int // 0: maxEmpty
}

// known reports whether user is known to have no message; otherwise it
// returns the version to give mark after reading storage.
func (e *emptySet) known(user string) (bool, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.m[user]
	return ok, e.stored
}

// mark records that user had no message at a read that started at
// version v, unless a store ended since (it may have been missed; one
// that ends later unmarks).
func (e *emptySet) mark(user string, v uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stored != v {
		return
	}
	if e.m == nil {
		e.m = make(map[string]struct{})
	}
	limit := e.max
	if limit <= 0 {
		limit = maxEmpty
	}
	for k := range e.m {
		if len(e.m) < limit {
			break
		}
		delete(e.m, k)
	}
	e.m[user] = struct{}{}
}

// unmark forgets that user had no message: after a store for it has
// ended (committed or not), or the account's removal.
func (e *emptySet) unmark(user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stored++
	delete(e.m, user)
}

// Register advertises offline storage (XEP-0160 §4).
func (s *Service) Register(m *dispatch.Mux) {
	m.AddFeatures(Feature)
}

// Store keeps m, a message for an account with no available resource
// (its 'to' is that account's bare JID, or a full JID of it), for later
// delivery: nil when the message was stored or deliberately dropped,
// otherwise the error to bounce to the sender.
func (s *Service) Store(ctx context.Context, m *stanza.Stanza) *stanza.Error {
	user := m.To.Bare()
	if !worthStoring(m.Raw) {
		s.Log.Debug("offline message not stored", "jid", user.String(), "from", m.From.String(), "id", m.ID)
		return nil
	}
	limit := 0
	if s.Max != nil {
		limit = s.Max(user.Domainpart())
	}
	err := s.Storage.StoreOffline(ctx, user.Domainpart(), user.Localpart(), m.Raw, s.now().UTC(), limit)
	s.empty.unmark(user.String()) // once committed, so that Deliver reads it
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrQuota):
		s.Log.Debug("offline message queue full", "jid", user.String(), "max", limit)
		return errQueueFull
	case errors.Is(err, storage.ErrNotFound):
		// Removed since the router looked: as for any unknown account
		// (RFC 6121 §8.5.1).
		return errNoAccount
	default:
		s.Log.Error("storing offline message failed", "jid", user.String(), "err", err)
		return errStorage
	}
}

// Deliver hands the stored messages of user (a bare JID) to deliver, in
// the order they were stored, each with a XEP-0203 delay as its last
// child, then removes those delivered (and those from senders user has
// blocked since, which are dropped). It is meant for a resource that has
// just sent available presence with non-negative priority (XEP-0160 §2).
//
// When deliver returns false (the session's queue is full or closed),
// Deliver stops there: that message and the later ones stay stored for
// the next time. deliver must not block: it is called inside a
// transaction that holds the account (storage.Tx.LockAccount), in which
// the messages are read again, handed over and deleted; so deliveries to
// one account run one at a time, also on servers sharing the database,
// and the second of two resources coming online together finds nothing
// left. A message is deleted only after it was handed over, in the same
// transaction: if that fails to commit, the messages stay and are
// delivered again next time (at least once, never lost).
//
// The messages are first read outside any transaction: an account with
// none (most logins) costs one read and no write transaction, and
// whether a sender is blocked is asked then (Stopped may read storage,
// which a transaction must do only through itself). A message stored
// after that first read is left for the next available presence, as is
// one stored while a resource was coming online just after Deliver read.
//
// An account that had none when Deliver last looked, and has had none
// stored here since, costs no read at all (emptySet): the messages of a
// store that ends after the read are delivered at the next available
// presence, as before.
func (s *Service) Deliver(ctx context.Context, user jid.JID, deliver func(raw []byte) bool) error {
	host, name := user.Domainpart(), user.Localpart()
	key := user.String()
	empty, v := s.empty.known(key)
	if empty {
		return nil
	}
	seen, err := s.Storage.OfflineMessages(ctx, host, name)
	if err != nil {
		return fmt.Errorf("reading offline messages of %s: %w", user, err)
	}
	if len(seen) == 0 {
		s.empty.mark(key, v)
		return nil
	}
	blocked := make([]bool, len(seen))
	for i, m := range seen {
		blocked[i] = s.fromBlocked(ctx, user, m.Stanza)
	}
	var n, left int
	err = s.Storage.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.LockAccount(ctx, host, name); err != nil {
			return err
		}
		msgs, err := tx.OfflineMessages(ctx, host, name)
		if err != nil {
			return err
		}
		// msgs are those of seen another delivery has not taken
		// meanwhile, then any stored since: both in ID order.
		n, left = 0, len(msgs)
		j := 0
		for _, m := range msgs {
			for j < len(seen) && seen[j].ID < m.ID {
				j++
			}
			if j == len(seen) || seen[j].ID != m.ID {
				break // stored since the first read: not asked about
			}
			if !blocked[j] && !deliver(withDelay(m.Stanza, host, m.Stored)) {
				break
			}
			n++ // delivered, or dropped if blocked
		}
		if n == 0 {
			return nil
		}
		left -= n
		// Everything up to the last one handled: later messages have
		// higher IDs and stay.
		return tx.DeleteOffline(ctx, host, name, msgs[n-1].ID)
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil // the account was removed meanwhile
	case err != nil:
		return fmt.Errorf("delivering offline messages of %s: %w", user, err)
	}
	if left > 0 {
		s.Log.Debug("offline delivery stopped", "jid", user.String(), "delivered", n, "kept", left)
		return nil
	}
	// Everything stored when the transaction read was handed over and
	// deleted with it.
	s.empty.mark(key, v)
	return nil
}

// AccountDeleted forgets what is known of a removed account.
func (s *Service) AccountDeleted(user jid.JID) {
	s.empty.unmark(user.Bare().String())
}

// fromBlocked reports whether the stored message raw for user would now
// be stopped (Stopped).
func (s *Service) fromBlocked(ctx context.Context, user jid.JID, raw []byte) bool {
	if s.Stopped == nil {
		return false
	}
	m, err := stanza.ParseElement(raw)
	if err != nil {
		return false
	}
	return s.Stopped(ctx, m.WithAddresses(m.From, user))
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// worthStoring applies XEP-0334 and XEP-0160 §3 to a message's children:
// a <store/> hint keeps it, a <no-store/> hint drops it, and otherwise it
// is kept if it carries anything besides chat states, <thread/>, delays,
// legacy message events and hints. A message that cannot be read is kept.
func worthStoring(raw []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var store, noStore, content bool
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return true // a stored message is never lost to a parsing quirk
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 2 {
				continue
			}
			switch n := t.Name; {
			case n.Space == nsHints && n.Local == "store":
				store = true
			case n.Space == nsHints && (n.Local == "no-store" || n.Local == "no-storage"):
				noStore = true
			case n.Space == nsHints || n.Space == nsChatStates || n.Space == nsDelay || n.Space == nsEvent:
			case n.Local == "thread" && (n.Space == "" || n.Space == nsClient):
			default:
				content = true
			}
			if err := d.Skip(); err != nil {
				return true
			}
			depth--
		case xml.EndElement:
			depth--
			if depth == 0 {
				return store || (!noStore && content)
			}
		}
	}
}

// withDelay returns a copy of raw, one complete <message/> element, with
// <delay xmlns='urn:xmpp:delay' from='from' stamp='...'>Offline
// Storage</delay> as its last child (XEP-0203 §4, the example of XEP-0160
// §2). raw is either "<message ...>...</message>" or "<message .../>".
func withDelay(raw []byte, from string, stored time.Time) []byte {
	raw = bytes.TrimRight(raw, " \t\r\n")
	var delay bytes.Buffer
	delay.WriteString("<delay xmlns='" + nsDelay + "' from='")
	stanza.EscapeAttr(&delay, from)
	delay.WriteString("' stamp='")
	delay.WriteString(stored.UTC().Format(stampFormat))
	delay.WriteString("'>Offline Storage</delay>")

	out := make([]byte, 0, len(raw)+delay.Len()+16)
	// The last markup of a complete element is its end tag, or, for an
	// empty one written "<name/>", its start tag ('<' cannot appear in an
	// attribute value, so the last '<' starts that markup).
	last := bytes.LastIndexByte(raw, '<')
	if last >= 0 && last+1 < len(raw) && raw[last+1] == '/' {
		out = append(out, raw[:last]...)
		out = append(out, delay.Bytes()...)
		return append(out, raw[last:]...)
	}
	name := raw[1:]
	if i := bytes.IndexAny(name, " \t\r\n/>"); i >= 0 {
		name = name[:i]
	}
	out = append(out, bytes.TrimSuffix(raw, []byte("/>"))...)
	out = append(out, '>')
	out = append(out, delay.Bytes()...)
	out = append(out, "</"...)
	out = append(out, name...)
	return append(out, '>')
}

// Options are the module's: [modules.offline].
type Options struct {
	// MaxMessages bounds the messages kept for one account (XEP-0160
	// §2); beyond it the sender gets an error.
	MaxMessages int `toml:"max_messages"`
}

// Validate implements config.Validator.
func (o *Options) Validate() []config.OptionsProblem {
	if o.MaxMessages < 1 || o.MaxMessages > 100000 {
		return []config.OptionsProblem{{Key: "max_messages", Message: fmt.Sprintf("must be between 1 and 100000, not %d", o.MaxMessages)}}
	}
	return nil
}

// Module is XEP-0160 as a module: messages for an account with no
// available resource are stored (router.NoResource) and delivered when a
// resource becomes available with non-negative priority
// (presence.Available).
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "offline" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Options implements module.Configurable.
func (Module) Options() any { return &Options{MaxMessages: 1000} }

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	s := &Service{Storage: env.Store, Log: env.Log,
		Max: func(string) int { return env.Options().(*Options).MaxMessages },
		Stopped: func(ctx context.Context, m *stanza.Stanza) bool {
			return event.Fire(ctx, env.Bus, &router.Routing{Stanza: m, Quiet: true})
		},
	}
	s.Register(env.IQ)
	event.On(env.Bus, event.Last, "offline", func(ctx context.Context, e *router.NoResource) bool {
		e.Err = s.Store(ctx, e.Stanza)
		return true
	})
	event.On(env.Bus, event.Normal, "offline", func(_ context.Context, e *auth.AccountDeleted) bool {
		s.AccountDeleted(e.JID)
		return false
	})
	event.On(env.Bus, event.Normal, "offline", func(ctx context.Context, e *presence.Available) bool {
		if e.Priority < 0 {
			return false
		}
		if err := s.Deliver(ctx, e.Session.JID().Bare(), e.Session.Deliver); err != nil {
			env.Log.Error("offline delivery failed", "jid", e.Session.JID().String(), "err", err)
		}
		return false
	})
	return nil
}
