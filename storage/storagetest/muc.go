package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// The multi-user chat service the MUC tests use, and another beside it.
const (
	mucService      = "conference.example.org"
	mucOtherService = "conference.example.net"
)

// mucRoom returns a room of mucService created at a time with sub-second
// precision in a zone other than UTC (stores keep seconds, in UTC).
func mucRoom(name string, config string) storage.MUCRoom {
	return storage.MUCRoom{Service: mucService, Name: name, Config: []byte(config),
		Created: time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.FixedZone("CET", 3600))}
}

func putRoom(t *testing.T, s storage.Store, r storage.MUCRoom) {
	t.Helper()
	if err := s.PutMUCRoom(t.Context(), r); err != nil {
		t.Fatalf("PutMUCRoom(%s@%s): %v", r.Name, r.Service, err)
	}
}

func sameRoom(got, want storage.MUCRoom) bool {
	return got.Service == want.Service && got.Name == want.Name && bytes.Equal(got.Config, want.Config) &&
		got.Created.Equal(want.Created.Truncate(time.Second)) && got.Created.Location() == time.UTC
}

// checkRooms compares a service's rooms with want.
func checkRooms(t *testing.T, s storage.Store, service string, want ...storage.MUCRoom) {
	t.Helper()
	got, err := s.MUCRooms(t.Context(), service)
	if err != nil {
		t.Fatalf("MUCRooms(%s): %v", service, err)
	}
	if !slices.EqualFunc(got, want, sameRoom) {
		t.Errorf("MUCRooms(%s) = %+v, want %+v", service, got, want)
	}
}

