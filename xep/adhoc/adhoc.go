// Package adhoc implements Ad-Hoc Commands (XEP-0050) on the server's
// domains, and with them the Service Administration commands of XEP-0133
// for the administrators the configuration names ([server] admins): add,
// delete, disable and re-enable users, end their sessions, change their
// passwords, count and list registered and online users, send
// announcements.
//
// The commands are found with service discovery: disco#items of the node
// http://jabber.org/protocol/commands lists those the requester may run
// (nothing, for anyone but an administrator: XEP-0050 §4.2, XEP-0133 §3),
// disco#info of a command's node describes it. A command runs as a
// session of stages: each stage is a data form (XEP-0004) the requester
// fills in and moves on from with the actions the stage allows (next,
// prev, complete; cancel always), until the command completes with notes
// and perhaps a result form. Sessions live in memory, bound to the full
// JID that started them, and expire after a while without a step.
package adhoc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
)

// NS is the XEP-0050 namespace, also the node of the command list.
const NS = "http://jabber.org/protocol/commands"

// Limits of the sessions kept in memory.
const (
	// Timeout is how long a session waits for its next step.
	Timeout = 10 * time.Minute
	// maxPerRequester bounds the sessions of one full JID; starting one
	// more ends its oldest.
	maxPerRequester = 10
	// maxSessions bounds all sessions; starting one more ends the
	// oldest.
	maxSessions = 1000
)

// Command is one ad-hoc command.
type Command struct {
	// Node is its node (XEP-0050 §2.2), Name what a client shows.
	Node, Name string
	// Admin: only the host's administrators see and run it.
	Admin bool
	// Stages are the forms the requester fills in, in order; none
	// completes the command at once.
	Stages []Stage
	// Run completes the command with what the stages submitted.
	Run func(ctx context.Context, c *Call) (*Outcome, error)
}

// Stage is one form of a command.
type Stage struct {
	// Form returns the form to fill in; c.Values holds what was
	// submitted so far.
	Form func(ctx context.Context, c *Call) *Form
	// Complete: the command may complete from this stage, before the
	// last one (the later stages have nothing required).
	Complete bool
}

// Call is one run of a command.
type Call struct {
	// Host is the domain the command was sent to; From the requester's
	// full JID.
	Host string
	From jid.JID
	// Values are the fields submitted so far, by var.
	Values Values

	req dispatch.Request
}

// AfterReply runs f once the command's answer has been queued: for what
// would stop the requester from reading it (ending the requester's own
// session, deleting the requester's account).
func (c *Call) AfterReply(f func()) { c.req.AfterReply(f) }

// Outcome is what a completed command answers: notes (XEP-0050 §3.4) and
// perhaps a form of type "result".
type Outcome struct {
	Notes  []Note
	Result *Form
}

// Note is a note of a command's answer: Type "info", "warn" or "error".
type Note struct {
	Type, Text string
}

// Info returns an Outcome of one info note.
func Info(text string) *Outcome { return &Outcome{Notes: []Note{{"info", text}}} }

// The errors of XEP-0050 §4.4, their specific conditions in NS.
func commandError(typ stanza.ErrorType, cond, specific, text string) *stanza.Error {
	e := &stanza.Error{Type: typ, Condition: cond, Text: text}
	if specific != "" {
		e.App = []byte("<" + specific + " xmlns='" + NS + "'/>")
	}
	return e
}

// BadPayload is the error for a form that lacks a required field or holds
// a value that cannot be used (XEP-0050 §4.4: bad-request, bad-payload);
// text says which.
func BadPayload(text string) *stanza.Error {
	return commandError(stanza.Modify, stanza.BadRequest, "bad-payload", text)
}

var (
	errMalformedAction = commandError(stanza.Modify, stanza.BadRequest, "malformed-action", "")
	errBadAction       = commandError(stanza.Modify, stanza.BadRequest, "bad-action", "")
	errBadSessionID    = commandError(stanza.Modify, stanza.BadRequest, "bad-sessionid", "")
	errExpired         = commandError(stanza.Cancel, stanza.NotAllowed, "session-expired", "")
	errForbidden       = &stanza.Error{Type: stanza.Cancel, Condition: stanza.Forbidden}
	errNotFound        = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
)

// session is a command being run.
type session struct {
	id    string
	cmd   *Command
	owner jid.JID // the full JID that started it
	host  string
	stage int
	vals  Values
	last  time.Time // of its last step
}

// Service runs the commands.
type Service struct {
	// IsAdmin tells whether bare administers host.
	IsAdmin func(host string, bare jid.JID) bool
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	mu       sync.Mutex
	commands []*Command
	sessions map[string]*session
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Add makes c available.
func (s *Service) Add(c *Command) {
	s.mu.Lock()
	s.commands = append(s.commands, c)
	s.mu.Unlock()
}

// visible returns the commands the sender of req may see, in order.
func (s *Service) visible(req dispatch.Request) []*Command {
	admin := s.IsAdmin(req.To.Domainpart(), req.Stanza.From.Bare())
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Command
	for _, c := range s.commands {
		if admin || !c.Admin {
			out = append(out, c)
		}
	}
	return out
}

// Register adds the command handler and the disco nodes to m.
func (s *Service) Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	m.Handle(NS, "command", s.handle)
	m.AddNodes(s)
}

