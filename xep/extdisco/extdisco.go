// Package extdisco is External Service Discovery (XEP-0215, version
// 1.0.0, urn:xmpp:extdisco:2) for STUN and TURN: the services the
// operator configured ([[modules.extdisco.services]]), which clients
// (Conversations, Dino, Monal, Gajim) use to set up audio and video
// calls through NATs. It answers <services/> (§3.1), filtered by 'type'
// when one is asked for (§3.2), and <credentials/> for named services
// (§3.3), both IQ gets to the server's domain, and lists the namespace in
// the server's disco#info (§4), services or not, since a reload may add
// them.
//
// When a reload (SIGHUP) changes the services, the changes (Diff) are
// pushed to every session that asked for <services/> and is still
// connected, as §3.2 allows ("pushing" the list to an entity that asked
// for it, whose presence the server knows): an IQ set of <services/> with
// each service added (action='add'), modified ('modify', with fresh
// credentials) or removed ('delete'), those of the type it asked for when
// it asked for one.
//
// A TURN service with a shared 'secret' gets time-limited credentials,
// computed for each answer by the "TURN REST API" scheme that coturn
// (use-auth-secret, static-auth-secret) and eturnal check without
// talking to the XMPP server: the username is "<expiry>:<bare JID>", the
// expiry in Unix seconds, the password base64(HMAC-SHA1(secret,
// username)), valid until the expiry ('expires', XEP-0082), 'ttl' after
// the request. Such a service is marked restricted='1' and its
// credentials are in the <services/> answer too, as Prosody's
// mod_turn_external and ejabberd's mod_stun_disco give them, since
// clients use them from there.
//
// A TURN service may instead have static credentials, a 'username' and a
// 'password' (TURN long-term credentials: coturn's user=, eturnal's
// credentials), given as they are to every user who asks, without
// 'expires', as Prosody's mod_external_services and ejabberd's
// mod_stun_disco allow; it is restricted='1' too. Anyone who may ask
// learns them, so a shared secret is the better choice where the TURN
// server supports it.
//
// Only the host's own users get an answer: a request from another
// server's user, or from a user of another host served here, is refused
// with <forbidden/> (type auth), as Prosody and ejabberd (its default
// access rule, local) do; a request to an account's bare JID, or without
// 'to', gets service-unavailable, as the XEP's requests go to the server.
package extdisco

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
)

// NS is the namespace of XEP-0215 version 0.7 and later.
const NS = "urn:xmpp:extdisco:2"

// DefaultTTL is how long credentials are valid when a service says no
// 'ttl', as Prosody's mod_turn_external.
const DefaultTTL = 24 * time.Hour

// Service is one configured STUN or TURN service.
type Service struct {
	// Type is stun, stuns, turn or turns (XEP-0215 §6's registry).
	Type string `toml:"type"`
	// Host is the service's host name or IP address.
	Host string `toml:"host"`
	// Port is its port; 0: 3478 (stun, turn) or 5349 (stuns, turns).
	Port int `toml:"port"`
	// Transport is udp or tcp; "": udp for stun and turn, tcp for stuns
	// and turns (TLS).
	Transport string `toml:"transport"`
	// Name is a label for people (the 'name' attribute); may be empty.
	Name string `toml:"name"`
	// Restricted marks the service as needing credentials (restricted='1')
	// though it has no secret here, for credentials given out otherwise.
	// A service with a secret or static credentials is restricted anyway.
	Restricted bool `toml:"restricted"`
	// Secret is the TURN server's shared secret (coturn's
	// static-auth-secret, eturnal's secret), from which credentials are
	// computed; turn and turns only.
	Secret string `toml:"secret"`
	// TTL is how long credentials are valid; 0: DefaultTTL. Only with a
	// secret.
	TTL config.Duration `toml:"ttl"`
	// Username and Password are static credentials (TURN long-term
	// credentials, coturn's user=, eturnal's credentials), given as they
	// are to every user instead of computed from a secret; turn and turns
	// only, both or neither, never with a secret.
	Username string `toml:"username"`
	Password string `toml:"password"`
}

