package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The groupchat scenario (XEP-0045 multi-user chat): --rooms R rooms on
// the service --muc, each with --n N occupants, one session of an account
// of its own each (room r's occupant i is account PREFIX(r·N+i+1), with
// the nickname "n<i>"). The rooms are new, named after a nonce of the run
// (bench-NONCE-r), and made instant rooms, not measured: occupant 0 of
// every room enters first and, when the room is created (status 201),
// accepts the default configuration (an empty submit form, §10.1.2),
// which unlocks it; then the others enter. An entering ends at the
// subject message (§7.2.15); one refused with item-not-found (a room
// still locked) is tried again after a backoff. Then each occupant sends
// --count groupchat messages to its room (or for --duration), at most
// --window outstanding to each other occupant.
//
// A delivery is one message reaching one other occupant: N-1 per
// message. The room also reflects each message to its sender (§7.4),
// which is checked apart — each reflection exactly once — and not
// counted as a delivery. Every receiver checks the messages of each
// occupant of its room off a bitset, and `from` must be the sender's
// occupant JID in the receiver's room.

const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = nsMUC + "#user"
	nsMUCOwner = nsMUC + "#owner"
)

// gcOccupant is one occupant of the groupchat scenario.
type gcOccupant struct {
	idx, room, pos int // global index, room, position in the room (its nickname's number)
	s              *session
	wake           chan struct{} // another occupant (or the reflection) received one of ours
	// got counts, by position in the room, our messages that occupant
	// has received (once each): the window to it is our sequence number
	// minus got. got[pos] counts our reflections.
	got  []atomic.Int64
	sent atomic.Int64

	// What the reader tells the entering: the subject (nil) or an error
	// presence, and the answer to the configuration form.
	joinEv  chan []byte
	iqEv    chan []byte
	created atomic.Bool // our self-presence had status 201

	// Owned by the reader until it has returned.
	joined    bool
	in        []inbox // by position: that occupant's messages; in[pos] our reflections
	lat       []int64 // deliveries of others' messages
	reflLat   []int64 // our reflections
	misrouted int64
	bounced   int64
	bounce    string
	stray     int64 // groupchat messages with a body not ours (history, service messages)
	otherID   int64 // reflections whose id is not the one sent
}

// gcRun is one run of the scenario.
type gcRun struct {
	cfg      *config
	rooms, n int
	nonce    string
	roomJID  []string // by room: name@muc
	occJID   [][]byte // by occupant: its occupant JID, room@muc/nick
	occ      []*gcOccupant

	delivered, reflected atomic.Int64 // checked off at another occupant; reflections checked off
	target               atomic.Int64 // deliveries and reflections expected, once the senders are done
	allIn                chan struct{}
	allInOnce            sync.Once
	retries              atomic.Int64 // enterings tried again after item-not-found
	// bounced is closed at the first message the room refuses (a flood
	// limit, say): the run fails, so the senders go on without their
	// windows and nobody waits for --timeout.
	bounced     chan struct{}
	bouncedOnce sync.Once
}

// nick is the nickname of the occupant at pos in its room.
func nick(pos int) string { return "n" + strconv.Itoa(pos) }

func newGCRun(cfg *config) *gcRun {
	b := make([]byte, 4)
	rand.Read(b)
	g := &gcRun{cfg: cfg, rooms: cfg.rooms, n: cfg.n, nonce: hex.EncodeToString(b), allIn: make(chan struct{}), bounced: make(chan struct{})}
	for r := range g.rooms {
		g.roomJID = append(g.roomJID, "bench-"+g.nonce+"-"+strconv.Itoa(r)+"@"+cfg.muc)
	}
	for r := range g.rooms {
		for pos := range g.n {
			o := &gcOccupant{idx: len(g.occ), room: r, pos: pos, wake: make(chan struct{}, 1),
				got: make([]atomic.Int64, g.n), joinEv: make(chan []byte, 8), iqEv: make(chan []byte, 1), in: make([]inbox, g.n)}
			for i := range o.in {
				o.in[i].last = -1
				if cfg.duration == 0 {
					o.in[i].seen = make([]uint64, (cfg.count+63)/64)
				}
			}
			if cfg.duration == 0 {
				o.lat = make([]int64, 0, cfg.count*(g.n-1))
				o.reflLat = make([]int64, 0, cfg.count)
			}
			g.occ = append(g.occ, o)
			g.occJID = append(g.occJID, []byte(g.roomJID[r]+"/"+nick(pos)))
		}
	}
	return g
}