func checkAffiliations(t *testing.T, s storage.Store, service, room string, want ...storage.MUCAffiliation) {
	t.Helper()
	got, err := s.MUCAffiliations(t.Context(), service, room)
	if err != nil {
		t.Fatalf("MUCAffiliations(%s@%s): %v", room, service, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("MUCAffiliations(%s@%s) = %+v, want %+v", room, service, got, want)
	}
}

// testMUCRooms checks rooms: creation, replacement keeping Created, the
// list by name and by service, deletion, and that they survive a reopen.
func testMUCRooms(t *testing.T, newDB NewDB) {
	openDB := newDB(t)
	s := mustOpen(t, openDB)
	ctx := t.Context()
	checkRooms(t, s, mucService)
	if _, err := s.MUCRoom(ctx, mucService, "lobby"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("MUCRoom of none: %v, want ErrNotFound", err)
	}
	// Sorted byte-wise, as sort.Strings does, whatever the database
	// locale; a room without configuration bytes is fine.
	var rooms []storage.MUCRoom
	for _, name := range []string{"zoë", "lobby", "émile", "Lobby", "a"} {
		r := mucRoom(name, "<config name='"+name+"'/>")
		if name == "a" {
			r.Config = nil
		}
		putRoom(t, s, r)
		rooms = append(rooms, r)
	}
	slices.SortFunc(rooms, func(a, b storage.MUCRoom) int { return bytes.Compare([]byte(a.Name), []byte(b.Name)) })
	// The same name on another service is another room.
	other := mucRoom("lobby", "<other/>")
	other.Service = mucOtherService
	putRoom(t, s, other)
	checkRooms(t, s, mucService, rooms...)
	checkRooms(t, s, mucOtherService, other)
	checkRooms(t, s, "conference.example.com")

	// Replacing the configuration keeps the time of creation.
	lobby := mucRoom("lobby", "<config subject='new'/>")
	changed := lobby
	changed.Created = time.Now()
	putRoom(t, s, changed)
	got, err := s.MUCRoom(ctx, mucService, "lobby")
	if err != nil || !sameRoom(got, lobby) {
		t.Errorf("MUCRoom after a change = %+v, %v; want %+v", got, err, lobby)
	}
	got, err = s.MUCRoom(ctx, mucOtherService, "lobby")
	if err != nil || !sameRoom(got, other) {
		t.Errorf("MUCRoom of the other service = %+v, %v; want %+v", got, err, other)
	}

	// Deleted, and deleted again.
	for range 2 {
		if err := s.DeleteMUCRoom(ctx, mucService, "zoë"); err != nil {
			t.Fatalf("DeleteMUCRoom: %v", err)
		}
	}
	if _, err := s.MUCRoom(ctx, mucService, "zoë"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("MUCRoom after delete: %v, want ErrNotFound", err)
	}
	rooms = slices.DeleteFunc(rooms, func(r storage.MUCRoom) bool { return r.Name == "zoë" })
	rooms[slices.IndexFunc(rooms, func(r storage.MUCRoom) bool { return r.Name == "lobby" })] = lobby
	checkRooms(t, s, mucService, rooms...)

	// Persistent rooms are what survives a restart.
	if err := s.SetMUCAffiliations(ctx, mucService, "lobby", []storage.MUCAffiliation{
		{JID: "alice@example.org", Affiliation: "owner"}}); err != nil {
		t.Fatalf("SetMUCAffiliations: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = mustOpen(t, openDB)
	checkRooms(t, s, mucService, rooms...)
	checkRooms(t, s, mucOtherService, other)
	checkAffiliations(t, s, mucService, "lobby", storage.MUCAffiliation{JID: "alice@example.org", Affiliation: "owner"})
}

// testMUCAffiliations checks a room's affiliation lists: changes applied
// together, "none" removing, a refused batch writing nothing, and rooms
// that do not exist.
func testMUCAffiliations(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	ctx := t.Context()
	putRoom(t, s, mucRoom("lobby", "<x/>"))
	putRoom(t, s, mucRoom("kitchen", "<x/>"))

	// Nothing for a room that does not exist, nor for one without any.
	checkAffiliations(t, s, mucService, "nowhere")
	checkAffiliations(t, s, mucService, "lobby")
	err := s.SetMUCAffiliations(ctx, mucService, "nowhere", []storage.MUCAffiliation{{JID: "alice@example.org", Affiliation: "owner"}})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetMUCAffiliations of a room that does not exist: %v, want ErrNotFound", err)
	}
	err = s.SetMUCAffiliations(ctx, mucOtherService, "lobby", []storage.MUCAffiliation{{JID: "alice@example.org", Affiliation: "owner"}})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetMUCAffiliations of a room of another service: %v, want ErrNotFound", err)
	}
	checkAffiliations(t, s, mucService, "nowhere")
	checkAffiliations(t, s, mucOtherService, "lobby")

	// Every affiliation, a domain among the JIDs; listed by JID.
	owner := storage.MUCAffiliation{JID: "alice@example.org", Affiliation: "owner", Nick: "Alice"}
	admin := storage.MUCAffiliation{JID: "bob@example.org", Affiliation: "admin"}
	member := storage.MUCAffiliation{JID: "carol@example.net", Affiliation: "member", Nick: "carol", Reason: "a friend"}
	outcast := storage.MUCAffiliation{JID: "spam.example", Affiliation: "outcast", Reason: "spam"}
	if err := s.SetMUCAffiliations(ctx, mucService, "lobby", []storage.MUCAffiliation{outcast, member, owner, admin}); err != nil {
		t.Fatalf("SetMUCAffiliations: %v", err)
	}
	checkAffiliations(t, s, mucService, "lobby", owner, admin, member, outcast)
	checkAffiliations(t, s, mucService, "kitchen")
	// No changes change nothing.
	for _, changes := range [][]storage.MUCAffiliation{nil, {}} {
		if err := s.SetMUCAffiliations(ctx, mucService, "lobby", changes); err != nil {
			t.Fatalf("SetMUCAffiliations(%v): %v", changes, err)
		}
	}
	checkAffiliations(t, s, mucService, "lobby", owner, admin, member, outcast)

	// A change replaces the JID's entry whole; "none" removes it, also
	// where there was none; the last change of a JID in a batch wins.
	admin2 := storage.MUCAffiliation{JID: "bob@example.org", Affiliation: "member", Nick: "bobby", Reason: "demoted"}
	dave := storage.MUCAffiliation{JID: "dave@example.org", Affiliation: "admin"}
	err = s.SetMUCAffiliations(ctx, mucService, "lobby", []storage.MUCAffiliation{
		admin2,
		{JID: "carol@example.net", Affiliation: "none"},
		{JID: "nobody@example.org", Affiliation: "none"},
		{JID: "dave@example.org", Affiliation: "outcast"},
		dave,
	})
	if err != nil {
		t.Fatalf("SetMUCAffiliations: %v", err)
	}
	checkAffiliations(t, s, mucService, "lobby", owner, admin2, dave, outcast)

	// A batch with an affiliation that is none of them is refused whole.
	err = s.SetMUCAffiliations(ctx, mucService, "lobby", []storage.MUCAffiliation{
		{JID: "erin@example.org", Affiliation: "member"},
		{JID: "alice@example.org", Affiliation: "none"},
		{JID: "frank@example.org", Affiliation: "moderator"},
	})
	if err == nil {
		t.Error("SetMUCAffiliations with affiliation moderator: no error")
	}
	checkAffiliations(t, s, mucService, "lobby", owner, admin2, dave, outcast)
}

// testMUCDelete checks that a room's affiliations and archive go with it,
// and not those of other rooms; a room created again starts empty.
func testMUCDelete(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	ctx := t.Context()
	for _, name := range []string{"lobby", "kitchen"} {
		putRoom(t, s, mucRoom(name, "<x/>"))
		if err := s.SetMUCAffiliations(ctx, mucService, name, []storage.MUCAffiliation{
			{JID: "alice@example.org", Affiliation: "owner"}, {JID: "bob@example.org", Affiliation: "member"}}); err != nil {
			t.Fatalf("SetMUCAffiliations: %v", err)
		}
	}
	mucFill(t, s, "lobby", 5)
	kitchen := mucFill(t, s, "kitchen", 3)
	if err := s.DeleteMUCRoom(ctx, mucService, "lobby"); err != nil {
		t.Fatalf("DeleteMUCRoom: %v", err)
	}
	checkRooms(t, s, mucService, mucRoom("kitchen", "<x/>"))
	checkAffiliations(t, s, mucService, "lobby")
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{CountLimit: 10}, nil, nil, true, 0)
	checkAffiliations(t, s, mucService, "kitchen",
		storage.MUCAffiliation{JID: "alice@example.org", Affiliation: "owner"}, storage.MUCAffiliation{JID: "bob@example.org", Affiliation: "member"})
	checkMUCPage(t, s, "kitchen", storage.ArchiveQuery{}, kitchen, span(0, 3), true, -1)

	putRoom(t, s, mucRoom("lobby", "<y/>"))
	checkAffiliations(t, s, mucService, "lobby")
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{CountLimit: 10}, nil, nil, true, 0)
}

