package muc

import (
	"context"
	"encoding/json"
	"maps"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/storage"
)

// Persistent rooms (§10.1.3, muc#roomconfig_persistentroom) keep their
// configuration, subject and affiliations in storage.MUC, and are
// loaded when the service starts. A change is stored after the room's
// lock is released, from a snapshot taken under it; snapshots are
// numbered, so that one overtaken by a later one is not written.

// stored is what a room's storage.MUCRoom.Config holds.
type stored struct {
	Config      roomConfig `json:"config"`
	Subject     string     `json:"subject,omitempty"`
	SubjectFrom string     `json:"subject_from,omitempty"`
	Secret      []byte     `json:"secret"`
	VCard       []byte     `json:"vcard,omitempty"`
}

// snapshot is a room's state to store.
type snapshot struct {
	version      uint64
	persistent   bool
	blob         []byte
	affiliations map[string]affiliation
}

// snapshot takes the state to store; r.mu is held.
func (r *room) snapshot() snapshot {
	r.version++
	sn := snapshot{version: r.version, persistent: r.cfg.Persistent && !r.locked && !r.destroyed}
	if sn.persistent {
		sn.blob, _ = json.Marshal(stored{Config: r.cfg, Subject: r.subject, SubjectFrom: r.subjectFrom, Secret: r.secret, VCard: r.vcard})
		sn.affiliations = maps.Clone(r.affiliations)
	}
	return sn
}

// persist stores sn (or removes the room when it is not persistent),
// unless a later snapshot was stored already.
func (s *Service) persist(ctx context.Context, r *room, sn snapshot) {
	if s.Store == nil {
		return
	}
	r.persistMu.Lock()
	defer r.persistMu.Unlock()
	if sn.version <= r.persisted {
		return
	}
	r.persisted = sn.version
	name := r.jid.Localpart()
	if !sn.persistent {
		if r.storedAffs != nil {
			if err := s.Store.DeleteMUCRoom(ctx, s.Domain, name); err != nil {
				s.Log.Error("removing a room failed", "room", r.jid.String(), "err", err)
			}
			r.storedAffs = nil
		}
		return
	}
	if err := s.Store.PutMUCRoom(ctx, storage.MUCRoom{Service: s.Domain, Name: name, Config: sn.blob, Created: r.created}); err != nil {
		s.Log.Error("storing a room failed", "room", r.jid.String(), "err", err)
		return
	}
	var changes []storage.MUCAffiliation
	for j, a := range sn.affiliations {
		if old, ok := r.storedAffs[j]; !ok || old != a {
			changes = append(changes, storage.MUCAffiliation{JID: j, Affiliation: a.aff, Nick: a.nick, Reason: a.reason})
		}
	}
	for j := range r.storedAffs {
		if _, ok := sn.affiliations[j]; !ok {
			changes = append(changes, storage.MUCAffiliation{JID: j, Affiliation: affNone})
		}
	}
	if len(changes) > 0 {
		if err := s.Store.SetMUCAffiliations(ctx, s.Domain, name, changes); err != nil {
			s.Log.Error("storing a room's affiliations failed", "room", r.jid.String(), "err", err)
			return
		}
	}
	r.storedAffs = sn.affiliations
	if r.storedAffs == nil {
		r.storedAffs = make(map[string]affiliation)
	}
}

// load reads the service's persistent rooms.
func (s *Service) load(ctx context.Context) error {
	rooms, err := s.Store.MUCRooms(ctx, s.Domain)
	if err != nil {
		return err
	}
	loaded := make(map[string]*room, len(rooms))
	for _, sr := range rooms {
		var st stored
		if err := json.Unmarshal(sr.Config, &st); err != nil {
			s.Log.Error("a stored room does not decode; left out", "room", sr.Name, "err", err)
			continue
		}
		j, err := jid.New(sr.Name, s.Domain, "")
		if err != nil {
			s.Log.Error("a stored room has no valid JID; left out", "room", sr.Name, "err", err)
			continue
		}
		r := newRoom(j, st.Config)
		r.subject, r.subjectFrom, r.created = st.Subject, st.SubjectFrom, sr.Created
		if len(st.Secret) > 0 {
			r.secret = st.Secret
		}
		r.vcard, r.avatars = st.VCard, photoHashes(st.VCard)
		affs, err := s.Store.MUCAffiliations(ctx, s.Domain, sr.Name)
		if err != nil {
			return err
		}
		r.storedAffs = make(map[string]affiliation, len(affs))
		for _, a := range affs {
			r.affiliations[a.JID] = affiliation{aff: a.Affiliation, nick: a.Nick, reason: a.Reason}
			r.storedAffs[a.JID] = r.affiliations[a.JID]
		}
		if r.cfg.Archive && s.writer != nil {
			s.loadHistory(ctx, r)
		}
		loaded[j.Localpart()] = r
	}
	s.mu.Lock()
	s.rooms = loaded
	s.mu.Unlock()
	return nil
}
