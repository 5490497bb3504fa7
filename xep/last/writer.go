package last

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/storage"
)

// DefaultInterval is how long Writer lets the times of ended sessions
// gather before it writes them.
const DefaultInterval = time.Second

// maxPending is the number of accounts waiting that makes Writer write at
// once instead of waiting for its interval.
const maxPending = 10000

// Writer takes the recording of last activity (XEP-0012 §3, the time and
// status of an account's last session's end) off the path of the ending
// session: Set keeps the latest time per account in memory, and a
// goroutine writes what waits every Interval, in one transaction when
// the store offers them (storage.Store.InTx), else one write after
// another. Get answers from memory for an account whose time waits, so
// that a query sees it before it is written; the answers are those
// storage would give once it is. Stop writes what is left, so that a
// graceful stop loses nothing; a crash loses at most the times still
// waiting (the last Interval's, never messages or anything else).
//
// Each pending time has one owner: mu, which guards pending; the
// goroutine only copies from it, and removes what it has written unless
// a newer time came meanwhile.
type Writer struct {
	store storage.LastActivity
	// inTx runs f in one transaction; nil: the store has none.
	inTx     func(ctx context.Context, f func(tx storage.Tx) error) error
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	pending map[account]entry
	stopped bool // after Stop, Set writes through

	wake chan struct{} // cap 1: something waits
	full chan struct{} // cap 1: maxPending accounts wait, write now
	quit chan struct{} // closed by Stop
	done chan struct{} // closed when the goroutine has written the rest
}

type account struct{ host, user string }

// entry is an account's last activity.
type entry struct {
	at     time.Time
	status string
}

// NewWriter starts a Writer on store that writes every interval (0:
// DefaultInterval). Stop it.
func NewWriter(store storage.LastActivity, interval time.Duration, log *slog.Logger) *Writer {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{store: store, interval: interval, log: log,
		pending: make(map[account]entry),
		wake:    make(chan struct{}, 1), full: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if tx, ok := store.(interface {
		InTx(ctx context.Context, f func(tx storage.Tx) error) error
	}); ok {
		w.inTx = tx.InTx
	}
	go w.run()
	return w
}

// Set records that bare's last session ended at at with status; it
// returns at once, unless the Writer was stopped: then it writes.
func (w *Writer) Set(ctx context.Context, bare jid.JID, at time.Time, status string) error {
	a := account{bare.Domainpart(), bare.Localpart()}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return w.store.SetLastActivity(ctx, a.host, a.user, at, status)
	}
	w.pending[a] = entry{at, status}
	n := len(w.pending)
	w.mu.Unlock()
	ch := w.wake
	if n >= maxPending {
		ch = w.full
	}
	select {
	case ch <- struct{}{}:
	default: // the goroutine has been told already
	}
	return nil
}

// Get returns bare's last activity: the time waiting to be written if
// there is one, else storage's (ErrNotFound if none was ever recorded).
func (w *Writer) Get(ctx context.Context, bare jid.JID) (time.Time, string, error) {
	a := account{bare.Domainpart(), bare.Localpart()}
	w.mu.Lock()
	r, ok := w.pending[a]
	w.mu.Unlock()
	if ok {
		return r.at, r.status, nil
	}
	return w.store.LastActivity(ctx, a.host, a.user)
}

// Forget drops what waits for bare: the account was removed
// (auth.AccountDeleted), its rows with it.
func (w *Writer) Forget(bare jid.JID) {
	w.mu.Lock()
	delete(w.pending, account{bare.Domainpart(), bare.Localpart()})
	w.mu.Unlock()
}

// Stop writes what waits and stops the goroutine; later Sets write
// through. It returns ctx's error if ctx ends first (the goroutine still
// finishes writing).
func (w *Writer) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.quit)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTimer(w.interval)
	t.Stop()
	for {
		select {
		case <-w.wake:
			// Let more gather, unless many wait or Stop comes first.
			t.Reset(w.interval)
			select {
			case <-t.C:
			case <-w.full:
				t.Stop()
			case <-w.quit:
				t.Stop()
			}
			w.flush()
		case <-w.full:
			w.flush()
		case <-w.quit:
			w.flush()
			return
		}
	}
}

// flush writes what waits now, then removes from pending what it wrote,
// unless a newer time came for the account meanwhile.
func (w *Writer) flush() {
	w.mu.Lock()
	batch := make(map[account]entry, len(w.pending))
	for a, r := range w.pending {
		batch[a] = r
	}
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx := context.Background()
	written := w.write(ctx, batch)
	w.mu.Lock()
	for a, r := range batch {
		if cur, ok := w.pending[a]; ok && cur == r && written[a] {
			delete(w.pending, a)
		}
	}
	w.mu.Unlock()
}

// write writes batch, in one transaction if it can; it returns the
// accounts done with (written, or gone: storage.ErrNotFound). What
// failed otherwise stays pending for the next flush.
func (w *Writer) write(ctx context.Context, batch map[account]entry) map[account]bool {
	done := make(map[account]bool, len(batch))
	if w.inTx != nil && len(batch) > 1 {
		err := w.inTx(ctx, func(tx storage.Tx) error {
			for a, r := range batch {
				if err := tx.SetLastActivity(ctx, a.host, a.user, r.at, r.status); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for a := range batch {
				done[a] = true
			}
			return done
		}
		// One account removed meanwhile fails the whole transaction:
		// write them one by one instead.
		if !errors.Is(err, storage.ErrNotFound) {
			w.log.Warn("writing last activity in one transaction failed; writing each", "accounts", len(batch), "err", err)
		}
	}
	for a, r := range batch {
		err := w.store.SetLastActivity(ctx, a.host, a.user, r.at, r.status)
		switch {
		case err == nil, errors.Is(err, storage.ErrNotFound):
			done[a] = true
		default:
			w.log.Error("recording last activity failed", "jid", a.user+"@"+a.host, "err", err)
		}
	}
	return done
}
