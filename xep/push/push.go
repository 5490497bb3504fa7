// Package push is Push Notifications (XEP-0357, version 0.4.1) on the
// user's server: a client registers an app server's XMPP Push Service (its
// JID, the node provisioned for the device, and a publish-options form
// of credentials) with <enable/> (§5) and removes it with <disable/>
// (§6), both IQ sets to the user's own account; the server lists
// urn:xmpp:push:0 on the account's disco#info (§4.1), keeps the
// registrations in storage (storage.PushRegistrations, so that they
// survive restarts) and, when a message the user would want to know about
// cannot reach a connected client, publishes a notification to every
// concerned registration (§7): a pubsub publish from the user's bare JID
// to the app server, over federation when it is remote, carrying the
// urn:xmpp:push:summary form and the registration's publish options.
//
// When to notify (the XEP leaves it to the server; Prosody's
// mod_cloud_notify and ejabberd's mod_push are the references):
//   - a message kept offline (router.Delivered naming no session: offline
//     storage took it) notifies every registration of the account;
//   - a message handed to sessions (router.Delivered) notifies the
//     registration that each detached one (c2s.Client.Detached: stream
//     management keeps it while the phone has no connection) enabled, as
//     Prosody and ejabberd do for hibernated sessions, whatever the
//     account's other sessions got;
//   - only messages worth waking a phone for: chat, normal and groupchat
//     messages with a body, encrypted payloads (OMEMO, OpenPGP) and call
//     proposals (Jingle Message Initiation); not errors, headlines, chat
//     states, receipts or markers alone.
//
// What is sent: message-count (the messages notified since the device
// last enabled or resumed) always; last-message-sender (the sender's bare
// JID) and last-message-body only when the operator turns them on
// ([modules.push] include_sender, include_body), since the app server is
// a third party's. Per registration at most one notification is
// unanswered at a time and they are at least min_interval apart; what
// arrives meanwhile is counted and sent as one notification afterwards.
//
// Errors (§7.1, "Publish Errors"): the registration is disabled at the
// first error of type cancel or auth (item-not-found, not-authorized,
// forbidden…) as Prosody does; a transient error (type wait or modify,
// and remote-server-not-found or -timeout, which federation problems
// cause) is counted, and max_errors of them in a row disable it.
package push

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Namespaces.
const (
	NS                 = "urn:xmpp:push:0"
	nsPubsub           = "http://jabber.org/protocol/pubsub"
	nsData             = "jabber:x:data"
	formPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
	formSummary        = "urn:xmpp:push:summary"
)

// Limits on what an <enable/> may store.
const (
	maxNodeBytes = 1024
	maxFields    = 64
	// maxBodyRunes bounds last-message-body (include_body): push
	// services limit their payloads (FCM: 4 KB).
	maxBodyRunes = 512
	// replyTimeout is how long a notification may stay unanswered
	// before the next one is sent anyway.
	replyTimeout = time.Minute
	// idPrefix starts the id of every notification.
	idPrefix = "push-"
)

// Options are the module's: [modules.push].
type Options struct {
	// IncludeSender adds last-message-sender (the sender's bare JID).
	IncludeSender bool `toml:"include_sender"`
	// IncludeBody adds last-message-body (the message's text, cut at
	// 512 characters).
	IncludeBody bool `toml:"include_body"`
	// MinInterval is the least time between two notifications to one
	// registration.
	MinInterval config.Duration `toml:"min_interval"`
	// MaxRegistrations bounds the registrations of one account; enabling
	// one more removes the least recently enabled.
	MaxRegistrations int `toml:"max_registrations"`
	// MaxErrors is how many transient publish errors in a row disable a
	// registration.
	MaxErrors int `toml:"max_errors"`
}

