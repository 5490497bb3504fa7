// Package last implements Last Activity (XEP-0012) as a server: the
// server's uptime when asked at its domain (§5), and for an account's bare
// JID the time since its last session ended with the status of its last
// unavailable presence (§3, "Offline User Query"), answered by the server
// on the account's behalf. Queries to full JIDs go to the clients (§4).
//
// Choices, with Prosody's mod_lastactivity / mod_uptime and ejabberd's
// mod_last as the references:
//   - only the account itself and contacts subscribed to its presence
//     (the account's roster item for them has subscription 'from' or
//     'both') get an answer; anyone else gets <forbidden/>, type auth (§3
//     MUST, §8; Prosody — ejabberd answers subscription-required);
//   - an account with an available resource: seconds='0' (§3 SHOULD;
//     ejabberd);
//   - nothing recorded yet: <service-unavailable/> (ejabberd; Prosody
//     answers seconds='0', which would claim the user just left);
//   - a set: <service-unavailable/>, as for other get-only queries here;
//   - the end of a session is recorded off its path (Writer): the times
//     are written in batches every second, answered from memory until
//     then, and written at the module's Stop; a crash loses at most the
//     times still waiting, never messages.
package last

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/presence"
	"github.com/starling-xmpp/starling/roster"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// NS is the XEP-0012 namespace and disco feature.
const NS = "jabber:iq:last"

// Service answers last activity queries and records the end of sessions.
type Service struct {
	Store storage.LastActivity
	// Start is when the server started (for its uptime).
	Start time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Subscribed reports whether requester (a bare JID) may see the
	// presence of contact (a local bare JID), normally through a
	// subscription (RFC 6121 §2.1.2.5: contact's roster item for requester
	// is 'from' or 'both'). nil: nobody but the account itself.
	Subscribed func(ctx context.Context, contact, requester jid.JID) bool
	// Online reports whether the account has an available resource. nil:
	// never.
	Online func(bare jid.JID) bool
	// Writer, if set, records the ends of sessions instead of Store, and
	// answers for those it has not written yet.
	Writer *Writer
}

// Register adds the last activity handler to m, for the server, the
// user's own account and other local accounts.
func (s *Service) Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	m.HandleForAccounts(NS, "query", s.handle)
}

// SessionEnded records that the last session of the account bare ended at
// at, with the status text of its last unavailable presence (may be "").
func (s *Service) SessionEnded(ctx context.Context, bare jid.JID, status string, at time.Time) error {
	if s.Writer != nil {
		return s.Writer.Set(ctx, bare, at, status)
	}
	return s.Store.SetLastActivity(ctx, bare.Domainpart(), bare.Localpart(), at, status)
}

// lastActivity is what was recorded for bare.
func (s *Service) lastActivity(ctx context.Context, bare jid.JID) (time.Time, string, error) {
	if s.Writer != nil {
		return s.Writer.Get(ctx, bare)
	}
	return s.Store.LastActivity(ctx, bare.Domainpart(), bare.Localpart())
}

func (s *Service) handle(ctx context.Context, req dispatch.Request) ([]byte, error) {
	if req.Set() {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	now := s.now()
	if req.ForServer() {
		return query(now.Sub(s.Start), ""), nil
	}
	contact, requester := req.To, req.Stanza.From.Bare()
	if !contact.Equal(requester) && (s.Subscribed == nil || !s.Subscribed(ctx, contact, requester)) {
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	if s.Online != nil && s.Online(contact) {
		return query(0, ""), nil
	}
	at, status, err := s.lastActivity(ctx, contact)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable,
			Text: "no last activity recorded"}
	case err != nil:
		return nil, err
	}
	return query(now.Sub(at), status), nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// query is the result: whole seconds elapsed (never negative, should the
// clock have gone back) and the status text.
func query(elapsed time.Duration, status string) []byte {
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + NS + "' seconds='")
	b.WriteString(strconv.FormatInt(int64(max(elapsed, 0)/time.Second), 10))
	if status == "" {
		b.WriteString("'/>")
		return b.Bytes()
	}
	b.WriteString("'>")
	stanza.EscapeAttr(&b, status)
	b.WriteString("</query>")
	return b.Bytes()
}

// Module is XEP-0012 as a module: it answers last activity queries (the
// server's uptime, an account's time since it was last available to those
// who see its presence) and records when an account's last resource goes
// unavailable (presence.AccountUnavailable), through a Writer that its
// Stop flushes.
type Module struct {
	w *Writer // set by Start
}

// Name implements module.Module.
func (*Module) Name() string { return "last" }

// Optional implements module.Optional.
func (*Module) Optional() {}

// Start implements module.Module.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	m.w = NewWriter(env.Store, DefaultInterval, env.Log)
	s := &Service{
		Store: env.Store, Start: time.Now(), Writer: m.w,
		Subscribed: func(ctx context.Context, contact, requester jid.JID) bool {
			sub, err := env.Roster.Subscription(ctx, contact, requester)
			return err == nil && roster.SeesPresence(sub)
		},
		Online: func(bare jid.JID) bool {
			for _, sess := range env.Router.Sessions(bare) {
				if ok, _ := sess.Available(); ok {
					return true
				}
			}
			return false
		},
	}
	s.Register(env.IQ)
	event.On(env.Bus, event.Normal, "last", func(ctx context.Context, e *presence.AccountUnavailable) bool {
		if err := s.SessionEnded(ctx, e.User, e.Status, time.Now()); err != nil {
			env.Log.Error("recording last activity failed", "jid", e.User.String(), "err", err)
		}
		return false
	})
	event.On(env.Bus, event.Normal, "last", func(_ context.Context, e *auth.AccountDeleted) bool {
		m.w.Forget(e.JID.Bare())
		return false
	})
	return nil
}

// Stop implements module.Stopper: the times waiting are written.
func (m *Module) Stop(ctx context.Context) error {
	if m.w == nil {
		return nil
	}
	return m.w.Stop(ctx)
}
