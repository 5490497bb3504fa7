// Package muc implements multi-user chat (XEP-0045) as a service on a
// subdomain of each host (conference.<host>, XEP-0045 §6.1): rooms that
// users join with a nickname, where messages go to every occupant.
//
// What it does:
//   - the service: disco#info with the conference/text identity (§6.1),
//     disco#items listing the public rooms (§6.3), listed in each host's
//     disco#items (XEP-0030 §4);
//   - rooms: entering with a nickname (§7.2: a new room is created, locked
//     until its owner configures it or accepts the defaults, §10.1; the
//     errors for a locked room, an outcast, a members-only room, a wrong
//     password, a nickname in use, a full room), the occupants' presence
//     with their roles and affiliations (§7.2.3) and the status codes 110,
//     100, 170, 201, 210, 303; presence changes, nickname changes (§7.6),
//     leaving (§7.14); the subject (§7.2.15, §8.1); messages to all
//     occupants (§7.4) and private messages (§7.5); one occupant may be
//     joined from several sessions of its user, which share it;
//   - the owner's configuration form (§10.2, muc#roomconfig), instant rooms
//     (§10.1.2), destroying a room (§10.9);
//   - room disco#info with muc#roominfo (§6.4: the occupant count);
//   - persistent rooms (muc#roomconfig_persistentroom) kept in
//     storage.MUC with their configuration, subject and affiliations,
//     loaded at start; others gone when their last occupant leaves;
//   - mediated invitations and declines (§7.8.2, §7.8.3);
//   - room archives (XEP-0313 on the room's JID, mam.go), and message
//     moderation (XEP-0425, moderate.go);
//   - flood limits: an occupant's messages and presence changes, and a
//     room's, beyond their rates are refused with <policy-violation/>,
//     type wait;
//   - occupant-id (XEP-0421), self-ping (XEP-0410).
//
// A room's state is guarded by its lock, which is never held while
// stanzas are sent: each change computes what goes to whom, then sends it.
package muc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
)

// The XEP-0045 namespaces.
const (
	NS      = "http://jabber.org/protocol/muc"
	NSUser  = NS + "#user"
	NSAdmin = NS + "#admin"
	NSOwner = NS + "#owner"
	// NSOccupantID is XEP-0421's.
	NSOccupantID = "urn:xmpp:occupant-id:0"
	nsData       = "jabber:x:data"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsVCard      = "vcard-temp"
	nsRegister   = "jabber:iq:register"
)

// Options are [modules.muc].
type Options struct {
	// Subdomain is the service's label under each host: Subdomain.host.
	Subdomain string `toml:"subdomain"`
	// Create is who may create rooms: "anyone" (on this server or
	// another) or "local" (users of the host).
	Create string `toml:"create"`
	// MaxOccupants is the most occupants a room may have
	// (muc#roomconfig_maxusers' ceiling and default).
	MaxOccupants int `toml:"max_occupants"`
	// MaxRooms is the most rooms a service holds at once.
	MaxRooms int `toml:"max_rooms"`
	// Rooms are the defaults of a new room's configuration.
	Persistent bool `toml:"persistent"`
	Public     bool `toml:"public"`
	// OccupantRate and RoomRate bound the messages (to the room and
	// private) and presence changes of one occupant, and of all the
	// occupants of a room, per second; each may go five seconds' worth
	// over in a burst.
	OccupantRate int `toml:"occupant_rate"`
	RoomRate     int `toml:"room_rate"`
	// Archive is whether a new room archives its messages (XEP-0313;
	// persistent rooms only; muc#roomconfig_enablelogging).
	Archive bool `toml:"archive"`
	// Retention is how long room messages are kept; 0 keeps them
	// forever. PurgeInterval is how often older ones are removed.
	Retention     config.Duration `toml:"retention"`
	PurgeInterval config.Duration `toml:"purge_interval"`
	// MaxPageSize is the most messages one archive query returns.
	MaxPageSize int `toml:"max_page_size"`
}