// Validate implements config.Validator.
func (o *Options) Validate() []config.OptionsProblem {
	var p []config.OptionsProblem
	if d := o.MinInterval.Duration; d < 0 || d > time.Hour {
		p = append(p, config.OptionsProblem{Key: "min_interval", Message: fmt.Sprintf("must be between 0s and 1h, not %v", d)})
	}
	if o.MaxRegistrations < 1 || o.MaxRegistrations > 100 {
		p = append(p, config.OptionsProblem{Key: "max_registrations", Message: fmt.Sprintf("must be between 1 and 100, not %d", o.MaxRegistrations)})
	}
	if o.MaxErrors < 1 || o.MaxErrors > 1000 {
		p = append(p, config.OptionsProblem{Key: "max_errors", Message: fmt.Sprintf("must be between 1 and 1000, not %d", o.MaxErrors)})
	}
	return p
}

// DefaultOptions are the options of an empty [modules.push] table.
func DefaultOptions() *Options {
	return &Options{MinInterval: config.Duration{Duration: 10 * time.Second}, MaxRegistrations: 5, MaxErrors: 16}
}

// Module is XEP-0357 as a module. The operator may turn it off.
type Module struct {
	s atomic.Pointer[Service]
}

// Name implements module.Module.
func (*Module) Name() string { return "push" }

// Optional implements module.Optional.
func (*Module) Optional() {}

// Options implements module.Configurable.
func (*Module) Options() any { return DefaultOptions() }

// Start implements module.Module.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	s := &Service{Router: env.Router, Store: env.Store, Log: env.Log,
		Options: func() *Options { return env.Options().(*Options) }}
	s.Register(env.IQ, env.Bus)
	m.s.Store(s)
	return nil
}

// Stop implements module.Stopper: notifications waiting for their turn
// are dropped.
func (m *Module) Stop(context.Context) error {
	if s := m.s.Load(); s != nil {
		s.Stop()
	}
	return nil
}

// Service enables, disables and sends notifications. Set the exported
// fields, then call Register.
type Service struct {
	Router  router.Router
	Store   storage.PushRegistrations
	Options func() *Options
	Log     *slog.Logger
	// Now is the clock; nil: time.Now. Timers are time.AfterFunc's.
	Now func() time.Time

	mu sync.Mutex // guards the fields below
	// bySession is the registration each session enabled last (in
	// memory: a session does not outlive the process).
	bySession map[router.Session]enabled
	// states holds, per registration notified since it was last reset,
	// what is counted and what is in flight.
	states map[key]*state
	// pending maps the id of each unanswered notification to its
	// registration.
	pending map[string]key
	// removing holds the registrations being removed from storage after
	// an error, which are not notified meanwhile.
	removing map[key]bool
	stopped  bool
	// nSessions is len(bySession): while it is 0, delivered messages are
	// not looked at.
	nSessions atomic.Int64
}

// key names a registration: the account's bare JID, the push service's
// JID and the node.
type key struct{ account, jid, node string }

// enabled is a session's registration.
type enabled struct {
	key key
	reg storage.PushRegistration
}

// state is one registration's notifications.
type state struct {
	reg      storage.PushRegistration
	count    int    // messages since the last reset
	sender   string // of the last one, a bare JID
	body     string // of the last one, if any
	inFlight string // id of the unanswered notification, if any
	sentAt   time.Time
	due      bool // messages wait for the next notification
	timer    *time.Timer
	timerAt  time.Time // when timer fires
	errors   int       // transient errors in a row
}

// Register adds the IQ handlers, the account feature and the event
// handlers.
func (s *Service) Register(iq *dispatch.Mux, bus *event.Bus) {
	s.mu.Lock()
	s.bySession = make(map[router.Session]enabled)
	s.states = make(map[key]*state)
	s.pending = make(map[string]key)
	s.removing = make(map[key]bool)
	s.mu.Unlock()
	iq.AddAccountFeatures(NS)
	iq.Handle(NS, "enable", s.enable)
	iq.Handle(NS, "disable", s.disable)
	event.On(bus, event.Normal, "push", s.delivered)
	event.On(bus, event.Normal, "push", s.routing)
	event.On(bus, event.Normal, "push", s.detached)
	event.On(bus, event.Normal, "push", func(_ context.Context, e *c2s.SessionResumed) bool {
		s.resumed(e.Session)
		return false
	})
	event.On(bus, event.Normal, "push", func(_ context.Context, e *c2s.SessionEnded) bool {
		s.forgetSession(e.Session)
		return false
	})
}

