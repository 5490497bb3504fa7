package storagetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// uploadAt is when the upload tests' first slot is handed out: sub-
// millisecond precision in a zone other than UTC (stores keep
// milliseconds, in UTC).
var uploadAt = time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))

// uploadSlot returns a slot of user on host, created d after uploadAt.
func uploadSlot(id, host, user string, size int64, d time.Duration) storage.Upload {
	return storage.Upload{ID: id, Host: host, Username: user, Name: "file " + id + ".png",
		Size: size, ContentType: "image/png", Created: uploadAt.Add(d)}
}

func sameUpload(got, want storage.Upload) bool {
	gc, wc := got.Created, want.Created.Truncate(time.Millisecond)
	got.Created, want.Created = time.Time{}, time.Time{}
	return got == want && gc.Equal(wc) && gc.Location() == time.UTC
}

func addUpload(t *testing.T, s storage.Store, u storage.Upload) {
	t.Helper()
	if err := s.AddUpload(t.Context(), u); err != nil {
		t.Fatalf("AddUpload(%s): %v", u.ID, err)
	}
}

// checkUpload fetches the slot with want's ID and compares it with want.
func checkUpload(t *testing.T, s storage.Store, want storage.Upload) {
	t.Helper()
	got, err := s.Upload(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Upload(%s): %v", want.ID, err)
	}
	if !sameUpload(got, want) {
		t.Errorf("Upload(%s) =\n%+v\nwant\n%+v", want.ID, got, want)
	}
}

func checkNoUpload(t *testing.T, s storage.Store, id string) {
	t.Helper()
	if u, err := s.Upload(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Upload(%s) = %+v, %v; want ErrNotFound", id, u, err)
	}
}

func checkUploadUsage(t *testing.T, s storage.Store, host, user string, since time.Time, total, recent int64) {
	t.Helper()
	gt, gr, err := s.UploadUsage(t.Context(), host, user, since)
	if err != nil || gt != total || gr != recent {
		t.Errorf("UploadUsage(%s@%s, %v) = %d, %d, %v; want %d, %d", user, host, since, gt, gr, err, total, recent)
	}
}

// checkUploadsBefore compares UploadsBefore(before, limit) with want, in order.
func checkUploadsBefore(t *testing.T, s storage.Store, before time.Time, limit int, want ...storage.Upload) {
	t.Helper()
	got, err := s.UploadsBefore(t.Context(), before, limit)
	if err != nil {
		t.Fatalf("UploadsBefore(%v, %d): %v", before, limit, err)
	}
	if !slices.EqualFunc(got, want, sameUpload) {
		ids := func(us []storage.Upload) (out []string) {
			for _, u := range us {
				out = append(out, u.ID)
			}
			return out
		}
		t.Errorf("UploadsBefore(%v, %d) = %q, want %q", before, limit, ids(got), ids(want))
	}
}

