package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// The pep scenario (XEP-0163 personal eventing): the presence scenario's
// ring of --n users with --contacts K mutual contacts each, set up the
// same way, but every session's presence carries entity capabilities
// (XEP-0115) whose disco#info has the feature pepNode+"+notify", and
// every session answers the server's disco#info queries for its
// node#ver. Each user then publishes --count items to pepNode on its own
// account, at most --window in flight to each contact, and every contact
// must get a notification (<message><event><items node><item id>) of each
// exactly once. The latency runs from writing the publish to the
// contact's reading of the notification.
//
// Before the measurement a warm-up, not measured: every session sends its
// presence again (now that the subscriptions exist, the servers see each
// contact's caps and ask for the disco#info of an unknown ver), then each
// user publishes warm-up items, one every half second, until each of its
// contacts has had a notification of one. A warm-up publish the server
// refuses is counted but does not fail the run; a measured one does.
// ejabberd 23.01 answers many of the first ones item-not-found: the
// users' nodes, auto-created at once, all take pubsub_index's lock in
// Mnesia, whose transactions abort as deadlocked ("cyclic" in its error
// log) until each has been created. Item ids carry a nonce of the
// run, so that the last item of an earlier run, which the servers send
// when a session becomes available, is told apart and ignored.

const (
	pepNode  = "urn:starling:bench:pep"
	capsNode = "https://github.com/starling-xmpp/starling/cmd/starling-bench"
	nsDisco  = "http://jabber.org/protocol/disco#info"
	nsCaps   = "http://jabber.org/protocol/caps"
)

// pepFeatures are the features of the disco#info the sessions advertise.
var pepFeatures = []string{nsCaps, nsDisco, pepNode + "+notify"}

// capsVer is the XEP-0115 §5.1 verification string's SHA-1 (base64) of
// the disco#info answerDisco gives: one identity client/pc, pepFeatures.
var capsVer = func() string {
	s := "client/pc//starling-bench<"
	f := slices.Clone(pepFeatures)
	slices.Sort(f)
	for _, v := range f {
		s += v + "<"
	}
	h := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}()

// capsPresence is the presence every session of the pep scenario sends.
var capsPresence = "<presence><c xmlns='" + nsCaps + "' hash='sha-1' node='" + capsNode + "' ver='" + capsVer + "'/></presence>"

// initialPresence is what a session of the scenario sends as its initial
// presence.
func initialPresence(cfg *config) string {
	if cfg.scenario == "pep" {
		return capsPresence
	}
	return "<presence/>"
}

// pepRun is what the pep scenario adds to a presenceRun.
type pepRun struct {
	nonce  string // the run's, at the start of every item id
	discos atomic.Int64
	// warm[i][slot] says user i's contact in slot has had a notification
	// of one of i's warm-up items.
	warm   [][]atomic.Bool
	warmed atomic.Int64 // pairs warmed
	stale  atomic.Int64 // notifications of items of earlier runs, ignored
	// Warm-up publishes the server refused, and the first refusal.
	warmErrors   atomic.Int64
	firstWarmErr atomic.Pointer[string]
}

func newPEPRun(n, k int) *pepRun {
	b := make([]byte, 4)
	rand.Read(b)
	p := &pepRun{nonce: hex.EncodeToString(b), warm: make([][]atomic.Bool, n)}
	for i := range p.warm {
		p.warm[i] = make([]atomic.Bool, k)
	}
	return p
}

// handle deals with what is PEP's in el, received by m: the server's
// disco#info queries, notifications, publish errors. It reports whether
// el was one of those.
func (pr *presenceRun) handlePEP(m *member, s *session, el []byte) bool {
	p := pr.pep
	switch {
	case is(el, "iq"):
		switch string(attr(el, "type")) {
		case "get":
			if !bytes.Contains(el, []byte(nsDisco)) {
				return false
			}
			p.discos.Add(1)
			s.send(discoAnswer(el))
			return true
		case "error":
			// A measured publish refused fails the run; a warm-up one is
			// published again the next round, and counted apart.
			switch id := attr(el, "id"); {
			case len(id) > 0 && id[0] == 'p':
				m.bounced++
				if m.bounce == "" {
					m.bounce = string(el)
				}
				return true
			case len(id) > 0 && id[0] == 'w':
				if p.warmErrors.Add(1) == 1 {
					e := string(el)
					p.firstWarmErr.Store(&e)
				}
				return true
			}
		}
		return false
	case is(el, "message"):
		i := bytes.Index(el, []byte("<items"))
		if i < 0 || !bytes.Contains(el, []byte("http://jabber.org/protocol/pubsub#event")) {
			return false
		}
		if string(attr(el[i:], "node")) != pepNode {
			return true
		}
		for rest := el[i+len("<items"):]; ; {
			j := bytes.Index(rest, []byte("<item"))
			if j < 0 {
				return true
			}
			rest = rest[j:]
			if len(rest) > 5 && rest[5] != ' ' && rest[5] != '>' && rest[5] != '/' {
				rest = rest[5:]
				continue
			}
			pr.notification(m, attr(el, "from"), rest)
			rest = rest[5:]
		}
	}
	return false
}