// DefaultOptions are the defaults (Prosody's: anyone local creates
// public, temporary rooms).
func DefaultOptions() *Options {
	return &Options{Subdomain: "conference", Create: "local", MaxOccupants: 1000, MaxRooms: 10000, Public: true,
		OccupantRate: 10, RoomRate: 200, Archive: true,
		PurgeInterval: config.Duration{Duration: time.Hour}, MaxPageSize: 250}
}

// Validate implements config.Validator.
func (o *Options) Validate() []config.OptionsProblem {
	var p []config.OptionsProblem
	if o.Subdomain == "" || strings.ContainsAny(o.Subdomain, "@/ ") {
		p = append(p, config.OptionsProblem{Key: "subdomain", Message: fmt.Sprintf("must be a DNS label, not %q", o.Subdomain)})
	}
	switch o.Create {
	case "anyone", "local":
	default:
		p = append(p, config.OptionsProblem{Key: "create", Message: fmt.Sprintf("must be anyone or local, not %q", o.Create)})
	}
	if o.MaxOccupants < 1 {
		p = append(p, config.OptionsProblem{Key: "max_occupants", Message: "must be at least 1"})
	}
	if o.MaxRooms < 1 {
		p = append(p, config.OptionsProblem{Key: "max_rooms", Message: "must be at least 1"})
	}
	if o.OccupantRate < 1 {
		p = append(p, config.OptionsProblem{Key: "occupant_rate", Message: "must be at least 1"})
	}
	if o.RoomRate < 1 {
		p = append(p, config.OptionsProblem{Key: "room_rate", Message: "must be at least 1"})
	}
	if o.Retention.Duration < 0 {
		p = append(p, config.OptionsProblem{Key: "retention", Message: "must not be negative (0 keeps messages forever)"})
	}
	if o.PurgeInterval.Duration < time.Minute {
		p = append(p, config.OptionsProblem{Key: "purge_interval", Message: fmt.Sprintf("must be at least 1m, not %v", o.PurgeInterval.Duration)})
	}
	if o.MaxPageSize < 1 || o.MaxPageSize > 10000 {
		p = append(p, config.OptionsProblem{Key: "max_page_size", Message: fmt.Sprintf("must be between 1 and 10000, not %d", o.MaxPageSize)})
	}
	return p
}

// Module is XEP-0045 as a module.
type Module struct {
	services []*Service // set by Start
	stop     chan struct{}
}

// Name implements module.Module.
func (*Module) Name() string { return "muc" }

// Optional implements module.Optional.
func (*Module) Optional() {}

// Options implements module.Configurable.
func (*Module) Options() any { return DefaultOptions() }

// Stop implements module.Stopper: the room archives' writers finish.
func (m *Module) Stop(ctx context.Context) error {
	if m.stop != nil {
		close(m.stop)
	}
	var first error
	for _, s := range m.services {
		if s.writer != nil {
			if err := s.writer.Stop(ctx); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// ServiceDomains implements module.Servicer: Subdomain.host for each host.
func (*Module) ServiceDomains(cfg *config.Config, options any) []string {
	opts := options.(*Options)
	var ds []string
	for _, host := range cfg.Server.Hosts {
		ds = append(ds, opts.Subdomain+"."+host)
	}
	return ds
}

// Start implements module.Module: a service for each host.
func (m *Module) Start(ctx context.Context, env *module.Env) error {
	m.stop = make(chan struct{})
	opts := env.Options().(*Options)
	for _, host := range env.Config().Server.Hosts {
		domain := opts.Subdomain + "." + host
		s := &Service{
			Domain:  domain,
			Host:    host,
			Router:  env.Router,
			Store:   env.Store,
			Options: func() *Options { return env.Options().(*Options) },
			Log:     env.Log.With(slog.String("service", domain)),
		}
		s.writer = archive.NewWriter(s.appendArchive, s.Log)
		if err := s.load(ctx); err != nil {
			return fmt.Errorf("loading the rooms of %s: %w", domain, err)
		}
		go s.purgeLoop(m.stop)
		m.services = append(m.services, s)
		env.Router.AddService(domain, s)
		env.IQ.AddItem(dispatch.Item{JID: domain, Name: "Chat rooms"})
	}
	return nil
}
