package imclients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkTimeout bounds each check: every client process of a check is killed
// when it passes, and every wait ends there. The scripts give up a little
// earlier, so they can say why.
const (
	checkTimeout  = 60 * time.Second
	scriptTimeout = checkTimeout - 5*time.Second
)

// check is one check with one library against one server.
type check struct {
	t   *testing.T
	srv *server
	lib string
	// tag is unique to the check; it is in every resource, body and
	// stanza id, so nothing an earlier check left behind can match.
	tag string
	ctx context.Context // done at the check's deadline
}

func newCheck(t *testing.T, srv *server, lib string) *check {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	t.Cleanup(cancel)
	return &check{t: t, srv: srv, lib: lib, tag: randomHex(4), ctx: ctx}
}

// event is one JSON line printed by a script; see the doc comment of
// testdata/slixmpp_client.py for the kinds and their fields.
type event struct {
	Event     string            `json:"event"`
	Seq       int               `json:"seq"` // result: the command it answers
	JID       string            `json:"jid"`
	From      string            `json:"from"`
	To        string            `json:"to"`
	Type      string            `json:"type"`
	ID        string            `json:"id"`
	Body      string            `json:"body"`
	Status    string            `json:"status"`
	Error     string            `json:"error"` // a stanza error's condition; for "fatal", what failed
	Delay     *delay            `json:"delay"`
	Item      *rosterItem       `json:"item"`
	Roster    []rosterItem      `json:"roster"`
	Blocklist []string          `json:"blocklist"`
	VCard     map[string]string `json:"vcard"`
	// A XEP-0280 carbon: "sent" or "received", and the wrapping message's
	// from and to (From, To and the rest are the forwarded message's).
	Kind       string `json:"kind"`
	CarbonFrom string `json:"carbon_from"`
	CarbonTo   string `json:"carbon_to"`
	// Every XEP-0359 <stanza-id/> of a message or of a carbon's
	// forwarded message.
	StanzaIDs []stanzaID `json:"stanza_ids"`
	// sm-enabled: whether resumption was granted (its id is ID);
	// resumed: the server's h.
	Resume bool `json:"resume"`
	H      int  `json:"h"`
	// The result of mam-page: one page of the archive, in order, and
	// the RSM and <fin/> values that came with it.
	Page     []mamResult `json:"page"`
	Complete bool        `json:"complete"`
	First    string      `json:"first"`
	Last     string      `json:"last"`
	Count    int         `json:"count"`
	// avatar-metadata: the <info/> of the notification's item (ID is the
	// item's id); the result of avatar-get: the bytes, base64.
	Avatar *avatarInfo `json:"avatar"`
	Data   string      `json:"data"`
	// presence: the hash of its vcard-temp:x:update (XEP-0153), "" for
	// an empty <photo/>, nil for none.
	Photo *string `json:"photo"`
	// The result of bookmarks-get: the bookmarks, and (nbxmpp) the
	// module Gajim's rule picked and the account's bookmark features;
	// of disco-features, every feature. bookmark-event: the item's
	// bookmark (ID is the item's id), or its retraction.
	Bookmarks []bookmark `json:"bookmarks"`
	Module    string     `json:"module"`
	Features  []string   `json:"features"`
	Bookmark  *bookmark  `json:"bookmark"`
	Retracted bool       `json:"retracted"`
	// muc-presence, muc-message and the results of muc-join and
	// muc-info: what the library parsed (muc_test.go).
	MUC *mucInfo `json:"muc"`
	// HTTP file upload (upload_test.go). The results of upload and
	// upload-slot: the GET URL, the service and its max-file-size as
	// the library found them (-1 for none); for a refused slot, the
	// application condition (file-too-large) and the max-file-size
	// in it. Of download: the response's status, length, SHA-256 (hex)
	// and Content-Type. A message's jabber:x:oob URL.
	URL         string `json:"url"`
	Service     string `json:"service"`
	MaxFileSize int64  `json:"max_file_size"`
	AppError    string `json:"app_error"`
	HTTPStatus  int    `json:"http_status"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type"`
	OOB         string `json:"oob"`
}

// stanzaID is a XEP-0359 <stanza-id/>.
type stanzaID struct {
	By string `json:"by"`
	ID string `json:"id"`
}

