// Package mam is Message Archive Management (XEP-0313 1.1, namespace
// urn:xmpp:mam:2, and the urn:xmpp:mam:1 and urn:xmpp:mam:0 of earlier
// versions that older clients send) as a module, with Unique and Stable
// Stanza IDs (XEP-0359) and Result Set Management (XEP-0059) for paging.
//
// What is archived (XEP-0313 §3.1; the choices of Prosody's mod_mam and
// ejabberd's mod_mam): chat and normal messages (a missing or unknown type
// is normal) with a <body/> or a <store/> hint (XEP-0334 §4.4), never one
// with <no-store/> or <no-permanent-store/>, never errors, headlines,
// groupchat messages (rooms keep their own archives) or carbons. Each is
// archived once per account and direction: a message for a local account
// in that account's archive when it is routed (router.Routing — from a
// local session, another server or the server, delivered, stored offline
// or bounced alike), and a message a local user sends to anyone else in
// the sender's archive when it is sent (c2s.ClientStanza); a message to
// oneself once. Every archived message is stamped with <stanza-id
// by='account' id='…'/> (XEP-0359 §3), after any stanza-id claiming to
// be the account's was removed (§3.3), so that the delivered message, an
// offline one and the received carbons carry it; the sent carbons get the
// sender's (c2s routes the message without it). The stanza-id is the
// archive ID (storage.ArchivedMessage.ID: Unix microseconds made unique).
// Preferences (XEP-0441, which is XEP-0313's §6 before 0.7, in the same
// namespaces) decide per account: a default of always, never or roster,
// and JIDs always or never archived.
//
// Writes keep the message path fast: the message is stamped and queued,
// and a writer goroutine writes what is queued in one transaction (group
// commit), before a query of the archive is answered and at Stop.
//
// Queries (§4): the data form (with, start, end, and the #extended
// before-id, after-id and ids), RSM max/after/before (index 0 only),
// <flip-page/>; the results as <message><result/></message> to the
// querying resource, then the <fin/> with complete and the RSM set
// (urn:xmpp:mam:0: an empty IQ result, the results, then <fin/> in a
// message, as that version had it; its plain <with/>, <start/>, <end/>
// children are accepted too). A page is at most max_page_size messages
// (a bigger max is clamped, as Prosody does) and small enough for the
// session's queue. Only one's own archive can be queried; another
// account's is forbidden. RSM <count/> is given when the selection has
// at most 1,000 messages (XEP-0313 §4.1.3 makes it optional; counting a
// big archive is what makes queries slow).
//
// Retention: messages older than the host's retention are purged in the
// background.
//
// The protocol itself (query parsing, result messages, <fin/>, the form,
// the writer and archive IDs) is package archive's, shared with room
// archives; this module has the rules of accounts' archives: what is
// archived, preferences, who may query, options.
package mam

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Extended is the disco feature of the before-id, after-id and ids fields
// and <flip-page/> (XEP-0313 §7.1).
const Extended = archive.NS2 + "#extended"

var errBadRequest = &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}

// Options are the [modules.mam] table.
type Options struct {
	// Default is the archiving default of accounts that set none:
	// always, roster or never.
	Default string `toml:"default"`
	// Retention is how long messages are kept; 0 keeps them forever.
	Retention config.Duration `toml:"retention"`
	// PurgeInterval is how often messages past retention are removed.
	PurgeInterval config.Duration `toml:"purge_interval"`
	// MaxPageSize is the most messages one query returns.
	MaxPageSize int `toml:"max_page_size"`
	// Hosts overrides the options above per virtual host.
	Hosts map[string]HostOptions `toml:"hosts"`
}

// HostOptions override Options for one host; unset ones are inherited.
type HostOptions struct {
	Default     string           `toml:"default"`
	Retention   *config.Duration `toml:"retention"`
	MaxPageSize int              `toml:"max_page_size"`
}

// hostOptions are the options in force for one host.
type hostOptions struct {
	Default     string
	Retention   time.Duration
	MaxPageSize int
}

// Validate implements config.Validator.
func (o *Options) Validate() []config.OptionsProblem {
	var probs []config.OptionsProblem
	check := func(prefix, def string, retention *config.Duration, max int, maxSet bool) {
		switch def {
		case modeAlways, modeRoster, modeNever:
		case "":
			if prefix == "" {
				probs = append(probs, config.OptionsProblem{Key: "default", Message: "must be always, roster or never"})
			}
		default:
			probs = append(probs, config.OptionsProblem{Key: prefix + "default", Message: fmt.Sprintf("must be always, roster or never, not %q", def)})
		}
		if retention != nil && retention.Duration < 0 {
			probs = append(probs, config.OptionsProblem{Key: prefix + "retention", Message: "must not be negative (0 keeps messages forever)"})
		}
		if maxSet && (max < 1 || max > 10000) {
			probs = append(probs, config.OptionsProblem{Key: prefix + "max_page_size", Message: fmt.Sprintf("must be between 1 and 10000, not %d", max)})
		}
	}
	check("", o.Default, &o.Retention, o.MaxPageSize, true)
	if o.PurgeInterval.Duration < time.Minute {
		probs = append(probs, config.OptionsProblem{Key: "purge_interval", Message: fmt.Sprintf("must be at least 1m, not %v", o.PurgeInterval.Duration)})
	}
	for h, ho := range o.Hosts {
		check("hosts."+h+".", ho.Default, ho.Retention, ho.MaxPageSize, ho.MaxPageSize != 0)
	}
	return probs
}

