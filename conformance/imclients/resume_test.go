package imclients

import (
	"fmt"
	"slices"
	"strings"
)

// Stream management (XEP-0198) resumption after a lost connection, with
// the libraries' own resumption (issue 13).

// checkResumeClose: alice, with stream management and resumption on
// (XEP-0198 §3, §5), gets messages from bob; her TCP connection then dies
// under the stream (a FIN, with no </stream:stream> and no TLS
// close_notify); bob goes on writing to her; the library reconnects and
// resumes (§5), and alice must end up with every one of bob's messages
// exactly once and in order. See smResume.
func checkResumeClose(c *check) { smResume(c, "close") }

// checkResumeSilent is checkResumeClose with a connection that dies
// silently: the client's kernel socket stays open (a duplicate of it is
// kept), so the server sees nothing and goes on writing to it, as when a
// phone loses its network. The resumption on a new connection must take
// the session over from the connection the server still thinks alive;
// when that old connection finally closes, the resumed session must go on.
// nbxmpp shuts its socket down itself, so only slixmpp can do this.
func checkResumeSilent(c *check) {
	if c.lib == "nbxmpp" {
		c.t.Skip("nbxmpp shuts its socket down itself when it drops a connection (Gio.Socket.shutdown): the server always sees a FIN; resume-close covers it")
	}
	smResume(c, "silent")
}

// smResume: alice/1 logs in with stream management, and enabling it with
// resumption must be granted with an id. bob writes her 5 messages, which
// she receives; then her connection is dropped (how: "close" or
// "silent"); bob writes 10 more, and a round trip of his own (a roster
// fetch) shows the server has routed them all; alice's library reconnects
// and resumes the stream — a resumption, not a new binding —; bob writes
// 5 more. alice must have received all 20 exactly once, in the order bob
// sent them, from bob's full JID, and bob must have received no error.
// For "silent", the duplicate of the old socket is closed after the
// resumption and before bob's last 5, which must still arrive.
func smResume(c *check, how string) {
	t := c.t
	a := c.loginArgs(c.lib, []string{"--sm"}, "alice/1")[0]
	en := a.wait("stream management enabled", func(e event) bool { return e.Event == "sm-enabled" })
	if !en.Resume || en.ID == "" {
		t.Fatalf("%s: stream management enabled as %+v, want resumption granted with an id", a, en)
	}
	b := c.login("bob/1")[0]
	a.ok(cmd("presence", "status", ""))

	var ids []string
	send := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			id := fmt.Sprintf("sm-%s-%02d", c.tag, i)
			ids = append(ids, id)
			b.ok(cmd("send", "to", a.jid, "body", fmt.Sprintf("message %d of %s", i, c.tag), "id", id))
		}
	}
	received := func(id string) func(event) bool {
		return func(e event) bool { return e.Event == "message" && e.ID == id }
	}

	send(1, 5)
	a.wait("bob's message "+ids[4], received(ids[4]))

	a.ok(cmd("drop", "how", how))
	a.wait("the end of the connection", func(e event) bool { return e.Event == "dropped" })
	send(6, 15)
	// The server has handled bob's messages before it answers the IQ
	// he sends after them.
	b.ok(cmd("roster-get"))

	a.ok(cmd("resume"))
	r := a.wait("the resumption", func(e event) bool {
		return e.Event == "resumed" || e.Event == "sm-failed" || e.Event == "session"
	})
	if r.Event != "resumed" {
		t.Fatalf("%s did not resume its stream: %+v", a, r)
	}
	if how == "silent" {
		a.ok(cmd("close-old"))
	}
	send(16, 20)
	a.wait("bob's last message "+ids[len(ids)-1], received(ids[len(ids)-1]))
	// Everything has arrived once alice's stream closes cleanly (the
	// server answers </stream:stream> after what it had queued).
	a.quit()
	b.quit()

	var got []string
	for _, e := range a.eventsUntil(len(a.events) - 1) {
		if e.Event == "message" && strings.HasPrefix(e.ID, "sm-"+c.tag) {
			got = append(got, e.ID)
			if e.From != b.jid || e.Type != "chat" {
				t.Errorf("%s got %s as %+v, want a chat message from %s", a, e.ID, e, b.jid)
			}
		}
	}
	counts := map[string]int{}
	for _, id := range got {
		counts[id]++
	}
	for _, id := range ids {
		switch n := counts[id]; {
		case n == 0:
			t.Errorf("%s never received %s (lost across the %s drop and resumption)", a, id, how)
		case n > 1:
			t.Errorf("%s received %s %d times (duplicated by the resumption)", a, id, n)
		}
	}
	if !t.Failed() && !slices.Equal(got, ids) {
		t.Errorf("%s received bob's messages in the order %q, want %q", a, got, ids)
	}
	for _, e := range b.eventsUntil(len(b.events) - 1) {
		if e.Event == "message" && e.Type == "error" {
			t.Errorf("%s got an error back while alice was away: %+v", b, e)
		}
	}
}
