package archive

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxPending is how many entries may wait for the writer; beyond it,
// whoever adds one waits (back pressure on the senders rather than
// unbounded memory while the database is slow).
const maxPending = 8192

// Writer writes archive entries (E: storage.ArchiveEntry for accounts'
// archives, storage.MUCArchiveEntry for rooms') in the background, in
// batches: each batch is everything added while the previous one was
// being written (group commit), so the message path never waits for the
// database and a busy server writes many messages per transaction.
type Writer[E any] struct {
	// Retries are the waits before retrying a failed batch; set, if at
	// all, before the first Add.
	Retries []time.Duration

	appendFn func(ctx context.Context, batch []E) error
	log      *slog.Logger

	mu      sync.Mutex // guards the fields below
	pending []E
	added   int64         // entries ever added
	written int64         // entries ever written (or given up on)
	done    chan struct{} // closed when written changes, then replaced
	room    chan struct{} // closed when pending shrinks, then replaced
	stopped bool

	wake chan struct{} // a batch is pending (capacity 1)
	quit chan struct{} // closed by Stop
	exit chan struct{} // closed when the loop has written everything and returned
}

// NewWriter starts a writer that writes each batch with appendFn (in one
// transaction: storage.Archive.AppendArchive, storage.MUC.AppendMUCArchive)
// and logs failures to log. Stop ends it.
func NewWriter[E any](appendFn func(ctx context.Context, batch []E) error, log *slog.Logger) *Writer[E] {
	w := &Writer[E]{appendFn: appendFn, log: log,
		Retries: []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second},
		done:    make(chan struct{}), room: make(chan struct{}),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), exit: make(chan struct{})}
	go w.loop()
	return w
}

// Add queues e for writing. It waits only while maxPending entries are
// pending already.
func (w *Writer[E]) Add(e E) {
	w.mu.Lock()
	for len(w.pending) >= maxPending && !w.stopped {
		room := w.room
		w.mu.Unlock()
		<-room
		w.mu.Lock()
	}
	w.pending = append(w.pending, e)
	w.added++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every entry added before it was called is written:
// a query sees every message routed before it.
func (w *Writer[E]) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.added
	for w.written < target {
		done := w.done
		w.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
	w.mu.Unlock()
	return nil
}

// Stop writes what is pending and ends the loop; ctx bounds the wait.
func (w *Writer[E]) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.quit)
	}
	w.mu.Unlock()
	select {
	case <-w.exit:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer[E]) loop() {
	defer close(w.exit)
	var batch []E
	for {
		select {
		case <-w.wake:
		case <-w.quit:
		}
		w.mu.Lock()
		batch, w.pending = w.pending, batch[:0]
		stopped := w.stopped
		close(w.room)
		w.room = make(chan struct{})
		w.mu.Unlock()
		if len(batch) > 0 {
			w.write(batch)
			clear(batch) // the stanzas may be collected
			w.mu.Lock()
			w.written += int64(len(batch))
			close(w.done)
			w.done = make(chan struct{})
			w.mu.Unlock()
		}
		if stopped {
			w.mu.Lock()
			left := len(w.pending)
			w.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}

// write writes one batch, retrying a few times; a batch that still fails
// is logged and given up (the messages were delivered; only their
// archive copy is lost).
func (w *Writer[E]) write(batch []E) {
	// Not the server's context: what is pending at shutdown is written.
	ctx := context.Background()
	err := w.appendFn(ctx, batch)
	for i := 0; err != nil && i < len(w.Retries); i++ {
		w.log.Warn("archiving failed; retrying", "messages", len(batch), "err", err)
		select {
		case <-time.After(w.Retries[i]):
		case <-w.quit:
		}
		err = w.appendFn(ctx, batch)
	}
	if err != nil {
		w.log.Error("archiving failed; messages not archived", "messages", len(batch), "err", err)
	}
}