// Stop stops the timers; nothing is sent afterwards.
func (s *Service) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, st := range s.states {
		if st.timer != nil {
			st.timer.Stop()
			st.timer = nil
		}
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// --- enable and disable (§5, §6) ---

var (
	errBadRequest = &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	errStorage    = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
)

func badRequest(text string) *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: text}
}

// enableEl is <enable/> and <disable/>.
type enableEl struct {
	JID   string     `xml:"jid,attr"`
	Node  string     `xml:"node,attr"`
	Forms []dataForm `xml:"jabber:x:data x"`
}

type dataForm struct {
	Type   string `xml:"type,attr"`
	Fields []struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	} `xml:"field"`
}

// request checks what <enable/> and <disable/> have in common: an IQ set
// to the sender's own account, with a push service's JID that is not the
// account itself.
func (s *Service) request(req dispatch.Request) (enableEl, jid.JID, error) {
	var el enableEl
	if req.ForServer() {
		// For the account, not the server (as carbons).
		return el, jid.JID{}, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	if !req.Set() {
		return el, jid.JID{}, errBadRequest
	}
	if err := xml.Unmarshal(req.Payload, &el); err != nil {
		return el, jid.JID{}, errBadRequest
	}
	if el.JID == "" {
		return el, jid.JID{}, badRequest("missing jid")
	}
	service, err := jid.Parse(el.JID)
	if err != nil {
		return el, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	}
	if service.Bare().Equal(req.Stanza.From.Bare()) {
		return el, jid.JID{}, badRequest("the push service cannot be the account itself")
	}
	return el, service, nil
}

// enable answers <enable/> (§5): the registration is stored (replacing
// the one of the same JID and node, whose options the last request
// sets) and remembered as the requesting session's.
func (s *Service) enable(ctx context.Context, req dispatch.Request) ([]byte, error) {
	el, service, err := s.request(req)
	if err != nil {
		return nil, err
	}
	// §5 says SHOULD; a publish needs a node (ejabberd refuses too).
	if el.Node == "" {
		return nil, badRequest("missing node")
	}
	if len(el.Node) > maxNodeBytes {
		return nil, badRequest("node too long")
	}
	if len(el.Forms) > 1 {
		return nil, badRequest("more than one form")
	}
	reg := storage.PushRegistration{JID: service.String(), Node: el.Node, Enabled: s.now().UTC()}
	if len(el.Forms) == 1 {
		f := el.Forms[0]
		if f.Type != "" && f.Type != "submit" {
			return nil, badRequest("the publish options must be a form of type submit")
		}
		if len(f.Fields) > maxFields {
			return nil, badRequest("too many publish options")
		}
		formType := ""
		for _, fld := range f.Fields {
			if fld.Var == "FORM_TYPE" {
				formType = strings.TrimSpace(strings.Join(fld.Values, ""))
				continue
			}
			if fld.Var == "" {
				return nil, badRequest("a publish option without var")
			}
			reg.Options = append(reg.Options, storage.PushOption{Var: fld.Var, Values: fld.Values})
		}
		if formType != formPublishOptions {
			return nil, badRequest("the form's FORM_TYPE must be " + formPublishOptions)
		}
	}
	account := req.Stanza.From.Bare()
	err = s.Store.PutPushRegistration(ctx, account.Domainpart(), account.Localpart(), reg, s.Options().MaxRegistrations)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	case err != nil:
		s.Log.Error("storing push registration failed", "jid", account.String(), "err", err)
		return nil, errStorage
	}
	k := key{account.String(), reg.JID, reg.Node}
	left, err := s.Store.PushRegistrations(ctx, account.Domainpart(), account.Localpart())
	if err != nil {
		s.Log.Error("reading push registrations failed", "jid", account.String(), "err", err)
	}
	s.mu.Lock()
	if sess := s.Router.Session(req.Stanza.From); sess != nil {
		if _, had := s.bySession[sess]; !had {
			s.nSessions.Add(1)
		}
		s.bySession[sess] = enabled{key: k, reg: reg}
	}
	if st := s.states[k]; st != nil {
		// The device is back: what it was told about is seen.
		st.count, st.errors, st.due, st.reg = 0, 0, false, reg
		s.dropIdle(k, st)
	}
	if err == nil {
		// Those removed beyond max_registrations.
		s.forget(account.String(), func(k key) bool {
			for _, r := range left {
				if r.JID == k.jid && r.Node == k.node {
					return false
				}
			}
			return true
		})
	}
	s.mu.Unlock()
	s.Log.Debug("push enabled", "jid", req.Stanza.From.String(), "service", reg.JID, "node", reg.Node, "options", len(reg.Options))
	return nil, nil
}