// mucFill appends n messages to room's archive, from three occupants (the
// third without a nickname: the room itself), and returns them as the
// archive returns them (Incoming, whatever the entry said).
func mucFill(t *testing.T, s storage.Store, room string, n int) []storage.ArchivedMessage {
	t.Helper()
	var entries []storage.MUCArchiveEntry
	var msgs []storage.ArchivedMessage
	for i := range n {
		m := storage.ArchivedMessage{
			ID:           storage.ArchiveID(archiveBase.Add(time.Duration(i)*time.Second + time.Duration(len(room))*time.Millisecond)),
			With:         room + "@" + mucService,
			WithResource: []string{"romeo", "juliet", ""}[i%3],
			Direction:    storage.Direction(i % 2), // stored as none
			Stanza:       fmt.Appendf(nil, "<message type='groupchat'><body>%s %d</body></message>", room, i),
		}
		entries = append(entries, storage.MUCArchiveEntry{Service: mucService, Room: room, ArchivedMessage: m})
		m.Direction = storage.Incoming
		msgs = append(msgs, m)
	}
	if err := s.AppendMUCArchive(t.Context(), entries); err != nil {
		t.Fatalf("AppendMUCArchive: %v", err)
	}
	return msgs
}

// checkMUCPage runs q on room's archive and compares the page with want
// (indexes into all), complete and count.
func checkMUCPage(t *testing.T, s storage.Store, room string, q storage.ArchiveQuery, all []storage.ArchivedMessage, want []int, complete bool, count int) {
	t.Helper()
	page, err := s.QueryMUCArchive(t.Context(), mucService, room, q)
	if err != nil {
		t.Fatalf("QueryMUCArchive(%s, %+v): %v", room, q, err)
	}
	comparePage(t, "QueryMUCArchive("+room+")", q, page, all, want, complete, count)
}