// NodeItems lists the commands req's sender may run (XEP-0050 §2.2),
// as items of the server's domain.
func (s *Service) NodeItems(_ context.Context, req dispatch.Request, node string) ([]dispatch.Item, bool) {
	if node != NS || !req.ForServer() {
		return nil, false
	}
	var items []dispatch.Item
	for _, c := range s.visible(req) {
		items = append(items, dispatch.Item{JID: req.To.Domainpart(), Node: c.Node, Name: c.Name})
	}
	return items, true
}

// NodeInfo describes the command list and each command the sender may
// run (XEP-0050 §2.4).
func (s *Service) NodeInfo(_ context.Context, req dispatch.Request, node string) ([]dispatch.Identity, []string, bool) {
	if !req.ForServer() {
		return nil, nil, false
	}
	if node == NS {
		return []dispatch.Identity{{Category: "automation", Type: "command-list", Name: "Commands"}}, nil, true
	}
	for _, c := range s.visible(req) {
		if c.Node == node {
			return []dispatch.Identity{{Category: "automation", Type: "command-node", Name: c.Name}}, []string{NS, NSData}, true
		}
	}
	return nil, nil, false
}

// request is the <command/> of an IQ set.
type request struct {
	Node      string     `xml:"node,attr"`
	SessionID string     `xml:"sessionid,attr"`
	Action    string     `xml:"action,attr"`
	Form      *submitted `xml:"jabber:x:data x"`
}

// handle runs one step of a command (XEP-0050 §3).
func (s *Service) handle(ctx context.Context, req dispatch.Request) ([]byte, error) {
	if !req.Set() {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "commands are executed with an IQ set"}
	}
	if !req.ForServer() {
		return nil, errNotFound // an account runs no commands
	}
	var r request
	if err := stanza.Decode(req.Payload, &r); err != nil {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	switch r.Action {
	case "", "execute", "next", "prev", "complete", "cancel":
	default:
		return nil, errMalformedAction
	}
	from, host := req.Stanza.From, req.To.Domainpart()
	var cmd *Command
	s.mu.Lock()
	for _, c := range s.commands {
		if c.Node == r.Node {
			cmd = c
		}
	}
	s.mu.Unlock()
	if cmd == nil {
		return nil, errNotFound
	}
	if cmd.Admin && !s.IsAdmin(host, from.Bare()) {
		// XEP-0133 §5, and the requester is told nothing more.
		return nil, errForbidden
	}

	var sess *session
	if r.SessionID == "" {
		if r.Action == "cancel" || r.Action == "prev" {
			return nil, errBadSessionID
		}
		sess = s.start(cmd, from, host)
		if r.Form == nil || len(cmd.Stages) == 0 {
			// The first request: the first form, or at once the
			// outcome of a command without one.
			return s.show(ctx, sess, req)
		}
		// A form with the first request: a client that knows the
		// command fills it in at once (as a script does). If that
		// fails, the requester never learnt the session's id.
		out, err := s.step(ctx, sess, req, r)
		if err != nil {
			s.end(sess)
		}
		return out, err
	}
	sess, err := s.session(r.SessionID, cmd, from, host)
	if err != nil {
		return nil, err
	}
	return s.step(ctx, sess, req, r)
}

// step runs the action of r on sess.
func (s *Service) step(ctx context.Context, sess *session, req dispatch.Request, r request) ([]byte, error) {
	cmd := sess.cmd

	last := sess.stage == len(cmd.Stages)-1
	action := r.Action
	if action == "" || action == "execute" {
		action = "complete" // the default action of the stage
		if !last {
			action = "next"
		}
	}
	switch action {
	case "cancel":
		s.end(sess)
		return answer(sess, "canceled", nil, nil), nil
	case "prev":
		if sess.stage == 0 {
			return nil, errBadAction
		}
		sess.stage--
		return s.show(ctx, sess, req)
	case "next":
		if last {
			return nil, errBadAction
		}
	case "complete":
		if !last && !cmd.Stages[sess.stage].Complete {
			return nil, errBadAction
		}
	}
	if r.Form == nil || (r.Form.Type != "submit" && r.Form.Type != "") {
		return nil, BadPayload("submit the form")
	}
	if err := s.submit(ctx, sess, req, r.Form.values()); err != nil {
		return nil, err
	}
	if action == "next" {
		sess.stage++
	} else {
		sess.stage = len(cmd.Stages) // complete: done
	}
	return s.show(ctx, sess, req)
}