// mamResult is one archived message of a MAM result page, as the library
// unwrapped it: the <result/>'s id and queryid, the JID of the message
// carrying it, and the forwarded message's fields.
type mamResult struct {
	ResultID  string     `json:"result_id"`
	QueryID   string     `json:"queryid"`
	Archive   string     `json:"archive"` // the JID the <result/> came from, as the library took it
	From      string     `json:"from"`
	To        string     `json:"to"`
	Type      string     `json:"type"`
	ID        string     `json:"id"`
	Body      string     `json:"body"`
	StanzaIDs []stanzaID `json:"stanza_ids"`
}

// stanzaIDBy returns the id of the <stanza-id/> by the given JID, or "".
func stanzaIDBy(ids []stanzaID, by string) string {
	for _, s := range ids {
		if s.By == by {
			return s.ID
		}
	}
	return ""
}

// delay is a XEP-0203 <delay/> as the library parsed it.
type delay struct {
	From  string `json:"from"`
	Stamp string `json:"stamp"` // RFC 3339, UTC
}

type rosterItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name"`
	Subscription string   `json:"subscription"`
	Ask          string   `json:"ask"`
	Groups       []string `json:"groups"`
}

// agent is one client session: a script logged in as one full JID.
type agent struct {
	c     *check
	lib   string // the library it runs on: the check's, or another
	name  string // e.g. "alice/1", for messages
	jid   string // the full JID it is bound to
	cmd   *exec.Cmd
	stdin io.WriteCloser
	seq   int // the last command's number; used by the test goroutine only

	mu      sync.Mutex
	events  []event
	used    []bool        // events[i] was returned by a wait
	changed chan struct{} // closed and replaced when an event arrives or stdout ends
	eof     bool          // stdout has ended

	stderr bytes.Buffer  // read only after done
	done   chan struct{} // closed when the process has been waited for
	err    error         // Wait's result; read after done
}

func (a *agent) String() string { return a.lib + " " + a.name }

// login starts one session per "user/label" (label makes the resource,
// with the library and the check's tag) and returns them once each is
// bound to the full JID it asked for.
func (c *check) login(who ...string) []*agent {
	c.t.Helper()
	return c.loginWith(c.lib, who...)
}

// loginWith is login on the library lib instead of the check's.
func (c *check) loginWith(lib string, who ...string) []*agent {
	c.t.Helper()
	return c.loginArgs(lib, nil, who...)
}

// loginArgs is loginWith with extra arguments for the scripts (such as
// --sm or --mam).
func (c *check) loginArgs(lib string, extra []string, who ...string) []*agent {
	c.t.Helper()
	agents := make([]*agent, len(who))
	for i, w := range who {
		user, label, _ := strings.Cut(w, "/")
		agents[i] = c.start(lib, w, c.srv.bare(user)+"/"+lib+"-"+label+"-"+c.tag, c.srv.passwords[user], extra...)
	}
	for _, a := range agents {
		s := a.wait("its session", func(e event) bool { return e.Event == "session" })
		if s.JID != a.jid {
			c.t.Fatalf("%s is bound to %q, want %q", a, s.JID, a.jid)
		}
	}
	return agents
}

// start runs testdata/<lib>_client.py logged in as jid, trusting the
// server's certificate, without waiting for its session. The process is
// killed at the check's deadline, and at its end if still running.
func (c *check) start(lib, name, jid, password string, extra ...string) *agent {
	t := c.t
	t.Helper()
	if password == "" {
		user, _, _ := strings.Cut(jid, "@")
		t.Fatalf("%s %s: the server has no account %s (an anchor's STARLING_ANCHOR_ACCOUNTS must list it)", lib, name, user)
	}
	args := []string{filepath.Join("testdata", lib+"_client.py"),
		"--jid", jid, "--password", password,
		"--host", c.srv.host, "--port", strconv.Itoa(c.srv.port),
		"--mech", c.srv.mech, "--ca-file", c.srv.cert,
		"--timeout", strconv.Itoa(int(scriptTimeout / time.Second)),
	}
	args = append(args, extra...)
	a := &agent{
		c:       c,
		lib:     lib,
		name:    name,
		jid:     jid,
		cmd:     exec.CommandContext(c.ctx, python, args...),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	a.cmd.WaitDelay = 5 * time.Second
	a.cmd.Stderr = &a.stderr
	stdin, err := a.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.stdin = stdin
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logged := make([]string, len(args))
	for i, arg := range args {
		if arg == password {
			arg = "********"
		}
		logged[i] = arg
	}
	t.Logf("%s: %s %s", a, python, strings.Join(logged, " "))
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", a, err)
	}
	pumped := make(chan struct{})
	go a.pump(stdout, pumped)
	go func() {
		<-pumped // Wait closes stdout: read it all first
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		a.cmd.Process.Kill() // no-op if it has exited
		<-a.done
		if t.Failed() {
			t.Logf("%s (%s %s) stderr:\n%s", a, a.lib, libraryCheck[a.lib].version, a.stderr.Bytes())
		}
	})
	return a
}