// forHost returns the options in force for host.
func (o *Options) forHost(host string) hostOptions {
	h := hostOptions{Default: o.Default, Retention: o.Retention.Duration, MaxPageSize: o.MaxPageSize}
	if ho, ok := o.Hosts[host]; ok {
		if ho.Default != "" {
			h.Default = ho.Default
		}
		if ho.Retention != nil {
			h.Retention = ho.Retention.Duration
		}
		if ho.MaxPageSize != 0 {
			h.MaxPageSize = ho.MaxPageSize
		}
	}
	return h
}

// DefaultOptions are the defaults of [modules.mam].
func DefaultOptions() *Options {
	return &Options{
		Default:       modeAlways,
		PurgeInterval: config.Duration{Duration: time.Hour},
		MaxPageSize:   250,
		Hosts:         map[string]HostOptions{},
	}
}

// Module is XEP-0313 as a module. The operator may turn it off.
type Module struct {
	s *service // set by Start
}

// Name implements module.Module.
func (*Module) Name() string { return "mam" }

// Optional implements module.Optional.
func (*Module) Optional() {}

// Options implements module.Configurable.
func (*Module) Options() any { return DefaultOptions() }

// Stop implements module.Stopper: what is waiting to be archived is
// written.
func (m *Module) Stop(ctx context.Context) error {
	if m.s == nil {
		return nil
	}
	return m.s.stop(ctx)
}

// Store is what the module needs of storage: the archive, preferences
// (a document per account) and the roster (for the roster default).
type Store interface {
	storage.Archive
	storage.Documents
	RosterItem(ctx context.Context, host, username, contact string) (storage.RosterItem, error)
}

// service archives and answers queries. Its fields are set before its
// handlers are registered and not changed after.
type service struct {
	router router.Router
	store  Store
	log    *slog.Logger
	// options returns the options in force (they follow reloads).
	options func() *Options
	// limits returns the outbound queue's bounds, in stanzas and bytes,
	// that a page of results must fit in.
	limits func() (stanzas, bytes int)
	now    func() time.Time

	ids    archive.IDs
	writer *archive.Writer[storage.ArchiveEntry]
	prefs  prefsCache

	stopPurge chan struct{}
	purgeDone sync.WaitGroup
}

func (s *service) opts(host string) hostOptions { return s.options().forHost(host) }

// Start implements module.Module.
func (m *Module) Start(_ context.Context, env *module.Env) error {
	s := &service{
		router:  env.Router,
		store:   env.Store,
		log:     env.Log,
		options: func() *Options { return env.Options().(*Options) },
		limits: func() (int, int) {
			l := env.Config().Limits
			return l.OutboundQueue, l.OutboundQueueBytes
		},
		now: time.Now,
	}
	s.start(env.IQ, env.Bus)
	s.startPurge(func() []string { return env.Config().Server.Hosts })
	m.s = s
	return nil
}

// start registers the handlers and starts the writer.
func (s *service) start(iq *dispatch.Mux, bus *event.Bus) {
	s.ids.Now = s.now
	s.writer = archive.NewWriter(s.store.AppendArchive, s.log)
	s.stopPurge = make(chan struct{})
	iq.AddAccountFeatures(archive.NS2, Extended, archive.NS1, archive.NS0, nsSID)
	for _, ns := range []string{archive.NS2, archive.NS1, archive.NS0} {
		iq.HandleForAccounts(ns, "query", s.query(ns))
		iq.HandleForAccounts(ns, "prefs", s.handlePrefs(ns))
	}
	// Before carbons (event.Normal), which copy the stamped message.
	event.On(bus, event.Normal+10, "mam", s.sent)
	event.On(bus, event.Normal+10, "mam", s.routing)
}

// stop writes what is pending and stops the purge.
func (s *service) stop(ctx context.Context) error {
	close(s.stopPurge)
	s.purgeDone.Wait()
	return s.writer.Stop(ctx)
}

// startPurge removes, every purge interval, the messages of each host
// older than its retention.
func (s *service) startPurge(hosts func() []string) {
	s.purgeDone.Add(1)
	go func() {
		defer s.purgeDone.Done()
		for {
			t := time.NewTimer(s.options().PurgeInterval.Duration)
			select {
			case <-s.stopPurge:
				t.Stop()
				return
			case <-t.C:
			}
			s.purge(hosts())
		}
	}()
}

// purge removes the messages of hosts past their retention.
func (s *service) purge(hosts []string) {
	for _, h := range hosts {
		r := s.opts(h).Retention
		if r <= 0 {
			continue
		}
		n, err := s.store.PurgeArchive(context.Background(), h, s.now().Add(-r))
		if err != nil {
			s.log.Error("purging the archive failed", "host", h, "err", err)
			continue
		}
		if n > 0 {
			s.log.Info("archive purged", "host", h, "messages", n, "retention", r)
		}
	}
}