// port is the service's port, its default when none is set.
func (s *Service) port() int {
	if s.Port != 0 {
		return s.Port
	}
	if s.tls() {
		return 5349
	}
	return 3478
}

// transport is the service's transport, its default when none is set.
func (s *Service) transport() string {
	if s.Transport != "" {
		return s.Transport
	}
	if s.tls() {
		return "tcp"
	}
	return "udp"
}

func (s *Service) tls() bool { return s.Type == "stuns" || s.Type == "turns" }

func (s *Service) ttl() time.Duration {
	if s.TTL.Duration != 0 {
		return s.TTL.Duration
	}
	return DefaultTTL
}

// Options are the module's: [modules.extdisco].
type Options struct {
	Services []Service `toml:"services"`
}

// DefaultOptions are the options of an empty table: no services.
func DefaultOptions() *Options { return &Options{Services: []Service{}} }

// Validate implements config.Validator.
func (o *Options) Validate() []config.OptionsProblem {
	var p []config.OptionsProblem
	problem := func(i int, key, format string, args ...any) {
		p = append(p, config.OptionsProblem{Path: []string{"services", strconv.Itoa(i + 1), key}, Message: fmt.Sprintf(format, args...)})
	}
	for i, s := range o.Services {
		switch s.Type {
		case "stun", "stuns", "turn", "turns":
		case "":
			problem(i, "type", "missing: write stun, stuns, turn or turns")
		default:
			problem(i, "type", "must be stun, stuns, turn or turns, not %q", s.Type)
		}
		if err := checkHost(s.Host); err != nil {
			problem(i, "host", "%v", err)
		}
		if s.Port < 0 || s.Port > 65535 {
			problem(i, "port", "must be between 1 and 65535 (0: the default), not %d", s.Port)
		}
		switch {
		case s.Transport != "" && s.Transport != "udp" && s.Transport != "tcp":
			problem(i, "transport", "must be udp or tcp, not %q", s.Transport)
		case s.Transport == "udp" && s.tls():
			problem(i, "transport", "%s is over TLS: tcp, not udp", s.Type)
		}
		turn := s.Type == "turn" || s.Type == "turns"
		if s.Secret != "" && !turn {
			problem(i, "secret", "only a turn or turns service has credentials")
		}
		switch {
		case (s.Username != "" || s.Password != "") && !turn:
			if s.Username != "" {
				problem(i, "username", "only a turn or turns service has credentials")
			}
			if s.Password != "" {
				problem(i, "password", "only a turn or turns service has credentials")
			}
		case (s.Username != "" || s.Password != "") && s.Secret != "":
			problem(i, "secret", "credentials are computed from a secret or given by username and password, not both: remove one")
		case s.Username != "" && s.Password == "":
			problem(i, "password", "missing: static credentials are a username and a password")
		case s.Password != "" && s.Username == "":
			problem(i, "username", "missing: static credentials are a username and a password")
		}
		switch d := s.TTL.Duration; {
		case d != 0 && s.Secret == "":
			problem(i, "ttl", "is the lifetime of credentials computed from a secret: set secret, or remove ttl")
		case d != 0 && (d < time.Minute || d > 30*24*time.Hour):
			problem(i, "ttl", "must be between 1m and 720h, not %v", d)
		}
		for j, t := range o.Services[:i] {
			if t.Type == s.Type && t.Host == s.Host && t.port() == s.port() && t.transport() == s.transport() {
				problem(i, "host", "the same service as services.%d (type, host, port and transport)", j+1)
			}
		}
	}
	return p
}