// testMUCArchive checks a room's archive as testArchive checks an
// account's: paging both ways, every filter, bounded counts, IDs that are
// not the room's, batches with rooms that do not exist and IDs already
// stored, and retention by service.
func testMUCArchive(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	ctx := t.Context()
	imAccounts(t, s)
	for _, name := range []string{"lobby", "kitchen"} {
		putRoom(t, s, mucRoom(name, "<x/>"))
	}
	all := mucFill(t, s, "lobby", 10)
	romeo := []int{0, 3, 6, 9}
	// The kitchen's archive is apart, with IDs of its own; so is an
	// account's archive, and a room of another service.
	kitchen := storage.ArchivedMessage{ID: all[9].ID + 1, With: "kitchen@" + mucService, WithResource: "romeo", Stanza: []byte("<message/>")}
	if err := s.AppendMUCArchive(ctx, []storage.MUCArchiveEntry{{Service: mucService, Room: "kitchen", ArchivedMessage: kitchen}}); err != nil {
		t.Fatalf("AppendMUCArchive(kitchen): %v", err)
	}
	bobMsg := archiveFill(t, s, "bob", 1)[0] // IDs apart from the lobby's
	otherRoom := mucRoom("lobby", "<x/>")
	otherRoom.Service = mucOtherService
	putRoom(t, s, otherRoom)
	elsewhere := storage.ArchivedMessage{ID: all[9].ID + 2, With: "lobby@" + mucOtherService, WithResource: "romeo", Stanza: []byte("<message/>")}
	if err := s.AppendMUCArchive(ctx, []storage.MUCArchiveEntry{{Service: mucOtherService, Room: "lobby", ArchivedMessage: elsewhere}}); err != nil {
		t.Fatalf("AppendMUCArchive(other service): %v", err)
	}
	checkMUCPage(t, s, "kitchen", storage.ArchiveQuery{}, []storage.ArchivedMessage{kitchen}, []int{0}, true, -1)
	checkMUCPage(t, s, "nowhere", storage.ArchiveQuery{CountLimit: 10}, nil, nil, true, 0)

	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{}, all, span(0, 10), true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{CountLimit: 100}, all, span(0, 10), true, 10)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{CountLimit: 9}, all, span(0, 10), true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{CountLimit: 10}, all, span(0, 10), true, 10)
	// Forward paging.
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, CountLimit: 100}, all, span(0, 4), false, 10)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, AfterID: all[3].ID, CountLimit: 100}, all, span(4, 8), false, 10)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, AfterID: all[7].ID}, all, span(8, 10), true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 2, AfterID: all[7].ID}, all, span(8, 10), true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, AfterID: all[9].ID}, all, nil, true, -1)
	// Backward paging: the last page, then the ones before.
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, Last: true}, all, span(6, 10), false, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, Last: true, BeforeID: all[6].ID}, all, span(2, 6), false, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, Last: true, BeforeID: all[2].ID}, all, span(0, 2), true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Max: 4, Last: true, BeforeID: all[0].ID}, all, nil, true, -1)
	// Both bounds.
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{AfterID: all[2].ID, BeforeID: all[6].ID}, all, span(3, 6), true, -1)
	// The room's bare JID, an occupant's room JID, the room itself, times.
	lobby := "lobby@" + mucService
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{With: lobby, CountLimit: 100}, all, span(0, 10), true, 10)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{With: lobby, WithResource: "romeo", CountLimit: 100}, all, romeo, true, 4)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{With: lobby, WithResource: "romeo", Max: 2, Last: true}, all, []int{6, 9}, false, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{With: lobby, WithResource: "romeo", Max: 2, AfterID: all[3].ID}, all, []int{6, 9}, true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{With: lobby, WithResource: "juliet", BeforeID: all[7].ID}, all, []int{1, 4}, true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{With: lobby, WithResource: "nobody"}, all, nil, true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{With: "kitchen@" + mucService}, all, nil, true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{WithResource: "romeo"}, all, span(0, 10), true, -1) // without With, ignored
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Start: all[3].Time(), End: all[5].Time()}, all, span(3, 6), true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Start: all[3].Time().Add(time.Millisecond), End: all[5].Time().Add(-time.Nanosecond), CountLimit: 100}, all, []int{4}, true, 1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{End: all[1].Time()}, all, span(0, 2), true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{Start: all[8].Time(), With: lobby, WithResource: "romeo"}, all, []int{9}, true, -1)
	// Chosen IDs; another room's, another service's and an account's are
	// not there.
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{IDs: []int64{all[7].ID, all[1].ID, kitchen.ID, elsewhere.ID, bobMsg.ID, 42}}, all, []int{1, 7}, true, -1)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{IDs: []int64{}}, all, nil, true, -1)

	// An unknown ID, another room's or an account's archive's, is not a
	// place to page from.
	for _, q := range []storage.ArchiveQuery{
		{AfterID: 42}, {BeforeID: 42, Last: true}, {AfterID: kitchen.ID}, {BeforeID: elsewhere.ID},
		{AfterID: bobMsg.ID}, {BeforeID: all[0].ID - 1}, {AfterID: all[0].ID, BeforeID: 42},
	} {
		if _, err := s.QueryMUCArchive(ctx, mucService, "lobby", q); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("QueryMUCArchive(%+v): %v, want ErrNotFound", q, err)
		}
	}
	if _, err := s.QueryMUCArchive(ctx, mucService, "nowhere", storage.ArchiveQuery{AfterID: all[0].ID}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("QueryMUCArchive of a room that does not exist after an ID: %v, want ErrNotFound", err)
	}

	// A batch with messages of rooms that do not exist (on this service
	// or another) and an ID already stored (the room's, or another's)
	// adds the rest.
	late := storage.ArchivedMessage{ID: all[9].ID + 100, With: lobby, WithResource: "romeo", Stanza: []byte("<message>late</message>")}
	later := storage.ArchivedMessage{ID: all[9].ID + 101, With: lobby, Stanza: []byte("<message>later</message>")}
	nowhere := storage.ArchivedMessage{ID: all[9].ID + 99, With: "nowhere@" + mucService, Stanza: []byte("<message/>")}
	err := s.AppendMUCArchive(ctx, []storage.MUCArchiveEntry{
		{Service: mucService, Room: "nowhere", ArchivedMessage: nowhere},
		{Service: mucService, Room: "lobby", ArchivedMessage: all[9]},
		{Service: mucService, Room: "lobby", ArchivedMessage: storage.ArchivedMessage{ID: kitchen.ID, With: lobby, Stanza: []byte("<message>dup</message>")}},
		{Service: mucService, Room: "lobby", ArchivedMessage: late},
		{Service: mucOtherService, Room: "kitchen", ArchivedMessage: storage.ArchivedMessage{ID: all[9].ID + 98, Stanza: []byte("<message/>")}},
		{Service: mucService, Room: "lobby", ArchivedMessage: later},
	})
	if err != nil {
		t.Fatalf("AppendMUCArchive with rooms that do not exist: %v", err)
	}
	all = append(all, late, later)
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{AfterID: all[8].ID}, all, []int{9, 10, 11}, true, -1)
	checkMUCPage(t, s, "kitchen", storage.ArchiveQuery{}, []storage.ArchivedMessage{kitchen}, []int{0}, true, -1)
	checkMUCPage(t, s, "nowhere", storage.ArchiveQuery{CountLimit: 10}, nil, nil, true, 0)
	// Retried whole, the same batch adds nothing; nor does an empty one.
	if err := s.AppendMUCArchive(ctx, []storage.MUCArchiveEntry{{Service: mucService, Room: "lobby", ArchivedMessage: late}}); err != nil {
		t.Fatalf("AppendMUCArchive again: %v", err)
	}
	if err := s.AppendMUCArchive(ctx, nil); err != nil {
		t.Fatalf("AppendMUCArchive(nil): %v", err)
	}
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{CountLimit: 100}, all, span(0, 12), true, 12)

	// Retention: only this service's messages before the time go, not an
	// account's of the same time.
	n, err := s.PurgeMUCArchive(ctx, "conference.example.com", all[5].Time())
	if err != nil || n != 0 {
		t.Errorf("PurgeMUCArchive(conference.example.com) = %d, %v; want 0", n, err)
	}
	n, err = s.PurgeMUCArchive(ctx, mucService, all[5].Time())
	if err != nil || n != 5 {
		t.Errorf("PurgeMUCArchive = %d, %v; want 5", n, err)
	}
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{}, all, span(5, 12), true, -1)
	checkMUCPage(t, s, "kitchen", storage.ArchiveQuery{}, []storage.ArchivedMessage{kitchen}, []int{0}, true, -1)
	page, err := s.QueryMUCArchive(ctx, mucOtherService, "lobby", storage.ArchiveQuery{})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].ID != elsewhere.ID {
		t.Errorf("the other service's archive after a purge = %+v, %v", page, err)
	}
	checkPage(t, s, "bob", storage.ArchiveQuery{}, []storage.ArchivedMessage{bobMsg}, []int{0}, true, -1)
	// Everything, a page of purges at a time.
	n, err = s.PurgeMUCArchive(ctx, mucService, all[11].Time().Add(time.Second))
	if err != nil || n != 8 {
		t.Errorf("PurgeMUCArchive of everything = %d, %v; want 8", n, err)
	}
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{CountLimit: 10}, all, nil, true, 0)
}