// notification checks off the item at the start of it, a notification of
// the user whose bare JID from is, received by m.
func (pr *presenceRun) notification(m *member, from, it []byte) {
	p := pr.pep
	id := attr(it, "id")
	rest, ok := bytes.CutPrefix(id, []byte(p.nonce+"-"))
	if !ok {
		p.stale.Add(1)
		return
	}
	if len(rest) > 0 && rest[0] == 'w' {
		src := pr.memberOf(from)
		if src < 0 || src == m.idx {
			return
		}
		if slot := pr.g.slot(src, m.idx); slot >= 0 && !p.warm[src][slot].Swap(true) {
			p.warmed.Add(1)
			poke(pr.moved)
		}
		return
	}
	x, ok := childOf(it, []byte("<x"), []byte("</x>"))
	if !ok {
		m.misrouted++
		return
	}
	src, seq, ts, ok := parseBody(x)
	if !ok {
		m.misrouted++
		return
	}
	pr.update(m, from, src, seq, ts)
}

// discoAnswer is the answer to the disco#info query q: the identity and
// pepFeatures, for the node asked about if any.
func discoAnswer(q []byte) string {
	node := ""
	if i := bytes.Index(q, []byte("<query")); i >= 0 {
		if n := attr(q[i:], "node"); len(n) > 0 {
			node = " node='" + xmlEscape(string(n)) + "'"
		}
	}
	b := "<iq type='result' id='" + xmlEscape(string(attr(q, "id"))) + "'"
	if from := attr(q, "from"); len(from) > 0 {
		b += " to='" + xmlEscape(string(from)) + "'"
	}
	b += "><query xmlns='" + nsDisco + "'" + node + "><identity category='client' type='pc' name='starling-bench'/>"
	for _, f := range pepFeatures {
		b += "<feature var='" + f + "'/>"
	}
	return b + "</query></iq>"
}

// publish appends the publish of item id with payload to buf.
func appendPublish(buf []byte, iqID string, seq int64, itemID []byte, payload func([]byte) []byte) []byte {
	buf = append(buf, "<iq type='set' id='"...)
	buf = append(buf, iqID...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='"+pepNode+"'><item id='"...)
	buf = append(buf, itemID...)
	buf = append(buf, "'><x xmlns='"+pepNode+"'>"...)
	buf = payload(buf)
	return append(buf, "</x></item></publish></pubsub></iq>"...)
}

// warmUp sends every session's presence again, then publishes warm-up
// items of each user not yet warmed, every half second, until every
// contact has had a notification of one of them from each of its
// contacts; it gives up after --timeout without progress.
func (pr *presenceRun) warmUp(ctx context.Context, sess []*session) error {
	p := pr.pep
	for _, m := range pr.members {
		if err := m.s.send(capsPresence); err != nil {
			return fmt.Errorf("warm-up: %s: %w", m.s.jid, err)
		}
	}
	total := int64(len(pr.members) * pr.g.k)
	stop := progress(pr.cfg, func() string {
		return fmt.Sprintf("warm-up: %d/%d contact pairs notified, %d disco#info queries answered", p.warmed.Load(), total, p.discos.Load())
	})
	defer stop()
	last, lastAt := int64(-1), time.Now()
	for round := 0; p.warmed.Load() < total; round++ {
		if w := p.warmed.Load(); w != last {
			last, lastAt = w, time.Now()
		} else if time.Since(lastAt) > pr.cfg.timeout {
			return fmt.Errorf("warm-up: %d of %d contact pairs had a notification, none more for --timeout (%d disco#info queries answered)",
				w, total, p.discos.Load())
		}
		for i, m := range pr.members {
			done := true
			for slot := range p.warm[i] {
				done = done && p.warm[i][slot].Load()
			}
			if done {
				continue
			}
			id := []byte(p.nonce + "-w" + strconv.Itoa(round))
			if err := m.s.write(appendPublish(nil, "w", int64(round), id, func(b []byte) []byte { return append(b, "warm-up"...) })); err != nil {
				return fmt.Errorf("warm-up: %s: %w", m.s.jid, err)
			}
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		if e := ended(sess); e != "" {
			return fmt.Errorf("warm-up: a session ended: %s", e)
		}
	}
	return nil
}

// sendPEP publishes m's items, at most --window outstanding to each
// contact. The item id is NONCE-SEQ, its payload "SRC:SEQ:SENTNS".
func (pr *presenceRun) sendPEP(m *member, deadline time.Time) error {
	src := strconv.AppendInt(nil, int64(m.idx), 10)
	room := m.room(int64(pr.cfg.window))
	var id []byte
	return pump(pr.cfg, m.s, &m.sent, deadline, room, m.wake, func(buf []byte, seq int64) []byte {
		id = append(append(append(id[:0], pr.pep.nonce...), '-'), src...)
		id = append(id, '-')
		id = strconv.AppendInt(id, seq, 10)
		return appendPublish(buf, "p", seq, id, func(b []byte) []byte { return appendStamp(b, src, seq) })
	})
}