// checkHost reports what is wrong with host as a service's host: an IP
// address or a DNS name.
func checkHost(host string) error {
	if host == "" {
		return fmt.Errorf("missing: the service's host name or IP address")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("%q is too long for a host name", host)
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		ok := label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for _, c := range label {
			ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-')
		}
		if !ok {
			return fmt.Errorf("%q is not a host name or an IP address", host)
		}
	}
	return nil
}

// Credentials returns the "TURN REST API" credentials of user for a
// service with this secret, valid until expires: the username
// "<expires in Unix seconds>:<user>" and the password
// base64(HMAC-SHA1(secret, username)), which coturn with
// use-auth-secret and eturnal check.
func Credentials(secret, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sender delivers the stanzas the server builds to a session: the
// router's DeliverTo, false when no session has that full JID.
type Sender interface {
	DeliverTo(full jid.JID, raw []byte) bool
}

// Discovery answers the requests and pushes changes. Set Options (and
// Now, Sender), then Register.
type Discovery struct {
	// Options returns the options in force.
	Options func() *Options
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Sender delivers pushes; nil: none are sent.
	Sender Sender

	mu sync.Mutex
	// askers are the sessions that asked for <services/>, by full JID,
	// with the types they asked for ("": every type).
	askers map[string]*asker
	ids    uint64
}

type asker struct {
	jid   jid.JID
	types map[string]bool
}

// remember records that full asked for services of type typ: every type
// or one a service may have (no other can change, and a client's made-up
// types take no memory).
func (d *Discovery) remember(full jid.JID, typ string) {
	switch typ {
	case "", "stun", "stuns", "turn", "turns":
	default:
		return
	}
	if full.Resourcepart() == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.askers == nil {
		d.askers = make(map[string]*asker)
	}
	a := d.askers[full.String()]
	if a == nil {
		a = &asker{jid: full, types: make(map[string]bool)}
		d.askers[full.String()] = a
	}
	a.types[typ] = true
}

// Forget drops a session that ended: it gets no more pushes.
func (d *Discovery) Forget(full jid.JID) {
	d.mu.Lock()
	delete(d.askers, full.String())
	d.mu.Unlock()
}

// Change is one service of a push (XEP-0215 §3.2): added, modified or
// deleted.
type Change struct {
	Action  string // add, modify or delete
	Service Service
}

// Diff returns what changed from old to new, services identified by
// type, host, port and transport: those only in new are added, those only
// in old deleted, and those in both but configured otherwise (name,
// restricted, credentials) modified; in new's order, then the deleted in
// old's.
func Diff(old, new []Service) []Change {
	var out []Change
	for _, n := range new {
		i := slices.IndexFunc(old, n.same)
		switch {
		case i < 0:
			out = append(out, Change{"add", n})
		case old[i].norm() != n.norm():
			out = append(out, Change{"modify", n})
		}
	}
	for _, o := range old {
		if !slices.ContainsFunc(new, o.same) {
			out = append(out, Change{"delete", o})
		}
	}
	return out
}

// norm is s with its defaults filled in, to compare configurations.
func (s Service) norm() Service {
	s.Host = strings.ToLower(s.Host)
	s.Port, s.Transport, s.TTL.Duration = s.port(), s.transport(), s.ttl()
	return s
}

// same reports whether s and t are the same service: type, host, port
// and transport.
func (s Service) same(t Service) bool {
	return s.Type == t.Type && strings.EqualFold(s.Host, t.Host) && s.port() == t.port() && s.transport() == t.transport()
}

// Push sends changes to every session that asked for services and is
// still connected (XEP-0215 §3.2: pushes only to an entity that asked,
// and whose presence the server knows), as an IQ set from its host:
// those of the type it asked for, or every change to one that asked for
// every type, with fresh credentials for added and modified services. A
// session that is gone is forgotten. It returns how many pushes went
// out.
func (d *Discovery) Push(changes []Change) int {
	if d.Sender == nil || len(changes) == 0 {
		return 0
	}
	d.mu.Lock()
	askers := make([]*asker, 0, len(d.askers))
	for _, a := range d.askers {
		askers = append(askers, &asker{jid: a.jid, types: maps.Clone(a.types)})
	}
	d.mu.Unlock()
	slices.SortFunc(askers, func(a, b *asker) int { return strings.Compare(a.jid.String(), b.jid.String()) })
	now := d.now()
	sent := 0
	for _, a := range askers {
		types := slices.Sorted(maps.Keys(a.types))
		if a.types[""] {
			types = []string{""}
		}
		for _, typ := range types {
			var b bytes.Buffer
			n := 0
			for _, c := range changes {
				if typ != "" && c.Service.Type != typ {
					continue
				}
				if n == 0 {
					d.mu.Lock()
					d.ids++
					id := "extdisco-" + strconv.FormatUint(d.ids, 10)
					d.mu.Unlock()
					b.WriteString("<iq type='set'")
					writeAttr(&b, "from", a.jid.Domainpart())
					writeAttr(&b, "to", a.jid.String())
					writeAttr(&b, "id", id)
					b.WriteString("><services xmlns='" + NS + "'")
					writeAttr(&b, "type", typ)
					b.WriteString(">")
				}
				n++
				if c.Action == "delete" {
					b.WriteString("<service action='delete'")
					writeAttr(&b, "type", c.Service.Type)
					writeAttr(&b, "host", c.Service.Host)
					writeAttr(&b, "port", strconv.Itoa(c.Service.port()))
					writeAttr(&b, "transport", c.Service.transport())
					b.WriteString("/>")
					continue
				}
				writeService(&b, &c.Service, c.Action, a.jid.Bare(), now)
			}
			if n == 0 {
				continue
			}
			b.WriteString("</services></iq>")
			if !d.Sender.DeliverTo(a.jid, b.Bytes()) {
				d.Forget(a.jid)
				break
			}
			sent++
		}
	}
	return sent
}

func (d *Discovery) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Register adds the handlers of <services/> and <credentials/> to m, and
// the feature: the server supports the protocol (§4) whether or not
// services are configured now, as a reload may add them.
func (d *Discovery) Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	m.Handle(NS, "services", d.services)
	m.Handle(NS, "credentials", d.credentials)
}

