// Package register implements In-Band Registration (XEP-0077): account
// creation before authentication when the host allows it (§3.1), and for a
// logged-in user, password change (§3.3) and account removal (§3.2).
package register

import (
	"context"
	"errors"
	"log/slog"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// NS is the XEP-0077 namespace.
const NS = "jabber:iq:register"

// Service creates, changes and removes accounts.
type Service struct {
	Accounts storage.Accounts
	Log      *slog.Logger
	// Enabled tells whether a host allows registration before login.
	Enabled func(host string) bool
	// EndSessions ends every session of an account that was removed.
	EndSessions func(bare jid.JID)
	// Created runs after an account was registered; nil: nothing.
	Created func(bare jid.JID)
	// Iterations returns the PBKDF2 iteration count of passwords set now
	// (config auth.scram_iterations), asked at each registration or
	// password change so that a reload applies; nil means
	// auth.DefaultIterations.
	Iterations func() int
}

func (s *Service) iterations() int {
	if s.Iterations == nil {
		return auth.DefaultIterations
	}
	return s.Iterations()
}

// query is the jabber:iq:register payload.
type query struct {
	Username *string   `xml:"username"`
	Password *string   `xml:"password"`
	Remove   *struct{} `xml:"remove"`
}

// form is what a client fills in (XEP-0077 §3.1, example 2).
const form = "<query xmlns='" + NS + "'><instructions>Choose a username and password to register with this server.</instructions><username/><password/></query>"

// PreAuth answers a registration IQ on an encrypted but unauthenticated
// stream for host (XEP-0077 §3.1). The reply has no 'from' or 'to'.
func (s *Service) PreAuth(ctx context.Context, host string, iq *stanza.Stanza) []byte {
	if !s.Enabled(host) {
		return stanza.ErrorReply(iq, jid.JID{}, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
	if iq.Type == "get" {
		return stanza.Result(iq, jid.JID{}, []byte(form))
	}
	q, err := decode(iq)
	if err != nil || q.Remove != nil || q.Username == nil || q.Password == nil || *q.Username == "" || *q.Password == "" {
		// §3.1: missing information.
		return stanza.ErrorReply(iq, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable})
	}
	j, err := jid.New(*q.Username, host, "")
	if err != nil {
		return stanza.ErrorReply(iq, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
	}
	if err := passwordError(auth.CreateAccount(ctx, s.Accounts, j, *q.Password, s.iterations())); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return stanza.ErrorReply(iq, jid.JID{}, &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict})
		}
		if se, ok := errors.AsType[*stanza.Error](err); ok {
			return stanza.ErrorReply(iq, jid.JID{}, se) // a password refused
		}
		s.Log.Error("registration failed", "jid", j.String(), "err", err)
		return stanza.ErrorReply(iq, jid.JID{}, &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
	}
	s.Log.Info("account registered in-band", "jid", j.String())
	if s.Created != nil {
		s.Created(j)
	}
	return stanza.Result(iq, jid.JID{}, nil)
}

// Register adds the handler for logged-in users to m.
func (s *Service) Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	m.Handle(NS, "query", s.handle)
}

func (s *Service) handle(ctx context.Context, req dispatch.Request) ([]byte, error) {
	user := req.Stanza.From.Bare()
	if req.To.Localpart() != "" && !req.To.Equal(user) {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	if !req.Set() {
		// §3.2: an already registered user.
		return []byte("<query xmlns='" + NS + "'><registered/><username>" + stanza.Escape(user.Localpart()) + "</username></query>"), nil
	}
	var q query
	if err := stanza.Decode(req.Payload, &q); err != nil {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	switch {
	case q.Remove != nil:
		// §3.2: cancel the registration; the sessions end after the
		// answer.
		if err := s.Accounts.DeleteAccount(ctx, user.Domainpart(), user.Localpart()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		s.Log.Info("account removed in-band", "jid", user.String())
		req.AfterReply(func() { s.EndSessions(user) })
		return nil, nil
	case q.Password != nil && *q.Password != "":
		// §3.3: change the password; the username, if given, must be
		// the user's own.
		if q.Username != nil && *q.Username != user.Localpart() {
			if j, err := jid.New(*q.Username, user.Domainpart(), ""); err != nil || !j.Equal(user) {
				return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAllowed}
			}
		}
		if err := passwordError(auth.SetPassword(ctx, s.Accounts, user, *q.Password, s.iterations())); err != nil {
			return nil, err
		}
		s.Log.Info("password changed in-band", "jid", user.String())
		return nil, nil
	}
	return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
}

// passwordError answers a password PRECIS refuses not-acceptable
// (XEP-0077 §3.1); other errors are the server's.
func passwordError(err error) error {
	if errors.Is(err, auth.ErrInvalidPassword) {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "password not acceptable"}
	}
	return err
}

func decode(iq *stanza.Stanza) (query, error) {
	var q query
	_, payload, ok := iq.Payload()
	if !ok {
		return q, errors.New("no payload")
	}
	return q, stanza.Decode(payload, &q)
}

// Module is XEP-0077 as a module: registration before login where
// [registration] allows it (per host), and for a logged-in user the
// password change and the removal of the account. It fires
// auth.AccountCreated and auth.AccountDeleted (the account's sessions
// end). It cannot be turned
// off: [registration] enabled governs registration itself.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "register" }

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	s := &Service{
		Accounts:   env.Store,
		Log:        env.Log,
		Enabled:    func(host string) bool { return env.Config().RegistrationEnabled(host) },
		Iterations: func() int { return env.Config().Auth.SCRAMIterations },
		EndSessions: func(bare jid.JID) {
			event.Fire(context.Background(), env.Bus, &auth.AccountDeleted{JID: bare})
		},
		Created: func(bare jid.JID) {
			event.Fire(context.Background(), env.Bus, &auth.AccountCreated{JID: bare})
		},
	}
	s.Register(env.IQ)
	env.IQ.HandlePreAuth(NS, "query", s.PreAuth)
	return nil
}
