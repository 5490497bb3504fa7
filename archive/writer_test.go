package archive

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// fakeAppend keeps appended entries in memory.
type fakeAppend struct {
	mu      sync.Mutex
	entries []storage.ArchiveEntry
	fail    int           // calls left to fail
	block   chan struct{} // if not nil, append waits for it
}

func (f *fakeAppend) append(_ context.Context, e []storage.ArchiveEntry) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("database down")
	}
	f.entries = append(f.entries, e...)
	return nil
}

func (f *fakeAppend) appended() []storage.ArchiveEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

// TestWriter checks group commit, flush, a retried failure and stop.
func TestWriter(t *testing.T) {
	store := &fakeAppend{block: make(chan struct{}), fail: 1}
	w := NewWriter(store.append, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Retries = []time.Duration{0}
	e := func(id int64) storage.ArchiveEntry {
		return storage.ArchiveEntry{Host: "example.org", Username: "u", ArchivedMessage: storage.ArchivedMessage{ID: id}}
	}
	w.Add(e(1))
	// The writer is held in append with the first; these wait and go in
	// one batch.
	w.Add(e(2))
	w.Add(e(3))
	flushed := make(chan error)
	go func() { flushed <- w.Flush(context.Background()) }()
	close(store.block)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, x := range store.appended() {
		ids = append(ids, x.ID)
	}
	if !slices.Equal(ids, []int64{1, 2, 3}) {
		t.Errorf("written %v, want [1 2 3]", ids)
	}
	w.Add(e(4))
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.appended()); n != 4 {
		t.Errorf("after stop, %d written, want 4", n)
	}
}