// disable answers <disable/> (§6): the registrations of the JID (and
// node, if given) are removed. Removing none is no error.
func (s *Service) disable(ctx context.Context, req dispatch.Request) ([]byte, error) {
	el, service, err := s.request(req)
	if err != nil {
		return nil, err
	}
	account := req.Stanza.From.Bare()
	n, err := s.Store.DeletePushRegistrations(ctx, account.Domainpart(), account.Localpart(), service.String(), el.Node)
	if err != nil {
		s.Log.Error("removing push registrations failed", "jid", account.String(), "err", err)
		return nil, errStorage
	}
	s.mu.Lock()
	s.forget(account.String(), func(k key) bool {
		return k.jid == service.String() && (el.Node == "" || k.node == el.Node)
	})
	s.mu.Unlock()
	s.Log.Debug("push disabled", "jid", req.Stanza.From.String(), "service", service.String(), "node", el.Node, "removed", n)
	return nil, nil
}

// forget drops, for the registrations of account that gone says are
// gone, every session's record and every state. s.mu is held.
func (s *Service) forget(account string, gone func(key) bool) {
	for sess, e := range s.bySession {
		if e.key.account == account && gone(e.key) {
			delete(s.bySession, sess)
			s.nSessions.Add(-1)
		}
	}
	for k, st := range s.states {
		if k.account == account && gone(k) {
			s.dropState(k, st)
		}
	}
}

// dropState forgets a registration's state. s.mu is held.
func (s *Service) dropState(k key, st *state) {
	if st.timer != nil {
		st.timer.Stop()
	}
	if st.inFlight != "" {
		delete(s.pending, st.inFlight)
	}
	delete(s.states, k)
}

// dropIdle forgets a state that holds nothing worth keeping. s.mu is
// held.
func (s *Service) dropIdle(k key, st *state) {
	if st.count == 0 && st.inFlight == "" && !st.due && st.errors == 0 {
		s.dropState(k, st)
	}
}

// forgetSession drops what a session that ended enabled: its
// registration stays stored and gets the account's offline
// notifications.
func (s *Service) forgetSession(sess router.Session) {
	if s.nSessions.Load() == 0 {
		return
	}
	s.mu.Lock()
	if _, ok := s.bySession[sess]; ok {
		delete(s.bySession, sess)
		s.nSessions.Add(-1)
	}
	s.mu.Unlock()
}

// resumed resets the count of the registration of a session that stream
// management resumed: the device is back.
func (s *Service) resumed(sess router.Session) {
	if s.nSessions.Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.bySession[sess]
	if !ok {
		return
	}
	if st := s.states[e.key]; st != nil {
		st.count = 0
		st.due = false
		s.dropIdle(e.key, st)
	}
}

// --- when to notify ---