func testUploads(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	create(t, s, account("example.net", "alice", 3))
	ctx := t.Context()

	checkNoUpload(t, s, "a1")
	checkUploadUsage(t, s, host, "alice", uploadAt, 0, 0)
	checkUploadsBefore(t, s, uploadAt.Add(time.Hour), 10)

	a1 := uploadSlot("a1", host, "alice", 100, 0)
	a1.Name, a1.ContentType = "Zoë's \"file\" <&>.txt", ""
	a2 := uploadSlot("a2", host, "alice", 2000, time.Hour)
	a3 := uploadSlot("a3", host, "alice", 30000, 2*time.Hour)
	b1 := uploadSlot("b1", host, "bob", 5, 30*time.Minute)
	n1 := uploadSlot("n1", "example.net", "alice", 7, time.Hour)
	big := uploadSlot("big", host, "bob", 1<<40, 3*time.Hour) // beyond 32 bits
	for _, u := range []storage.Upload{a3, a1, b1, n1, a2, big} {
		addUpload(t, s, u)
	}
	for _, u := range []storage.Upload{a1, a2, a3, b1, n1, big} {
		checkUpload(t, s, u)
	}
	checkNoUpload(t, s, "A1")

	// A taken ID, by the same account or another: ErrConflict, the slot
	// untouched.
	for _, u := range []storage.Upload{uploadSlot("a1", host, "alice", 1, 0), uploadSlot("a1", host, "bob", 1, time.Minute)} {
		if err := s.AddUpload(ctx, u); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("AddUpload(%s of %s) again: %v, want ErrConflict", u.ID, u.Username, err)
		}
	}
	checkUpload(t, s, a1)
	// No such account: ErrNotFound, nothing recorded.
	for _, who := range [][2]string{{host, "carol"}, {"example.com", "alice"}} {
		if err := s.AddUpload(ctx, uploadSlot("x", who[0], who[1], 1, 0)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("AddUpload for missing %s@%s: %v, want ErrNotFound", who[1], who[0], err)
		}
	}
	checkNoUpload(t, s, "x")

	// Usage: all the account's slots, and those created at or after
	// since (to the millisecond).
	checkUploadUsage(t, s, host, "alice", uploadAt.Add(-time.Hour), 32100, 32100)
	checkUploadUsage(t, s, host, "alice", uploadAt, 32100, 32100)
	checkUploadUsage(t, s, host, "alice", a1.Created.Add(time.Millisecond), 32100, 32000)
	checkUploadUsage(t, s, host, "alice", a2.Created, 32100, 32000)
	checkUploadUsage(t, s, host, "alice", a2.Created.Truncate(time.Millisecond).Add(time.Millisecond), 32100, 30000)
	checkUploadUsage(t, s, host, "alice", a3.Created.Add(time.Millisecond), 32100, 0)
	checkUploadUsage(t, s, host, "bob", uploadAt, 5+1<<40, 5+1<<40)
	checkUploadUsage(t, s, host, "bob", uploadAt.Add(time.Hour), 5+1<<40, 1<<40)
	checkUploadUsage(t, s, "example.net", "alice", uploadAt, 7, 7)
	checkUploadUsage(t, s, host, "carol", uploadAt, 0, 0)

	// Expired: created strictly before t, oldest first, then by ID
	// (byte-wise), at most limit.
	z := uploadSlot("Zed", host, "bob", 1, time.Hour)
	addUpload(t, s, z)
	checkUploadsBefore(t, s, uploadAt.Add(-time.Millisecond), 10)
	checkUploadsBefore(t, s, a1.Created, 10)
	checkUploadsBefore(t, s, a1.Created.Add(time.Millisecond), 10, a1)
	checkUploadsBefore(t, s, a2.Created, 10, a1, b1)
	checkUploadsBefore(t, s, a2.Created.Add(time.Millisecond), 10, a1, b1, z, a2, n1)
	checkUploadsBefore(t, s, uploadAt.Add(24*time.Hour), 10, a1, b1, z, a2, n1, a3, big)
	checkUploadsBefore(t, s, uploadAt.Add(24*time.Hour), 7, a1, b1, z, a2, n1, a3, big)
	checkUploadsBefore(t, s, uploadAt.Add(24*time.Hour), 4, a1, b1, z, a2)
	checkUploadsBefore(t, s, uploadAt.Add(24*time.Hour), 1, a1)
	checkUploadsBefore(t, s, uploadAt.Add(24*time.Hour), 0)

	// Deletion, once.
	if err := s.DeleteUpload(ctx, "a2"); err != nil {
		t.Fatalf("DeleteUpload(a2): %v", err)
	}
	checkNoUpload(t, s, "a2")
	for _, id := range []string{"a2", "nope"} {
		if err := s.DeleteUpload(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteUpload(%s): %v, want ErrNotFound", id, err)
		}
	}
	checkUploadUsage(t, s, host, "alice", uploadAt, 30100, 30100)
	checkUploadsBefore(t, s, uploadAt.Add(24*time.Hour), 10, a1, b1, z, n1, a3, big)
	checkUpload(t, s, a1)
	// Its ID is free again.
	a2.Size = 9
	addUpload(t, s, a2)
	checkUploadUsage(t, s, host, "alice", uploadAt, 30109, 30109)
}

func testUploadsDeleteAccount(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	a1 := uploadSlot("a1", host, "alice", 100, 0)
	a2 := uploadSlot("a2", host, "alice", 200, time.Hour)
	b1 := uploadSlot("b1", host, "bob", 5, 30*time.Minute)
	for _, u := range []storage.Upload{a1, a2, b1} {
		addUpload(t, s, u)
	}

	if err := s.DeleteAccount(ctx, host, "alice"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	checkNoUpload(t, s, "a1")
	checkNoUpload(t, s, "a2")
	checkUploadsBefore(t, s, uploadAt.Add(24*time.Hour), 10, b1)
	// Bob's stay; re-created, alice starts from nothing, and her old IDs
	// are free.
	checkUpload(t, s, b1)
	checkUploadUsage(t, s, host, "bob", uploadAt, 5, 5)
	create(t, s, account(host, "alice", 3))
	checkUploadUsage(t, s, host, "alice", uploadAt, 0, 0)
	addUpload(t, s, a1)
	checkUploadUsage(t, s, host, "alice", uploadAt, 100, 100)
}