// testMUCConcurrent runs affiliation changes and archive appends while
// their room is deleted: each either happens before the deletion (and
// goes with the room) or finds no room (ErrNotFound, or skipped), and
// nothing of the room is left.
func testMUCConcurrent(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	ctx := t.Context()
	for round := range 5 {
		room := fmt.Sprint("room", round)
		putRoom(t, s, mucRoom(room, "<x/>"))
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 10 {
					err := s.SetMUCAffiliations(ctx, mucService, room, []storage.MUCAffiliation{
						{JID: fmt.Sprintf("user%d-%d@example.org", g, i), Affiliation: "member"},
						{JID: fmt.Sprintf("user%d-%d@example.org", g, i-1), Affiliation: "none"}})
					if err != nil && !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("SetMUCAffiliations: %v", err)
					}
					id := storage.ArchiveID(archiveBase) + int64(round*1000+g*100+i)
					err = s.AppendMUCArchive(ctx, []storage.MUCArchiveEntry{{Service: mucService, Room: room,
						ArchivedMessage: storage.ArchivedMessage{ID: id, With: room + "@" + mucService, Stanza: []byte("<message/>")}}})
					if err != nil {
						t.Errorf("AppendMUCArchive: %v", err)
					}
				}
			})
		}
		wg.Go(func() {
			if err := s.DeleteMUCRoom(ctx, mucService, room); err != nil {
				t.Errorf("DeleteMUCRoom: %v", err)
			}
		})
		wg.Wait()
		if _, err := s.MUCRoom(ctx, mucService, room); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("MUCRoom after delete: %v, want ErrNotFound", err)
		}
		checkAffiliations(t, s, mucService, room)
		checkMUCPage(t, s, room, storage.ArchiveQuery{CountLimit: 100}, nil, nil, true, 0)
	}
}

