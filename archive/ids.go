package archive

import (
	"sync/atomic"
	"time"
)

// IDs hands out archive IDs: Unix microseconds of now, raised past the
// last one handed out, so that they are unique in this process and
// increase with time (storage.ArchivedMessage.ID). Its zero value is
// ready; Now is set, if at all, before the first Next.
type IDs struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	last atomic.Int64
}

// Next returns a new archive ID. It may be called concurrently.
func (g *IDs) Next() int64 {
	var t int64
	if g.Now != nil {
		t = g.Now().UnixMicro()
	} else {
		t = time.Now().UnixMicro()
	}
	for {
		l := g.last.Load()
		n := max(t, l+1)
		if g.last.CompareAndSwap(l, n) {
			return n
		}
	}
}