// delivered notifies for a message kept offline (no session: every
// registration of the account) or handed to detached sessions (their
// registrations).
func (s *Service) delivered(ctx context.Context, e *router.Delivered) bool {
	m := e.Stanza
	if m.Kind != stanza.Message {
		return false
	}
	if len(e.Sessions) > 0 && s.nSessions.Load() == 0 {
		return false
	}
	if !Important(m) {
		return false
	}
	account := m.To.Bare()
	var regs []storage.PushRegistration
	if len(e.Sessions) == 0 {
		var err error
		regs, err = s.Store.PushRegistrations(ctx, account.Domainpart(), account.Localpart())
		if err != nil {
			s.Log.Error("reading push registrations failed", "jid", account.String(), "err", err)
			return false
		}
	} else {
		s.mu.Lock()
		for _, sess := range e.Sessions {
			c, ok := sess.(c2s.Client)
			if !ok || !c.Detached() {
				continue
			}
			if en, ok := s.bySession[sess]; ok && !containsReg(regs, en.reg) {
				regs = append(regs, en.reg)
			}
		}
		s.mu.Unlock()
	}
	if len(regs) > 0 {
		s.notify(ctx, account, regs, m)
	}
	return false
}

// detached notifies a session's registration when its connection broke
// with important messages it had not acknowledged or not yet been sent
// (c2s.SessionDetached): they reached it while it still looked
// connected, so delivered did not wake it for them.
func (s *Service) detached(ctx context.Context, e *c2s.SessionDetached) bool {
	if s.nSessions.Load() == 0 || len(e.Pending) == 0 {
		return false
	}
	s.mu.Lock()
	en, ok := s.bySession[e.Session]
	s.mu.Unlock()
	if !ok {
		return false
	}
	account := e.Session.JID().Bare()
	for _, raw := range e.Pending {
		m, err := stanza.ParseElement(raw)
		if err != nil || m.Kind != stanza.Message || !Important(m) {
			continue
		}
		s.notify(ctx, account, []storage.PushRegistration{en.reg}, m)
	}
	return false
}

func containsReg(regs []storage.PushRegistration, r storage.PushRegistration) bool {
	for _, x := range regs {
		if x.JID == r.JID && x.Node == r.Node {
			return true
		}
	}
	return false
}

