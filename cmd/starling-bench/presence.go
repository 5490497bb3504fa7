package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The presence scenario (RFC 6121 §3, §4.4): --n users, one session each,
// on a ring where each is a mutual contact ('both') of the --contacts K
// nearest, K/2 on each side. The subscriptions are made through the
// protocol before anything is measured; then every user sends --count
// presence updates, each of which the server broadcasts to the user's K
// contacts (one delivery each) and echoes to the user, who ignores it.

// ring is the contact topology: user i's contacts are, by slot,
// i+1…i+K/2, then i-1…i-K/2 (mod n). Contacts are so on both sides, and
// with K < n nobody is their own contact or the same contact twice.
type ring struct{ n, k int }

// contact is user i's contact in slot.
func (g ring) contact(i, slot int) int {
	h := g.k / 2
	if slot < h {
		return (i + slot + 1) % g.n
	}
	return ((i-(slot-h+1))%g.n + g.n) % g.n
}

// slot is user c's slot among user i's contacts, or -1 if c is not one.
func (g ring) slot(i, c int) int {
	h := g.k / 2
	switch d := ((c-i)%g.n + g.n) % g.n; {
	case d >= 1 && d <= h:
		return d - 1
	case d >= g.n-h:
		return h + g.n - d - 1
	}
	return -1
}

// member is one user of the presence scenario.
type member struct {
	idx  int
	s    *session
	wake chan struct{} // a contact received one of our updates
	// got counts, by slot, our updates that contact has received (once
	// each): the window to it is our sequence number minus got.
	got  []atomic.Int64
	sent atomic.Int64 // updates written, by the sender goroutine

	// Owned by the session's reader until it has returned, except need
	// and drop, which are final once the session's rostered is closed.
	sub       []string     // by slot: the contact's subscription state in our roster
	others    map[int]bool // other users in our roster with a subscription either way
	ready     bool         // every contact is in 'both' and others is empty
	need      []int        // slots of the contacts we were not subscribed to at the roster answer
	drop      []int        // others at the roster answer
	in        []inbox      // by slot: the contact's updates
	lat       []int64
	misrouted int64
	bounced   int64
	bounce    string // the first presence error received, for the report
}

// presenceRun is one run of the scenario.
type presenceRun struct {
	cfg           *config
	g             ring
	users, domain []byte // cfg.users and cfg.domain, to recognize our JIDs
	members       []*member

	// The setup: users ready, roster pushes received, and a wake-up for
	// subscribe at each push.
	ready, pushes atomic.Int64
	moved         chan struct{}

	delivered, target atomic.Int64 // updates checked off at a contact; how many are expected
	allIn             chan struct{}
	allInOnce         sync.Once

	pep *pepRun // the pep scenario's; nil for presence
}