// pump reads the script's events until stdout ends.
func (a *agent) pump(stdout io.Reader, pumped chan struct{}) {
	defer close(pumped)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			e = event{Event: "fatal", Error: "not a JSON event: " + sc.Text()}
		}
		a.c.t.Logf("%s: %s", a, sc.Bytes())
		a.mu.Lock()
		a.events = append(a.events, e)
		a.used = append(a.used, false)
		close(a.changed)
		a.changed = make(chan struct{})
		a.mu.Unlock()
	}
	a.mu.Lock()
	a.eof = true
	close(a.changed)
	a.mu.Unlock()
}

// wait returns the first event not returned before that satisfies match,
// waiting for it until the check's deadline. A "fatal" event, the end of
// the process or the deadline fail the check.
func (a *agent) wait(what string, match func(event) bool) event {
	e, _ := a.waitIndex(what, match)
	return e
}

// waitIndex is wait, also returning the event's position among all of
// the agent's events.
func (a *agent) waitIndex(what string, match func(event) bool) (event, int) {
	t := a.c.t
	t.Helper()
	for {
		a.mu.Lock()
		for i, e := range a.events {
			if e.Event == "fatal" {
				a.mu.Unlock()
				t.Fatalf("%s, waiting for %s: %s", a, what, e.Error)
			}
			if !a.used[i] && match(e) {
				a.used[i] = true
				a.mu.Unlock()
				return e, i
			}
		}
		eof, changed := a.eof, a.changed
		a.mu.Unlock()
		if eof {
			<-a.done
			t.Fatalf("%s exited (%v) before reporting %s", a, a.err, what)
		}
		select {
		case <-changed:
		case <-a.c.ctx.Done():
			t.Fatalf("%s did not report %s within the check's %v", a, what, checkTimeout)
		}
	}
}

// eventsUntil returns the agent's events up to and including index i.
func (a *agent) eventsUntil(i int) []event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]event(nil), a.events[:i+1]...)
}

// do sends a command (see the scripts' doc comments) and returns its
// result. A result holding a stanza error is returned as it is: see ok.
func (a *agent) do(cmd map[string]any) event {
	t := a.c.t
	t.Helper()
	a.seq++
	seq := a.seq
	cmd["seq"] = seq
	line, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("%s: command %s: %v", a, line, err)
	}
	return a.wait(fmt.Sprintf("the result of %s", line), func(e event) bool { return e.Event == "result" && e.Seq == seq })
}

// ok is do for a command that must succeed.
func (a *agent) ok(cmd map[string]any) event {
	a.c.t.Helper()
	r := a.do(cmd)
	if r.Error != "" {
		a.c.t.Fatalf("%s: %v failed: %s", a, cmd, r.Error)
	}
	return r
}

// quit has the library close its stream and checks that the process ends
// with status 0, having reported no failure.
func (a *agent) quit() {
	t := a.c.t
	t.Helper()
	if _, err := a.stdin.Write([]byte(`{"seq": 0, "cmd": "quit"}` + "\n")); err != nil {
		t.Fatalf("%s: quit: %v", a, err)
	}
	a.stdin.Close()
	select {
	case <-a.done:
	case <-a.c.ctx.Done():
		t.Fatalf("%s did not end within the check's %v", a, checkTimeout)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events {
		if e.Event == "fatal" {
			t.Errorf("%s: %s", a, e.Error)
		}
	}
	if a.err != nil {
		t.Errorf("%s did not close its stream cleanly: %v", a, a.err)
	}
}