// Namespaces of payloads that make a message worth a notification.
const (
	nsOMEMO       = "eu.siacs.conversations.axolotl" // XEP-0384 0.3
	nsOMEMO2      = "urn:xmpp:omemo:2"               // XEP-0384
	nsOX          = "urn:xmpp:openpgp:0"             // XEP-0373
	nsLegacyPGP   = "jabber:x:encrypted"             // XEP-0027
	nsJingleMsg   = "urn:xmpp:jingle-message:0"      // XEP-0353
	nsClient      = "jabber:client"
	nsServer      = "jabber:server"
	nsMUCUser     = "http://jabber.org/protocol/muc#user"
	nsConference  = "jabber:x:conference"
	nsStanzaError = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Important reports whether m is worth waking a device for: a chat,
// normal or groupchat message with a non-empty body, an encrypted
// payload, a call proposal, or an invitation; not an error or headline,
// and not one carrying only chat states, receipts, markers or other
// metadata.
func Important(m *stanza.Stanza) bool {
	switch m.Type {
	case "", "normal", "chat", "groupchat":
	default:
		return false
	}
	for c := range stanza.Children(m.Raw) {
		space := string(c.Space)
		switch {
		case string(c.Local) == "body" && (space == "" || space == nsClient || space == nsServer):
			if len(bodyText(c.Raw)) > 0 {
				return true
			}
		case c.Is(nsOMEMO, "encrypted"), c.Is(nsOMEMO2, "encrypted"), c.Is(nsOX, "openpgp"),
			c.Is(nsLegacyPGP, "x"), c.Is(nsJingleMsg, "propose"), c.Is(nsConference, "x"):
			return true
		case c.Is(nsMUCUser, "x"):
			if strings.Contains(string(c.Raw), "<invite") {
				return true
			}
		}
	}
	return false
}

// bodyText is the text of a <body/> element.
func bodyText(raw []byte) string {
	var b struct {
		Text string `xml:",chardata"`
	}
	if xml.Unmarshal(raw, &b) != nil {
		return ""
	}
	return strings.TrimSpace(b.Text)
}

// messageBody is the text of m's first body.
func messageBody(m *stanza.Stanza) string {
	for c := range stanza.Children(m.Raw) {
		space := string(c.Space)
		if string(c.Local) == "body" && (space == "" || space == nsClient || space == nsServer) {
			return bodyText(c.Raw)
		}
	}
	return ""
}

// --- notifications (§7) ---

// notify counts m for each of the registrations of account and sends
// what is due.
func (s *Service) notify(ctx context.Context, account jid.JID, regs []storage.PushRegistration, m *stanza.Stanza) {
	opts := s.Options()
	sender := m.From.Bare().String()
	body := ""
	if opts.IncludeBody {
		body = messageBody(m)
	}
	var out [][]byte
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	for _, r := range regs {
		k := key{account.String(), r.JID, r.Node}
		if s.removing[k] {
			continue
		}
		st := s.states[k]
		if st == nil {
			st = &state{}
			s.states[k] = st
		}
		st.reg = r
		st.count++
		st.sender, st.body = sender, body
		st.due = true
		if raw := s.maybeSend(k, st, opts); raw != nil {
			out = append(out, raw)
		}
	}
	s.mu.Unlock()
	s.send(ctx, out)
}

// maybeSend returns the notification of k if one may go now, and
// otherwise arms the timer that sends it when it may. s.mu is held.
func (s *Service) maybeSend(k key, st *state, opts *Options) []byte {
	if !st.due || s.stopped {
		return nil
	}
	now := s.now()
	next := st.sentAt.Add(opts.MinInterval.Duration)
	if st.inFlight != "" {
		if t := st.sentAt.Add(replyTimeout); t.After(next) {
			next = t
		}
	}
	if !st.sentAt.IsZero() && now.Before(next) {
		switch {
		case st.timer == nil:
			st.timer = time.AfterFunc(next.Sub(now), func() { s.fire(k) })
		case !st.timerAt.Equal(next):
			// The answer came: sooner than the reply timeout.
			st.timer.Reset(next.Sub(now))
		}
		st.timerAt = next
		return nil
	}
	if st.inFlight != "" {
		delete(s.pending, st.inFlight) // its answer came too late
	}
	st.inFlight = newID()
	st.sentAt = now
	st.due = false
	s.pending[st.inFlight] = k
	return notification(k, st, opts)
}

// fire sends the notification of k that waited for its time.
func (s *Service) fire(k key) {
	s.mu.Lock()
	st := s.states[k]
	if st == nil {
		s.mu.Unlock()
		return
	}
	st.timer = nil
	raw := s.maybeSend(k, st, s.Options())
	s.mu.Unlock()
	if raw != nil {
		s.send(context.Background(), [][]byte{raw})
	}
}

// send routes notifications.
func (s *Service) send(ctx context.Context, out [][]byte) {
	for _, raw := range out {
		st, err := stanza.ParseElement(raw)
		if err != nil {
			s.Log.Error("built a bad notification", "err", err)
			continue
		}
		s.Log.Debug("push notification", "jid", st.From.String(), "service", st.To.String(), "id", st.ID)
		s.Router.Route(ctx, st)
	}
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return idPrefix + hex.EncodeToString(b[:])
}

// notification is the publish of §7: from the account to the push
// service, the summary form in the item and the registration's publish
// options beside it.
func notification(k key, st *state, opts *Options) []byte {
	var b strings.Builder
	b.WriteString("<iq type='set' from='")
	b.WriteString(stanza.Escape(k.account))
	b.WriteString("' to='")
	b.WriteString(stanza.Escape(k.jid))
	b.WriteString("' id='")
	b.WriteString(st.inFlight)
	b.WriteString("'><pubsub xmlns='" + nsPubsub + "'><publish node='")
	b.WriteString(stanza.Escape(k.node))
	b.WriteString("'><item><notification xmlns='" + NS + "'><x xmlns='" + nsData + "' type='submit'>")
	field(&b, "FORM_TYPE", formSummary)
	field(&b, "message-count", strconv.Itoa(st.count))
	if opts.IncludeSender && st.sender != "" {
		field(&b, "last-message-sender", st.sender)
	}
	if opts.IncludeBody && st.body != "" {
		field(&b, "last-message-body", cut(st.body, maxBodyRunes))
	}
	b.WriteString("</x></notification></item></publish>")
	if len(st.reg.Options) > 0 {
		b.WriteString("<publish-options><x xmlns='" + nsData + "' type='submit'>")
		field(&b, "FORM_TYPE", formPublishOptions)
		for _, o := range st.reg.Options {
			field(&b, o.Var, o.Values...)
		}
		b.WriteString("</x></publish-options>")
	}
	b.WriteString("</pubsub></iq>")
	return []byte(b.String())
}

func field(b *strings.Builder, name string, values ...string) {
	b.WriteString("<field var='")
	b.WriteString(stanza.Escape(name))
	b.WriteString("'>")
	for _, v := range values {
		b.WriteString("<value>")
		b.WriteString(stanza.Escape(v))
		b.WriteString("</value>")
	}
	b.WriteString("</field>")
}

// cut returns s cut to n runes, with an ellipsis if it was longer.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// --- answers ---

// routing takes the push services' answers to notifications: IQ results
// and errors to an account's bare JID with the id of one in flight, from
// the service it went to.
func (s *Service) routing(ctx context.Context, e *router.Routing) bool {
	m := e.Stanza
	if e.Quiet || m.Kind != stanza.IQ || (m.Type != "result" && m.Type != "error") ||
		!strings.HasPrefix(m.ID, idPrefix) || m.To.Localpart() == "" || m.To.Resourcepart() != "" {
		return false
	}
	s.mu.Lock()
	k, ok := s.pending[m.ID]
	if !ok || k.account != m.To.String() || k.jid != m.From.String() {
		s.mu.Unlock()
		return false
	}
	delete(s.pending, m.ID)
	st := s.states[k]
	st.inFlight = ""
	opts := s.Options()
	disable := false
	if m.Type == "error" {
		typ, cond := errorOf(m.Raw)
		switch {
		case cond == stanza.RemoteServerNotFound || cond == stanza.RemoteServerTimeout ||
			typ == string(stanza.Wait) || typ == string(stanza.Modify) || typ == "":
			st.errors++
			disable = st.errors >= opts.MaxErrors
		default:
			disable = true
		}
		s.Log.Info("push notification refused", "jid", k.account, "service", k.jid, "node", k.node,
			"type", typ, "condition", cond, "errors", st.errors, "disable", disable)
	} else {
		st.errors = 0
		s.Log.Debug("push notification answered", "jid", k.account, "service", k.jid, "node", k.node, "id", m.ID)
	}
	var raw []byte
	if disable {
		s.forget(k.account, func(x key) bool { return x == k })
		s.removing[k] = true
	} else {
		raw = s.maybeSend(k, st, opts)
	}
	s.mu.Unlock()
	if disable {
		account := m.To
		if _, err := s.Store.DeletePushRegistrations(ctx, account.Domainpart(), account.Localpart(), k.jid, k.node); err != nil {
			s.Log.Error("removing push registration failed", "jid", k.account, "err", err)
		}
		s.mu.Lock()
		delete(s.removing, k)
		s.mu.Unlock()
	}
	if raw != nil {
		s.send(ctx, [][]byte{raw})
	}
	return true
}

// errorOf returns the type and condition of a stanza's error.
func errorOf(raw []byte) (typ, cond string) {
	for c := range stanza.Children(raw) {
		if string(c.Local) != "error" {
			continue
		}
		var e struct {
			Type string `xml:"type,attr"`
		}
		xml.Unmarshal(c.Raw, &e)
		for cc := range stanza.Children(c.Raw) {
			if string(cc.Space) == nsStanzaError && string(cc.Local) != "text" {
				return e.Type, string(cc.Local)
			}
		}
		return e.Type, ""
	}
	return "", ""
}