// runPresence sets up the ring's subscriptions, then measures presence
// updates broadcast to the contacts and checks that each reaches each
// contact exactly once.
func runPresence(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	r.Delivery = &Delivery{Window: cfg.window, Batch: cfg.batch, Contacts: cfg.contacts}
	k := cfg.contacts
	pr := &presenceRun{cfg: cfg, g: ring{cfg.n, k}, users: []byte(cfg.users), domain: []byte(cfg.domain),
		members: make([]*member, cfg.n), moved: make(chan struct{}, 1), allIn: make(chan struct{})}
	if cfg.scenario == "pep" {
		pr.pep = newPEPRun(cfg.n, k)
	}
	for i := range pr.members {
		m := &member{idx: i, wake: make(chan struct{}, 1), got: make([]atomic.Int64, k),
			sub: make([]string, k), others: map[int]bool{}, in: make([]inbox, k)}
		for slot := range m.in {
			m.in[slot].last = -1
			if cfg.duration == 0 {
				m.in[slot].seen = make([]uint64, (cfg.count+63)/64)
			}
		}
		if cfg.duration == 0 {
			m.lat = make([]int64, 0, cfg.count*k)
		}
		pr.members[i] = m
	}

	t0 := time.Now()
	sess, _ := openSessions(ctx, cfg, r, cfg.n,
		func(i int) string { return cfg.account(i + 1) },
		func(int) string { return cfg.scenario },
		pr.handler)
	defer closeAll(sess, 5*time.Second)
	for i, s := range sess {
		if s == nil {
			return r, r.err()
		}
		if s.rosterErr {
			r.fail(fmt.Errorf("%s: the roster get was answered with an error", s.jid))
			return r, r.err()
		}
		pr.members[i].s = s
	}
	if err := pr.subscribe(ctx, r, sess); err != nil {
		r.fail(err)
		return r, r.err()
	}
	if pr.pep != nil {
		if err := pr.warmUp(ctx, sess); err != nil {
			r.fail(err)
			return r, r.err()
		}
	}
	r.SetupS = time.Since(t0).Seconds()

	var deadline time.Time
	if cfg.duration > 0 {
		deadline = time.Now().Add(cfg.duration)
	}
	stop := progress(cfg, func() string { return fmt.Sprintf("deliveries: %d", pr.delivered.Load()) })
	send := pr.send
	if pr.pep != nil {
		send = pr.sendPEP
	}
	a := sample(cfg.pid)
	var wg sync.WaitGroup
	var stalls atomic.Int64
	var sendErr atomic.Pointer[error]
	for _, m := range pr.members {
		wg.Go(func() {
			if err := send(m, deadline); err != nil {
				if errors.Is(err, errStall) {
					stalls.Add(1)
				}
				sendErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	var sent int64
	for _, m := range pr.members {
		sent += m.sent.Load()
	}
	pr.target.Store(max(sent*int64(k), 1))
	pr.checkDone()
	t := time.NewTimer(cfg.timeout)
	select {
	case <-pr.allIn:
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
	var lat []int64
	bounce := ""
	for _, m := range pr.members {
		for _, in := range m.in {
			r.Duplicates += in.dups
			r.OutOfOrder += in.outOfOrder
		}
		r.Misrouted += m.misrouted
		r.Bounced += m.bounced
		if bounce == "" {
			bounce = m.bounce
		}
		lat = append(lat, m.lat...)
	}
	r.Sent = sent
	r.Delivered = pr.delivered.Load()
	r.Lost = sent*int64(k) - r.Delivered
	r.measured(a, b, r.Delivered)
	if sent > 0 {
		r.ServerCPUUsPerUpdate = r.ServerCPUS * 1e6 / float64(sent)
	}
	r.latencies(lat)
	r.bounce = bounce // verdict names it
	r.verdict(sendErr.Load(), stalls.Load(), early)
	if pr.pep != nil {
		r.PEP = &PEP{Node: pepNode, Ver: capsVer, DiscoQueries: pr.pep.discos.Load(), Stale: pr.pep.stale.Load(),
			WarmUpErrors: pr.pep.warmErrors.Load()}
		if e := pr.pep.firstWarmErr.Load(); e != nil {
			r.FirstWarmUpError = *e
		}
	}
	return r, r.err()
}

// handler is member i's reader's: it follows the roster (answer and
// pushes), approves its contacts' subscription requests and checks off
// their presence updates. serve answers the pushes.
func (pr *presenceRun) handler(i int, s *session) func([]byte) bool {
	m := pr.members[i]
	return func(el []byte) bool {
		if pr.pep != nil && pr.handlePEP(m, s, el) {
			return true
		}
		switch {
		case is(el, "presence"):
			pr.presence(m, s, el)
			return true
		case is(el, "iq") && bytes.Contains(el, []byte("jabber:iq:roster")):
			switch t := string(attr(el, "type")); {
			case t == "result" && string(attr(el, "id")) == "r1":
				pr.roster(m, el, true)
			case t == "set":
				pr.roster(m, el, false)
			}
		}
		return false
	}
}

// roster applies the items of the roster answer (first) or of a push to
// m's view of its roster. At the answer it notes which contacts m must
// still ask and which other users (from an earlier run with other sizes)
// it must remove. It counts the pushes and the users who have become
// ready: all contacts in 'both', no other user subscribed either way.
func (pr *presenceRun) roster(m *member, el []byte, first bool) {
	if !first {
		pr.pushes.Add(1)
		poke(pr.moved)
	}
	for rest := el; ; rest = rest[len("<item"):] {
		i := bytes.Index(rest, []byte("<item"))
		if i < 0 {
			break
		}
		rest = rest[i:]
		c := pr.memberOf(attr(rest, "jid"))
		if c < 0 || c == m.idx {
			continue
		}
		sub := string(attr(rest, "subscription"))
		if slot := pr.g.slot(m.idx, c); slot >= 0 {
			m.sub[slot] = sub
		} else if sub == "to" || sub == "from" || sub == "both" {
			m.others[c] = true
		} else {
			delete(m.others, c)
		}
	}
	both := 0
	for slot, sub := range m.sub {
		if first && sub != "to" && sub != "both" {
			m.need = append(m.need, slot)
		}
		if sub == "both" {
			both++
		}
	}
	if first {
		for c := range m.others {
			m.drop = append(m.drop, c)
		}
	}
	if both == len(m.sub) && len(m.others) == 0 && !m.ready {
		m.ready = true
		pr.ready.Add(1)
		poke(pr.moved)
	}
}

// presence handles a presence stanza m's session received.
func (pr *presenceRun) presence(m *member, s *session, el []byte) {
	switch string(attr(el, "type")) {
	case "":
		// Only updates carry a status of ours; initial presence and the
		// presence sent when a subscription is approved do not.
		if st, ok := childOf(el, statusOpen, statusClose); ok {
			if src, seq, ts, ok := parseBody(st); ok {
				pr.update(m, attr(el, "from"), src, seq, ts)
			}
		}
	case "subscribe":
		from := attr(el, "from")
		if c := pr.memberOf(from); c >= 0 && pr.g.slot(m.idx, c) >= 0 {
			s.send("<presence type='subscribed' to='" + string(from) + "'/>")
		}
	case "error":
		m.bounced++
		if m.bounce == "" {
			m.bounce = string(el)
		}
	}
}

// update checks off update seq of user src, received by m from the JID
// from, and gives src's window to m room.
func (pr *presenceRun) update(m *member, from []byte, src int, seq, ts int64) {
	if src == m.idx {
		return // our own, echoed to our resource (§4.4.2)
	}
	slot := -1
	if src < len(pr.members) && pr.memberOf(from) == src {
		slot = pr.g.slot(m.idx, src)
	}
	if slot < 0 {
		m.misrouted++
		return
	}
	if !m.in[slot].record(seq) {
		return
	}
	m.lat = append(m.lat, int64(time.Since(epoch))-ts)
	sender := pr.members[src]
	sender.got[pr.g.slot(src, m.idx)].Add(1)
	poke(sender.wake)
	pr.delivered.Add(1)
	pr.checkDone()
}

func (pr *presenceRun) checkDone() {
	if t := pr.target.Load(); t > 0 && pr.delivered.Load() >= t {
		pr.allInOnce.Do(func() { close(pr.allIn) })
	}
}

// memberOf returns the user whose account JID j (bare or full) is, or -1.
func (pr *presenceRun) memberOf(j []byte) int {
	local, dom, ok := bytes.Cut(j, []byte("@"))
	if !ok {
		return -1
	}
	if i := bytes.IndexByte(dom, '/'); i >= 0 {
		dom = dom[:i]
	}
	if len(local) <= len(pr.users) || !bytes.EqualFold(local[:len(pr.users)], pr.users) || !bytes.EqualFold(dom, pr.domain) {
		return -1
	}
	n := 0
	for _, c := range local[len(pr.users):] {
		if c < '0' || c > '9' || n > len(pr.members) {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > len(pr.members) {
		return -1
	}
	return n - 1
}

// subscribe makes every user and each of its contacts mutual contacts:
// each user asks the contacts it is not subscribed to yet (§3.1.2), the
// readers approve requests from contacts (§3.1.5), and subscribe waits
// until every roster shows all the user's contacts in 'both', giving up
// when --timeout passes without a roster push. Contacts already in
// 'both' (an earlier run) are not asked again; other users of the run in
// a roster (an earlier run with other sizes) are removed from it, which
// cancels their subscriptions both ways (§2.5.2).
func (pr *presenceRun) subscribe(ctx context.Context, r *result, sess []*session) error {
	removed := 0
	for _, m := range pr.members {
		if len(m.need) == 0 && len(m.drop) == 0 {
			continue
		}
		jid := func(i int) string { return xmlEscape(pr.cfg.account(i+1) + "@" + pr.cfg.domain) }
		var b []byte
		for _, c := range m.drop {
			b = append(b, "<iq type='set' id='drop"...)
			b = strconv.AppendInt(b, int64(c), 10)
			b = append(b, "'><query xmlns='jabber:iq:roster'><item subscription='remove' jid='"...)
			b = append(b, jid(c)...)
			b = append(b, "'/></query></iq>"...)
		}
		for _, slot := range m.need {
			b = append(b, "<presence type='subscribe' to='"...)
			b = append(b, jid(pr.g.contact(m.idx, slot))...)
			b = append(b, "'/>"...)
		}
		if err := m.s.write(b); err != nil {
			return fmt.Errorf("setup: %s: %w", m.s.jid, err)
		}
		r.SubscriptionRequests += int64(len(m.need))
		removed += len(m.drop)
	}
	if removed > 0 {
		fmt.Fprintf(pr.cfg.stderr, "setup: removed %d roster items of users who are not contacts with --n %d --contacts %d\n", removed, pr.cfg.n, pr.cfg.contacts)
	}
	n := int64(len(pr.members))
	stop := progress(pr.cfg, func() string {
		return fmt.Sprintf("setup: %d/%d users ready, %d roster pushes", pr.ready.Load(), n, pr.pushes.Load())
	})
	defer stop()
	t := time.NewTimer(pr.cfg.timeout)
	defer t.Stop()
	for pr.ready.Load() < n {
		select {
		case <-pr.moved:
			t.Reset(pr.cfg.timeout)
		case <-t.C:
			if e := ended(sess); e != "" {
				return fmt.Errorf("setup: a session ended: %s", e)
			}
			return fmt.Errorf("setup: %d of %d users have every contact in 'both', and no roster push came for --timeout", pr.ready.Load(), n)
		case <-ctx.Done():
			return ctx.Err()
		}
		if e := ended(sess); e != "" {
			return fmt.Errorf("setup: a session ended: %s", e)
		}
	}
	return nil
}

// room reports, for the next update seq of m, whether every contact has
// fewer than w of m's updates outstanding.
func (m *member) room(w int64) func(seq int64) bool {
	return func(seq int64) bool {
		for i := range m.got {
			if seq-m.got[i].Load() >= w {
				return false
			}
		}
		return true
	}
}

// send writes m's presence updates, at most --window outstanding to each
// contact. The status is "SRC:SEQ:SENTNS", digits only.
func (pr *presenceRun) send(m *member, deadline time.Time) error {
	src := strconv.AppendInt(nil, int64(m.idx), 10)
	room := m.room(int64(pr.cfg.window))
	return pump(pr.cfg, m.s, &m.sent, deadline, room, m.wake, func(buf []byte, seq int64) []byte {
		buf = append(buf, "<presence><status>"...)
		buf = appendStamp(buf, src, seq)
		return append(buf, "</status></presence>"...)
	})
}