// submit checks the form submitted at sess's stage and keeps its values.
func (s *Service) submit(ctx context.Context, sess *session, req dispatch.Request, v Values) error {
	c := s.call(sess, req)
	f := sess.cmd.Stages[sess.stage].Form(ctx, c)
	for _, fd := range f.Fields {
		if fd.Type == "fixed" || fd.Var == "" {
			continue
		}
		vals, ok := v[fd.Var]
		if fd.Required && len((Values{fd.Var: vals}).List(fd.Var)) == 0 {
			label := fd.Label
			if label == "" {
				label = fd.Var
			}
			return BadPayload("missing: " + label)
		}
		if ok {
			sess.vals[fd.Var] = vals
		}
	}
	return nil
}

// show answers sess's current step: its stage's form, or, once the
// stages are done (the action was complete, or there are none), the
// command's outcome.
func (s *Service) show(ctx context.Context, sess *session, req dispatch.Request) ([]byte, error) {
	cmd := sess.cmd
	c := s.call(sess, req)
	if sess.done() {
		s.end(sess)
		out, err := cmd.Run(ctx, c)
		if err != nil {
			return nil, err
		}
		return answer(sess, "completed", nil, out), nil
	}
	stage := cmd.Stages[sess.stage]
	last := sess.stage == len(cmd.Stages)-1
	var actions bytes.Buffer
	execute := "next"
	if last {
		execute = "complete"
	}
	actions.WriteString("<actions execute='" + execute + "'>")
	if sess.stage > 0 {
		actions.WriteString("<prev/>")
	}
	if !last {
		actions.WriteString("<next/>")
	}
	if last || stage.Complete {
		actions.WriteString("<complete/>")
	}
	actions.WriteString("</actions>")
	f := stage.Form(ctx, c)
	var b bytes.Buffer
	f.write(&b, "form", sess.vals)
	return answer(sess, "executing", append(actions.Bytes(), b.Bytes()...), nil), nil
}

// done reports whether sess has no stage left to show: the command has
// none, or one was submitted with complete (which moves stage past the
// end).
func (sess *session) done() bool { return sess.stage >= len(sess.cmd.Stages) }

// answer is the <command/> of a result: status, the actions and form of
// an executing step, the notes and result form of a completed one.
func answer(sess *session, status string, body []byte, out *Outcome) []byte {
	var b bytes.Buffer
	b.WriteString("<command xmlns='" + NS + "'")
	attr(&b, "node", sess.cmd.Node)
	attr(&b, "sessionid", sess.id)
	attr(&b, "status", status)
	b.WriteString(">")
	b.Write(body)
	if out != nil {
		for _, n := range out.Notes {
			b.WriteString("<note type='" + n.Type + "'>")
			stanza.EscapeAttr(&b, n.Text)
			b.WriteString("</note>")
		}
		if out.Result != nil {
			out.Result.write(&b, "result", nil)
		}
	}
	b.WriteString("</command>")
	return b.Bytes()
}

func (s *Service) call(sess *session, req dispatch.Request) *Call {
	return &Call{Host: sess.host, From: sess.owner, Values: sess.vals, req: req}
}

// start begins a session of cmd for from, ending the oldest ones beyond
// the limits.
func (s *Service) start(cmd *Command, from jid.JID, host string) *session {
	var id [12]byte
	rand.Read(id[:])
	now := s.now()
	sess := &session{id: hex.EncodeToString(id[:]), cmd: cmd, owner: from, host: host, vals: Values{}, last: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = make(map[string]*session)
	}
	s.sweep(now)
	for _, all := range []bool{false, true} {
		var oldest *session
		n := 0
		for _, o := range s.sessions {
			if all || o.owner.Equal(from) {
				n++
				if oldest == nil || o.last.Before(oldest.last) {
					oldest = o
				}
			}
		}
		if limit := map[bool]int{false: maxPerRequester, true: maxSessions}[all]; n >= limit {
			delete(s.sessions, oldest.id)
		}
	}
	s.sessions[sess.id] = sess
	return sess
}

// sweep forgets sessions long expired; those expired less than Timeout
// ago stay, so that their requester hears that they expired.
func (s *Service) sweep(now time.Time) {
	for id, o := range s.sessions {
		if now.Sub(o.last) > 2*Timeout {
			delete(s.sessions, id)
		}
	}
}

// session returns the session id of cmd that from started on host, its
// clock restarted.
func (s *Service) session(id string, cmd *Command, from jid.JID, host string) (*session, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	sess := s.sessions[id]
	if sess == nil || sess.cmd != cmd || !sess.owner.Equal(from) || sess.host != host {
		// Another requester's session is not this one's to use
		// (XEP-0050 §3.4), nor to learn about.
		return nil, errBadSessionID
	}
	if now.Sub(sess.last) > Timeout {
		delete(s.sessions, id)
		return nil, errExpired
	}
	sess.last = now
	return sess, nil
}

// end forgets sess.
func (s *Service) end(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess.id)
	s.mu.Unlock()
}