// runGroupchat enters the rooms, then measures groupchat messages and
// checks that each reaches every other occupant, and its sender, exactly
// once.
func runGroupchat(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	g := newGCRun(cfg)
	r.Delivery = &Delivery{Window: cfg.window, Batch: cfg.batch, Contacts: g.n - 1}
	r.Groupchat = &Groupchat{Rooms: g.rooms, Occupants: g.n, Service: cfg.muc, Room: g.roomJID[0]}

	t0 := time.Now()
	sess, _ := openSessions(ctx, cfg, r, len(g.occ),
		func(i int) string { return cfg.account(i + 1) },
		func(int) string { return "groupchat" },
		g.handler)
	defer closeAll(sess, 5*time.Second)
	for i, s := range sess {
		if s == nil {
			return r, r.err()
		}
		g.occ[i].s = s
	}
	if err := g.enter(ctx, sess); err != nil {
		r.fail(err)
		return r, r.err()
	}
	r.SetupS = time.Since(t0).Seconds()
	r.JoinRetries = g.retries.Load()
	for _, o := range g.occ {
		if o.created.Load() {
			r.RoomsCreated++
		}
	}

	var deadline time.Time
	if cfg.duration > 0 {
		deadline = time.Now().Add(cfg.duration)
	}
	stop := progress(cfg, func() string {
		return fmt.Sprintf("deliveries: %d, reflections: %d", g.delivered.Load(), g.reflected.Load())
	})
	a := sample(cfg.pid)
	var wg sync.WaitGroup
	var stalls atomic.Int64
	var sendErr atomic.Pointer[error]
	for _, o := range g.occ {
		wg.Go(func() {
			if err := g.send(o, deadline); err != nil {
				if errors.Is(err, errStall) {
					stalls.Add(1)
				}
				sendErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	var sent int64
	for _, o := range g.occ {
		sent += o.sent.Load()
	}
	g.target.Store(max(sent*int64(g.n), 1))
	g.checkDone()
	t := time.NewTimer(cfg.timeout)
	select {
	case <-g.allIn:
	case <-g.bounced:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	b := sample(cfg.pid)
	stop()
	early := ended(sess)
	// As for messages: the readers drain what the server still sends, so
	// that a late duplicate is counted.
	closeAll(sess, 5*time.Second)

	var lat, refl []int64
	gc := r.Groupchat
	for _, o := range g.occ {
		for pos, in := range o.in {
			if pos == o.pos {
				gc.ReflectionDuplicates += in.dups
				gc.ReflectionsOutOfOrder += in.outOfOrder
				continue
			}
			r.Duplicates += in.dups
			r.OutOfOrder += in.outOfOrder
		}
		r.Misrouted += o.misrouted
		r.Bounced += o.bounced
		if r.bounce == "" {
			r.bounce = o.bounce
		}
		gc.Stray += o.stray
		gc.ReflectionsOtherID += o.otherID
		lat = append(lat, o.lat...)
		refl = append(refl, o.reflLat...)
	}
	r.Sent = sent
	r.Delivered = g.delivered.Load()
	r.Lost = sent*int64(g.n-1) - r.Delivered
	gc.Reflections = g.reflected.Load()
	gc.ReflectionsLost = sent - gc.Reflections
	r.measured(a, b, r.Delivered)
	if sent > 0 {
		r.ServerCPUUsPerUpdate = r.ServerCPUS * 1e6 / float64(sent)
	}
	r.latencies(lat)
	if len(refl) > 0 {
		var q result
		q.latencies(refl)
		gc.ReflectP50Ms, gc.ReflectP99Ms = q.LatP50Ms, q.LatP99Ms
	}
	r.verdict(sendErr.Load(), stalls.Load(), early)
	gc.ReflectedOnce = gc.ReflectionsLost == 0 && gc.ReflectionDuplicates == 0 && sent > 0
	if !gc.ReflectedOnce {
		r.fail(fmt.Errorf("reflections to the sender not exactly once: lost %d, duplicates %d of %d", gc.ReflectionsLost, gc.ReflectionDuplicates, sent))
	}
	return r, r.err()
}

// handler is occupant i's reader's: the entering (self-presence, the
// subject, errors), the configuration form's answer, and the messages.
func (g *gcRun) handler(i int, s *session) func([]byte) bool {
	o := g.occ[i]
	return func(el []byte) bool {
		switch {
		case is(el, "message"):
			g.message(o, el)
			return true
		case is(el, "presence"):
			g.presence(o, el)
			return true
		case is(el, "iq"):
			if id := attr(el, "id"); bytes.HasPrefix(id, []byte("cfg")) {
				if t := string(attr(el, "type")); t == "result" || t == "error" {
					select {
					case o.iqEv <- bytes.Clone(el):
					default: // an answer nobody waits for
					}
					return true
				}
			}
		}
		return false
	}
}

// presence notes what concerns o's own entering: its self-presence
// (status 110; 201 when it created the room) and an error presence from
// its occupant JID. The other occupants' presence is not checked.
func (g *gcRun) presence(o *gcOccupant, el []byte) {
	if !bytes.EqualFold(attr(el, "from"), g.occJID[o.idx]) {
		return
	}
	switch string(attr(el, "type")) {
	case "error":
		select {
		case o.joinEv <- bytes.Clone(el):
		default:
		}
	case "":
		if hasStatus(el, "110") && hasStatus(el, "201") {
			o.created.Store(true)
		}
	}
}

// hasStatus reports whether el has <status code='code'/> (muc#user).
func hasStatus(el []byte, code string) bool {
	return bytes.Contains(el, []byte("code='"+code+"'")) || bytes.Contains(el, []byte(`code="`+code+`"`))
}

// message checks off a groupchat message o received, or notes the
// subject that ends o's entering, or counts a bounce.
func (g *gcRun) message(o *gcOccupant, el []byte) {
	switch string(attr(el, "type")) {
	case "error":
		o.bounced++
		if o.bounce == "" {
			o.bounce = string(el)
		}
		g.bouncedOnce.Do(func() {
			close(g.bounced)
			for _, x := range g.occ {
				poke(x.wake)
			}
		})
		return
	case "groupchat":
	default:
		return // invitations, private messages, anything not ours
	}
	body, ok := childOf(el, bodyOpen, bodyClose)
	if !ok {
		// The subject (a message with <subject/> and no body) ends the
		// entering (§7.2.15).
		if !o.joined && bytes.Contains(el, []byte("<subject")) {
			o.joined = true
			select {
			case o.joinEv <- nil:
			default:
			}
		}
		return
	}
	src, seq, ts, ok := parseBody(body)
	if !ok {
		o.stray++
		return
	}
	if src < 0 || src >= len(g.occ) || g.occ[src].room != o.room || !bytes.EqualFold(attr(el, "from"), g.occJID[src]) {
		o.misrouted++
		return
	}
	from := g.occ[src]
	if !o.in[from.pos].record(seq) {
		return
	}
	d := int64(time.Since(epoch)) - ts
	if src == o.idx {
		if !bytes.Equal(attr(el, "id"), appendMessageID(nil, src, seq)) {
			o.otherID++
		}
		o.reflLat = append(o.reflLat, d)
		g.reflected.Add(1)
	} else {
		o.lat = append(o.lat, d)
		g.delivered.Add(1)
	}
	from.got[o.pos].Add(1)
	poke(from.wake)
	g.checkDone()
}

func (g *gcRun) checkDone() {
	if t := g.target.Load(); t > 0 && g.delivered.Load()+g.reflected.Load() >= t {
		g.allInOnce.Do(func() { close(g.allIn) })
	}
}

// enter makes every room an instant room with its first occupant, then
// has the others enter, all rooms at once.
func (g *gcRun) enter(ctx context.Context, sess []*session) error {
	var entered atomic.Int64
	stop := progress(g.cfg, func() string { return fmt.Sprintf("setup: %d/%d occupants entered", entered.Load(), len(g.occ)) })
	defer stop()
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for r := range g.rooms {
		wg.Go(func() {
			owner := g.occ[r*g.n]
			err := g.join(ctx, owner)
			if err == nil {
				entered.Add(1)
				err = g.configure(owner)
			}
			if err != nil {
				first.CompareAndSwap(nil, &err)
				return
			}
			var rw sync.WaitGroup
			for _, o := range g.occ[r*g.n+1 : (r+1)*g.n] {
				rw.Go(func() {
					if err := g.join(ctx, o); err != nil {
						first.CompareAndSwap(nil, &err)
						return
					}
					entered.Add(1)
				})
			}
			rw.Wait()
		})
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		if s := ended(sess); s != "" {
			return fmt.Errorf("setup: %w (a session ended: %s)", *e, s)
		}
		return fmt.Errorf("setup: %w", *e)
	}
	return nil
}

// join has o enter its room, without history, until the subject comes;
// an entering refused with item-not-found (the room still locked) is
// tried again after a backoff, up to eight times.
func (g *gcRun) join(ctx context.Context, o *gcOccupant) error {
	stanza := "<presence to='" + xmlEscape(string(g.occJID[o.idx])) + "'><x xmlns='" + nsMUC + "'><history maxstanzas='0'/></x></presence>"
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if err := o.s.send(stanza); err != nil {
			return fmt.Errorf("%s entering %s: %w", o.s.jid, g.occJID[o.idx], err)
		}
		t := time.NewTimer(g.cfg.timeout)
		var ev []byte
		select {
		case ev = <-o.joinEv:
		case <-o.s.done:
			t.Stop()
			return fmt.Errorf("%s entering %s: the stream ended: %s", o.s.jid, g.occJID[o.idx], o.s.end)
		case <-t.C:
			return fmt.Errorf("%s entering %s: no subject within --timeout", o.s.jid, g.occJID[o.idx])
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
		if ev == nil {
			return nil
		}
		if bytes.Contains(ev, []byte("<item-not-found")) && attempt < 8 {
			g.retries.Add(1)
			wait(ctx, backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		return fmt.Errorf("%s entering %s: %s", o.s.jid, g.occJID[o.idx], ev)
	}
}

// configure has the owner accept the default configuration of the room
// it created (an instant room, §10.1.2), and waits for the answer. A
// room the server did not report as created (no status 201) needs none.
func (g *gcRun) configure(o *gcOccupant) error {
	if !o.created.Load() {
		return nil
	}
	if err := o.s.send("<iq type='set' id='cfg" + strconv.Itoa(o.room) + "' to='" + xmlEscape(g.roomJID[o.room]) + "'><query xmlns='" + nsMUCOwner +
		"'><x xmlns='jabber:x:data' type='submit'/></query></iq>"); err != nil {
		return err
	}
	t := time.NewTimer(g.cfg.timeout)
	defer t.Stop()
	select {
	case el := <-o.iqEv:
		if string(attr(el, "type")) != "result" {
			return fmt.Errorf("%s: configuring %s as an instant room: %s", o.s.jid, g.roomJID[o.room], el)
		}
		return nil
	case <-o.s.done:
		return fmt.Errorf("%s: configuring %s: the stream ended: %s", o.s.jid, g.roomJID[o.room], o.s.end)
	case <-t.C:
		return fmt.Errorf("%s: configuring %s: no answer within --timeout", o.s.jid, g.roomJID[o.room])
	}
}

// appendMessageID appends the id of message seq of occupant src, which
// its reflection should have too.
func appendMessageID(buf []byte, src int, seq int64) []byte {
	buf = append(buf, 'g')
	buf = strconv.AppendInt(buf, int64(src), 10)
	buf = append(buf, '-')
	return strconv.AppendInt(buf, seq, 10)
}

// send writes o's groupchat messages to its room, at most --window
// outstanding to each other occupant. The body is "SRC:SEQ:SENTNS".
func (g *gcRun) send(o *gcOccupant, deadline time.Time) error {
	prefix := []byte("<message type='groupchat' to='" + xmlEscape(g.roomJID[o.room]) + "' id='")
	src := strconv.AppendInt(nil, int64(o.idx), 10)
	w := int64(g.cfg.window)
	room := func(seq int64) bool {
		select {
		case <-g.bounced:
			return true
		default:
		}
		for pos := range o.got {
			if pos != o.pos && seq-o.got[pos].Load() >= w {
				return false
			}
		}
		return true
	}
	return pump(g.cfg, o.s, &o.sent, deadline, room, o.wake, func(buf []byte, seq int64) []byte {
		buf = append(buf, prefix...)
		buf = appendMessageID(buf, o.idx, seq)
		buf = append(buf, "'><body>"...)
		buf = appendStamp(buf, src, seq)
		return append(buf, "</body></message>"...)
	})
}