// BenchMUC measures a room's archive: appends of a few batch sizes (the
// room archiver's, one entry per groupchat message), and a page of 50
// messages (XEP-0313 queries on the room) in an archive of 1,000 messages
// and, with STARLING_BENCH_ARCHIVE_1M=1, of 1,000,000, beside another
// room's: the newest page (RSM <before/>), a page after an ID in the
// middle, and the newest page of one occupant. The indexes keep the
// second figures close to the first. settle, if not nil, runs after the
// fill, as for BenchArchive.
func BenchMUC(b *testing.B, open func() (storage.Store, error), settle func(b *testing.B)) {
	s, err := open()
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	defer s.Close()
	ctx := b.Context()
	stanza := func(room, nick string, id int64) []byte {
		return fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s@%s/%s' to='user0@example.org/laptop' type='groupchat' id='m%d'><body>Message about as long as a chat line.</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s@%s' id='%d'/></message>", room, mucService, nick, id, room, mucService, id)
	}
	b.Run("AppendMUCArchive", func(b *testing.B) {
		if err := s.PutMUCRoom(ctx, storage.MUCRoom{Service: mucService, Name: "append", Config: []byte("<x/>"), Created: time.Now()}); err != nil {
			b.Fatal(err)
		}
		id := storage.ArchiveID(time.Now())
		for _, n := range []int{1, 16, 256} {
			b.Run(fmt.Sprint(n), func(b *testing.B) {
				b.ReportAllocs()
				entries := make([]storage.MUCArchiveEntry, n)
				msg := stanza("append", "romeo", 1)
				nicks := []string{"romeo", "juliet", "mercutio", "tybalt"}
				for b.Loop() {
					for i := range entries {
						id++
						entries[i] = storage.MUCArchiveEntry{Service: mucService, Room: "append", ArchivedMessage: storage.ArchivedMessage{
							ID: id, With: "append@" + mucService, WithResource: nicks[i%len(nicks)], Stanza: msg}}
					}
					if err := s.AppendMUCArchive(ctx, entries); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
			})
		}
	})
	for _, size := range []struct {
		name string
		n    int
	}{{"1k", 1_000}, {"1M", 1_000_000}} {
		b.Run("QueryMUCArchive/"+size.name, func(b *testing.B) {
			if size.n > 1_000 && os.Getenv(EnvArchiveMillion) != "1" {
				b.Skip(EnvArchiveMillion + "=1 runs it (the fill takes a minute)")
			}
			room, other := "room"+size.name, "other"+size.name
			for _, name := range []string{room, other} {
				if err := s.PutMUCRoom(ctx, storage.MUCRoom{Service: mucService, Name: name, Config: []byte("<x/>"), Created: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
			base := storage.ArchiveID(archiveBase)
			if size.n > 1_000 {
				base += 1_000 * 1000 // after the 1k fill's
			}
			const batch = 10_000
			entries := make([]storage.MUCArchiveEntry, 0, batch)
			var middle int64
			for i := range size.n {
				r := room
				if i%10 == 9 {
					r = other
				}
				id := base + int64(i)*1000
				if i == size.n/2 {
					middle = id
				}
				nick := fmt.Sprint("nick", i%20)
				entries = append(entries, storage.MUCArchiveEntry{Service: mucService, Room: r, ArchivedMessage: storage.ArchivedMessage{
					ID: id, With: r + "@" + mucService, WithResource: nick, Stanza: stanza(r, nick, id)}})
				if len(entries) == batch || i == size.n-1 {
					if err := s.AppendMUCArchive(ctx, entries); err != nil {
						b.Fatal(err)
					}
					entries = entries[:0]
				}
			}
			if settle != nil {
				settle(b)
			}
			for _, q := range []struct {
				name string
				q    storage.ArchiveQuery
			}{
				{"Last", storage.ArchiveQuery{Max: 50, Last: true}},
				{"After", storage.ArchiveQuery{Max: 50, AfterID: middle}},
				{"WithLast", storage.ArchiveQuery{Max: 50, Last: true, With: room + "@" + mucService}},
				{"OccupantLast", storage.ArchiveQuery{Max: 50, Last: true, With: room + "@" + mucService, WithResource: "nick4"}},
			} {
				b.Run(q.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						page, err := s.QueryMUCArchive(ctx, mucService, room, q.q)
						if err != nil || len(page.Messages) != 50 {
							b.Fatal(len(page.Messages), err)
						}
					}
				})
			}
		})
	}
}

// testMUCReplace checks that one archived message's stanza can be
// replaced (a moderated message's tombstone), in its room only.
func testMUCReplace(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	ctx := t.Context()
	putRoom(t, s, mucRoom("lobby", "<x/>"))
	putRoom(t, s, mucRoom("kitchen", "<x/>"))
	all := mucFill(t, s, "lobby", 3)
	tomb := []byte("<message><retracted xmlns='urn:xmpp:message-retract:1'/></message>")
	if err := s.ReplaceMUCArchived(ctx, mucService, "lobby", all[1].ID, tomb); err != nil {
		t.Fatalf("ReplaceMUCArchived: %v", err)
	}
	want := slices.Clone(all)
	want[1].Stanza = tomb
	checkMUCPage(t, s, "lobby", storage.ArchiveQuery{}, want, span(0, 3), true, -1)
	for _, tc := range []struct {
		room string
		id   int64
	}{{"kitchen", all[1].ID}, {"lobby", all[2].ID + 1}, {"nowhere", all[0].ID}} {
		if err := s.ReplaceMUCArchived(ctx, mucService, tc.room, tc.id, tomb); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceMUCArchived(%s, %d): %v, want ErrNotFound", tc.room, tc.id, err)
		}
	}
}