// allowed checks that req may have an answer: addressed to the server,
// from a user of that host.
func allowed(req dispatch.Request) error {
	if req.Set() {
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
	}
	if !req.ForServer() {
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	from := req.Stanza.From
	if from.Localpart() == "" || from.Domainpart() != req.To.Domainpart() {
		return &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	return nil
}

// services answers §3.1 and §3.2: every service, or those of the type
// asked for.
func (d *Discovery) services(_ context.Context, req dispatch.Request) ([]byte, error) {
	if err := allowed(req); err != nil {
		return nil, err
	}
	var q struct {
		Type string `xml:"type,attr"`
	}
	if err := stanza.Decode(req.Payload, &q); err != nil {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	var b bytes.Buffer
	b.WriteString("<services xmlns='" + NS + "'")
	writeAttr(&b, "type", q.Type)
	b.WriteString(">")
	now := d.now()
	for _, s := range d.Options().Services {
		if q.Type == "" || q.Type == s.Type {
			writeService(&b, &s, "", req.Stanza.From.Bare(), now)
		}
	}
	b.WriteString("</services>")
	d.remember(req.Stanza.From, q.Type)
	return b.Bytes(), nil
}

// credentials answers §3.3: the services named by type and host (and
// port, when given), with their credentials.
func (d *Discovery) credentials(_ context.Context, req dispatch.Request) ([]byte, error) {
	if err := allowed(req); err != nil {
		return nil, err
	}
	var q struct {
		Services []struct {
			Type string `xml:"type,attr"`
			Host string `xml:"host,attr"`
			Port string `xml:"port,attr"`
		} `xml:"service"`
	}
	if err := stanza.Decode(req.Payload, &q); err != nil || len(q.Services) == 0 {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	var matched []*Service
	services := d.Options().Services
	for _, want := range q.Services {
		port := 0
		if want.Port != "" {
			p, err := strconv.Atoi(want.Port)
			if err != nil {
				return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
			}
			port = p
		}
		if want.Type == "" || want.Host == "" {
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		for i := range services {
			s := &services[i]
			if s.Type == want.Type && strings.EqualFold(s.Host, want.Host) && (port == 0 || port == s.port()) &&
				!slices.Contains(matched, s) {
				matched = append(matched, s)
			}
		}
	}
	if len(matched) == 0 {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	var b bytes.Buffer
	b.WriteString("<credentials xmlns='" + NS + "'>")
	now := d.now()
	for _, s := range matched {
		writeService(&b, s, "", req.Stanza.From.Bare(), now)
	}
	b.WriteString("</credentials>")
	return b.Bytes(), nil
}

// writeService writes s as a <service/> (XEP-0215 §5), with its static
// credentials, or credentials for user computed at now when it has a
// secret; action, when not empty, is a push's (§3.2).
func writeService(b *bytes.Buffer, s *Service, action string, user jid.JID, now time.Time) {
	b.WriteString("<service")
	writeAttr(b, "action", action)
	writeAttr(b, "type", s.Type)
	writeAttr(b, "host", s.Host)
	writeAttr(b, "port", strconv.Itoa(s.port()))
	writeAttr(b, "transport", s.transport())
	writeAttr(b, "name", s.Name)
	if s.Restricted || s.Secret != "" || s.Username != "" {
		writeAttr(b, "restricted", "1")
	}
	if s.Username != "" {
		writeAttr(b, "username", s.Username)
		writeAttr(b, "password", s.Password)
	}
	if s.Secret != "" {
		expires := now.Add(s.ttl()).Truncate(time.Second)
		username, password := Credentials(s.Secret, user.String(), expires)
		writeAttr(b, "username", username)
		writeAttr(b, "password", password)
		writeAttr(b, "expires", expires.UTC().Format(time.RFC3339))
	}
	b.WriteString("/>")
}

// writeAttr writes name='value', unless value is empty.
func writeAttr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(" " + name + "='")
	stanza.EscapeAttr(b, value)
	b.WriteString("'")
}

// Module is XEP-0215 as a module. The operator may turn it off; without
// services it answers an empty list. On reload, the sessions that asked
// for services get the changes pushed.
type Module struct {
	// Now is the clock; nil: time.Now. For tests.
	Now func() time.Time

	mu   sync.Mutex
	d    *Discovery
	env  *module.Env
	last []Service
}

// Name implements module.Module.
func (*Module) Name() string { return "extdisco" }

// Optional implements module.Optional.
func (*Module) Optional() {}

// Options implements module.Configurable.
func (*Module) Options() any { return DefaultOptions() }

// Start implements module.Module.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	d := &Discovery{Options: func() *Options { return env.Options().(*Options) }, Now: m.Now, Sender: env.Router}
	d.Register(env.IQ)
	event.On(env.Bus, event.Normal, "extdisco", func(_ context.Context, e *c2s.SessionEnded) bool {
		d.Forget(e.Session.JID())
		return false
	})
	m.mu.Lock()
	m.d, m.env, m.last = d, env, d.Options().Services
	m.mu.Unlock()
	return nil
}

// Reloaded implements module.Reloader: the services that changed are
// pushed to the sessions that asked for them.
func (m *Module) Reloaded() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.d == nil {
		return
	}
	services := m.d.Options().Services
	changes := Diff(m.last, services)
	m.last = services
	if n := m.d.Push(changes); n > 0 && m.env.Log != nil {
		m.env.Log.Info("services pushed", "changes", len(changes), "pushes", n)
	}
}
