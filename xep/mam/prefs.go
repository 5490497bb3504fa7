package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// prefsKey is the storage.Documents key of an account's preferences.
const prefsKey = "mam prefs"

// The default archiving modes (XEP-0441 §2).
const (
	modeAlways = "always"
	modeNever  = "never"
	modeRoster = "roster"
)

// prefs are an account's archiving preferences (XEP-0441; in XEP-0313
// before 0.7, §6): a default mode ("" for the host's) and JIDs archived
// always or never whatever the default. A bare JID in a list stands for
// all its full JIDs.
type prefs struct {
	Default       string
	Always, Never []string // sorted
}

// prefsCacheMax bounds the cache: beyond it, it starts over.
const prefsCacheMax = 100_000

// prefsCache keeps the preferences of the accounts that exchanged
// messages lately, so that the message path reads storage once per
// account and not once per message. Changes made through this server
// update it; another server sharing the database would be seen after
// its entry is dropped (a restart, or a full cache).
type prefsCache struct {
	mu sync.RWMutex // guards m
	m  map[string]*prefs
}

func (c *prefsCache) get(account string) *prefs {
	c.mu.RLock()
	p := c.m[account]
	c.mu.RUnlock()
	return p
}

func (c *prefsCache) put(account string, p *prefs) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= prefsCacheMax {
		c.m = make(map[string]*prefs)
	}
	c.m[account] = p
	c.mu.Unlock()
}

// loadPrefs returns an account's preferences, from the cache or storage.
func (s *service) loadPrefs(ctx context.Context, account jid.JID, accountStr string) (*prefs, error) {
	if p := s.prefs.get(accountStr); p != nil {
		return p, nil
	}
	p := &prefs{}
	doc, err := s.store.Document(ctx, account.Domainpart(), account.Localpart(), prefsKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if q, err := parsePrefs(doc); err == nil {
			p = q
		}
	}
	s.prefs.put(accountStr, p)
	return p, nil
}

// shallArchive applies account's preferences to a message exchanged with
// with (XEP-0441 §2): a JID in the never list is not archived, one in
// the always list is, and otherwise the default decides (roster: those
// in the account's roster). A storage failure archives.
func (s *service) shallArchive(ctx context.Context, account jid.JID, accountStr string, with jid.JID) bool {
	p, err := s.loadPrefs(ctx, account, accountStr)
	if err != nil {
		s.log.Warn("reading archiving preferences failed", "jid", accountStr, "err", err)
		return true
	}
	if len(p.Never) > 0 || len(p.Always) > 0 {
		full, bare := with.String(), with.Bare().String()
		switch {
		case contains(p.Never, full), contains(p.Never, bare):
			return false
		case contains(p.Always, full), contains(p.Always, bare):
			return true
		}
	}
	mode := p.Default
	if mode == "" {
		mode = s.opts(domainOf(accountStr)).Default
	}
	switch mode {
	case modeNever:
		return false
	case modeRoster:
		_, err := s.store.RosterItem(ctx, account.Domainpart(), account.Localpart(), with.Bare().String())
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("reading the roster for archiving failed", "jid", accountStr, "err", err)
			return true
		}
		return err == nil
	}
	return true
}

func contains(sorted []string, v string) bool {
	_, ok := slices.BinarySearch(sorted, v)
	return ok
}

// prefsElement is <prefs/> in any of the namespaces.
type prefsElement struct {
	XMLName xml.Name
	Default string   `xml:"default,attr"`
	Always  *jidList `xml:"always"`
	Never   *jidList `xml:"never"`
}

type jidList struct {
	JIDs []string `xml:"jid"`
}

// parsePrefs reads a <prefs/> element, as a client sends it and as it is
// stored; errBadRequest for a default mode or a JID that is not one.
func parsePrefs(raw []byte) (*prefs, error) {
	var el prefsElement
	if err := xml.Unmarshal(raw, &el); err != nil {
		return nil, errBadRequest
	}
	p := &prefs{Default: el.Default}
	switch p.Default {
	case modeAlways, modeNever, modeRoster:
	default:
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "default must be always, never or roster"}
	}
	for _, l := range []struct {
		in  *jidList
		out *[]string
	}{{el.Always, &p.Always}, {el.Never, &p.Never}} {
		if l.in == nil {
			continue
		}
		for _, v := range l.in.JIDs {
			j, err := jid.Parse(string(bytes.TrimSpace([]byte(v))))
			if err != nil {
				return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
			}
			*l.out = append(*l.out, j.String())
		}
		*l.out = slices.Compact(slices.Sorted(slices.Values(*l.out)))
	}
	return p, nil
}

// appendPrefs appends p as a <prefs/> element of namespace ns, with the
// default mode def when p has none.
func appendPrefs(b []byte, ns string, p *prefs, def string) []byte {
	mode := p.Default
	if mode == "" {
		mode = def
	}
	b = append(b, "<prefs xmlns='"+ns+"' default='"+mode+"'>"...)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		b = append(b, "<"+l.name+">"...)
		for _, j := range l.jids {
			b = append(b, "<jid>"...)
			b = appendEscaped(b, j)
			b = append(b, "</jid>"...)
		}
		b = append(b, "</"+l.name+">"...)
	}
	return append(b, "</prefs>"...)
}
