package adhoc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// NSAdmin is XEP-0133's namespace: its forms' FORM_TYPE, and the prefix
// of its commands' nodes.
const NSAdmin = "http://jabber.org/protocol/admin"

// Admin is what the service administration commands act on.
type Admin struct {
	Accounts storage.Accounts
	Router   router.Router
	Log      *slog.Logger
	// Iterations is the PBKDF2 iteration count of passwords set now
	// (auth.scram_iterations, asked each time so that a reload applies).
	Iterations func() int
	// Deleted ends the sessions of an account that was removed and has
	// modules forget it (auth.AccountDeleted).
	Deleted func(bare jid.JID)
	// EndSessions ends the session of a full JID, or every session of a
	// bare JID (c2s.EndSessions), with text.
	EndSessions func(j jid.JID, text string)
}

// Commands returns the commands of XEP-0133 that Starling has, in the
// order of its §4.
func (a *Admin) Commands() []*Command {
	cmds := []*Command{
		{Node: "add-user", Name: "Add User", Stages: one(a.addUserForm), Run: a.addUser},
		{Node: "delete-user", Name: "Delete User", Stages: one(accountsForm("Deleting a User", "Fill out this form to delete a user.", "The Jabber ID(s) to delete")), Run: a.deleteUsers},
		{Node: "disable-user", Name: "Disable User", Stages: one(accountsForm("Disabling a User", "Fill out this form to disable a user.", "The Jabber ID(s) to disable")), Run: a.disable(true)},
		{Node: "reenable-user", Name: "Re-Enable User", Stages: one(accountsForm("Re-Enabling a User", "Fill out this form to re-enable a user.", "The Jabber ID(s) to re-enable")), Run: a.disable(false)},
		{Node: "end-user-session", Name: "End User Session", Stages: one(accountsForm("Ending a User Session", "Fill out this form to end a user's session.", "The Jabber ID(s) for which to end sessions")), Run: a.endSessions},
		{Node: "change-user-password", Name: "Change User Password", Stages: one(a.passwordForm), Run: a.changePassword},
		{Node: "get-registered-users-num", Name: "Get Number of Registered Users", Run: a.registeredNum},
		{Node: "get-disabled-users-num", Name: "Get Number of Disabled Users", Run: a.disabledNum},
		{Node: "get-online-users-num", Name: "Get Number of Online Users", Run: a.onlineNum},
		{Node: "get-registered-users-list", Name: "Get List of Registered Users", Stages: one(listForm("Getting List of Registered Users")), Run: a.registeredList},
		{Node: "get-disabled-users-list", Name: "Get List of Disabled Users", Stages: one(listForm("Getting List of Disabled Users")), Run: a.disabledList},
		{Node: "get-online-users-list", Name: "Get List of Online Users", Stages: one(listForm("Getting List of Online Users")), Run: a.onlineList},
		{Node: "announce", Name: "Send Announcement to Online Users", Stages: one(announceForm), Run: a.announce},
	}
	for _, c := range cmds {
		c.Node = NSAdmin + "#" + c.Node
		c.Admin = true
	}
	return cmds
}

// one is a single stage with the form f.
func one(f func(context.Context, *Call) *Form) []Stage { return []Stage{{Form: f}} }

// formType is the hidden FORM_TYPE field of XEP-0133's forms.
var formType = Field{Var: "FORM_TYPE", Type: "hidden", Values: []string{NSAdmin}}

func (a *Admin) addUserForm(context.Context, *Call) *Form {
	return &Form{Title: "Adding a User", Instructions: "Fill out this form to add a user.", Fields: []Field{
		formType,
		{Var: "accountjid", Type: "jid-single", Label: "The Jabber ID for the account to be added", Required: true},
		{Var: "password", Type: "text-private", Label: "The password for this account", Required: true},
		{Var: "password-verify", Type: "text-private", Label: "Retype password"},
	}}
}

func (a *Admin) passwordForm(context.Context, *Call) *Form {
	return &Form{Title: "Changing a User Password", Instructions: "Fill out this form to change a user's password.", Fields: []Field{
		formType,
		{Var: "accountjid", Type: "jid-single", Label: "The Jabber ID for this account", Required: true},
		{Var: "password", Type: "text-private", Label: "The password for this account", Required: true},
	}}
}

func accountsForm(title, instructions, label string) func(context.Context, *Call) *Form {
	return func(context.Context, *Call) *Form {
		return &Form{Title: title, Instructions: instructions, Fields: []Field{
			formType,
			{Var: "accountjids", Type: "jid-multi", Label: label, Required: true},
		}}
	}
}

// maxItems are the choices of max_items (XEP-0133 §4.18, §4.20).
var maxItems = []string{"25", "50", "75", "100", "150", "200", "none"}

func listForm(title string) func(context.Context, *Call) *Form {
	return func(context.Context, *Call) *Form {
		f := Field{Var: "max_items", Type: "list-single", Label: "Maximum number of items to show", Values: []string{"100"}}
		for _, m := range maxItems {
			label := m
			if m == "none" {
				label = "All"
			}
			f.Options = append(f.Options, Option{Label: label, Value: m})
		}
		return &Form{Title: title, Instructions: "How many users should be listed at most?", Fields: []Field{formType, f}}
	}
}

func announceForm(context.Context, *Call) *Form {
	return &Form{Title: "Making an Announcement", Instructions: "Fill out this form to make an announcement to all active users of this service.", Fields: []Field{
		formType,
		{Var: "subject", Type: "text-single", Label: "Subject"},
		{Var: "announcement", Type: "text-multi", Label: "Announcement", Required: true},
	}}
}

// account parses s as the bare JID of an account of host.
func account(s, host string) (jid.JID, error) {
	j, err := jid.Parse(s)
	switch {
	case err != nil:
		return jid.JID{}, BadPayload(s + ": not a JID")
	case j.Localpart() == "" || j.Resourcepart() != "":
		return jid.JID{}, BadPayload(s + ": not the bare JID of an account")
	case j.Domainpart() != host:
		return jid.JID{}, BadPayload(s + ": not an account of " + host)
	}
	return j, nil
}

// passwordError answers a password PRECIS refuses; other errors are the
// server's.
func passwordError(err error) error {
	if errors.Is(err, auth.ErrInvalidPassword) {
		return BadPayload("password not acceptable")
	}
	return err
}

// addUser creates an account (XEP-0133 §4.1); conflict if it exists
// (§5).
func (a *Admin) addUser(ctx context.Context, c *Call) (*Outcome, error) {
	j, err := account(c.Values.Get("accountjid"), c.Host)
	if err != nil {
		return nil, err
	}
	pw := c.Values.Get("password")
	if v, ok := c.Values["password-verify"]; ok && len(v) > 0 && strings.TrimSpace(v[0]) != pw {
		return nil, BadPayload("the passwords differ")
	}
	if err := passwordError(auth.CreateAccount(ctx, a.Accounts, j, pw, a.Iterations())); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "the account " + j.String() + " exists"}
		}
		return nil, err
	}
	a.Log.Info("account added by an administrator", "jid", j.String(), "admin", c.From.String())
	return Info("Account " + j.String() + " created."), nil
}

// accounts parses the accountjids of c: bare JIDs of accounts of c.Host,
// or, with full, full JIDs too.
func accounts(c *Call, full bool) ([]jid.JID, error) {
	var out []jid.JID
	for _, s := range c.Values.List("accountjids") {
		j, err := jid.Parse(s)
		if err == nil && full && j.Resourcepart() != "" {
			if _, err := account(j.Bare().String(), c.Host); err != nil {
				return nil, err
			}
		} else if j, err = account(s, c.Host); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out, j.Equal) {
			out = append(out, j)
		}
	}
	return out, nil
}

// deleteUsers removes accounts and everything stored for them (XEP-0133
// §4.2); their sessions end once the answer is sent (the administrator
// may have removed their own).
func (a *Admin) deleteUsers(ctx context.Context, c *Call) (*Outcome, error) {
	js, err := accounts(c, false)
	if err != nil {
		return nil, err
	}
	var done, missing []string
	for _, j := range js {
		err := a.Accounts.DeleteAccount(ctx, j.Domainpart(), j.Localpart())
		if errors.Is(err, storage.ErrNotFound) {
			missing = append(missing, j.String())
			continue
		}
		if err != nil {
			return nil, err
		}
		a.Log.Info("account deleted by an administrator", "jid", j.String(), "admin", c.From.String())
		done = append(done, j.String())
		c.AfterReply(func() { a.Deleted(j) })
	}
	return report("Deleted", done, "No such account", missing), nil
}

// disable returns the command that disables accounts (XEP-0133 §4.3:
// kept with their data, their sessions ended, their logins refused) or
// enables them again (§4.4).
func (a *Admin) disable(disabled bool) func(context.Context, *Call) (*Outcome, error) {
	done := map[bool]string{true: "Disabled", false: "Enabled"}[disabled]
	return func(ctx context.Context, c *Call) (*Outcome, error) {
		js, err := accounts(c, false)
		if err != nil {
			return nil, err
		}
		var ok, missing []string
		for _, j := range js {
			err := a.Accounts.SetDisabled(ctx, j.Domainpart(), j.Localpart(), disabled)
			if errors.Is(err, storage.ErrNotFound) {
				missing = append(missing, j.String())
				continue
			}
			if err != nil {
				return nil, err
			}
			a.Log.Info("account "+strings.ToLower(done)+" by an administrator", "jid", j.String(), "admin", c.From.String())
			ok = append(ok, j.String())
			if disabled {
				c.AfterReply(func() { a.EndSessions(j, "account disabled by an administrator") })
			}
		}
		return report(done, ok, "No such account", missing), nil
	}
}

// endSessions ends the sessions of accounts, or single sessions by full
// JID (XEP-0133 §4.5), once the answer is sent.
func (a *Admin) endSessions(_ context.Context, c *Call) (*Outcome, error) {
	js, err := accounts(c, true)
	if err != nil {
		return nil, err
	}
	var done, missing []string
	for _, j := range js {
		n := len(a.Router.Sessions(j))
		if j.Resourcepart() != "" {
			n = 0
			if a.Router.Session(j) != nil {
				n = 1
			}
		}
		if n == 0 {
			missing = append(missing, j.String())
			continue
		}
		a.Log.Info("sessions ended by an administrator", "jid", j.String(), "sessions", n, "admin", c.From.String())
		done = append(done, j.String())
		c.AfterReply(func() { a.EndSessions(j, "session ended by an administrator") })
	}
	return report("Sessions ended", done, "Not online", missing), nil
}

// report is an Outcome of an info note listing done and an error note
// listing failed (each left out when empty).
func report(doneText string, done []string, failedText string, failed []string) *Outcome {
	out := &Outcome{}
	if len(done) > 0 {
		out.Notes = append(out.Notes, Note{"info", doneText + ": " + strings.Join(done, ", ")})
	}
	if len(failed) > 0 {
		out.Notes = append(out.Notes, Note{"error", failedText + ": " + strings.Join(failed, ", ")})
	}
	return out
}

// changePassword sets an account's password (XEP-0133 §4.7); the
// account's sessions go on, as with in-band registration's.
func (a *Admin) changePassword(ctx context.Context, c *Call) (*Outcome, error) {
	j, err := account(c.Values.Get("accountjid"), c.Host)
	if err != nil {
		return nil, err
	}
	if err := passwordError(auth.SetPassword(ctx, a.Accounts, j, c.Values.Get("password"), a.Iterations())); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "no account " + j.String()}
		}
		return nil, err
	}
	a.Log.Info("password changed by an administrator", "jid", j.String(), "admin", c.From.String())
	return Info("Password of " + j.String() + " changed."), nil
}

// online returns the bare JIDs of host's accounts with a session, sorted.
func (a *Admin) online(host string) []string {
	var out []string
	for _, s := range a.Router.HostSessions(host) {
		if b := s.JID().Bare().String(); len(out) == 0 || out[len(out)-1] != b {
			out = append(out, b) // sorted by full JID: an account's are together
		}
	}
	return out
}

// registered returns the bare JIDs of host's accounts, or of its
// disabled ones, sorted.
func (a *Admin) registered(ctx context.Context, host string, disabled bool) ([]string, error) {
	list := a.Accounts.ListAccounts
	if disabled {
		list = a.Accounts.ListDisabled
	}
	users, err := list(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u + "@" + host
	}
	return out, nil
}

// number is a result form of one number field.
func number(v, label string, n int) *Outcome {
	return &Outcome{Result: &Form{Fields: []Field{formType, {Var: v, Type: "text-single", Label: label, Values: []string{strconv.Itoa(n)}}}}}
}

// list is a result form of one jid-multi field, at most max_items long.
func list(c *Call, v, label string, jids []string) *Outcome {
	if n, err := strconv.Atoi(c.Values.Get("max_items")); err == nil && n >= 0 && n < len(jids) {
		jids = jids[:n]
	}
	return &Outcome{Result: &Form{Fields: []Field{formType, {Var: v, Type: "jid-multi", Label: label, Values: jids}}}}
}

func (a *Admin) registeredNum(ctx context.Context, c *Call) (*Outcome, error) {
	users, err := a.registered(ctx, c.Host, false)
	if err != nil {
		return nil, err
	}
	return number("registeredusersnum", "The number of registered users", len(users)), nil
}

func (a *Admin) disabledNum(ctx context.Context, c *Call) (*Outcome, error) {
	users, err := a.registered(ctx, c.Host, true)
	if err != nil {
		return nil, err
	}
	return number("disabledusersnum", "The number of disabled users", len(users)), nil
}

func (a *Admin) onlineNum(_ context.Context, c *Call) (*Outcome, error) {
	return number("onlineusersnum", "The number of online users", len(a.online(c.Host))), nil
}

func (a *Admin) registeredList(ctx context.Context, c *Call) (*Outcome, error) {
	users, err := a.registered(ctx, c.Host, false)
	if err != nil {
		return nil, err
	}
	return list(c, "registereduserjids", "The list of all users", users), nil
}

func (a *Admin) disabledList(ctx context.Context, c *Call) (*Outcome, error) {
	users, err := a.registered(ctx, c.Host, true)
	if err != nil {
		return nil, err
	}
	return list(c, "disableduserjids", "The list of all disabled users", users), nil
}

func (a *Admin) onlineList(_ context.Context, c *Call) (*Outcome, error) {
	return list(c, "onlineuserjids", "The list of all online users", a.online(c.Host)), nil
}

// announce sends a headline message from the host to each online
// account of it (XEP-0133 §4.23), which its available resources get
// (RFC 6121 §8.5.2.1.2), as Prosody's mod_announce does.
func (a *Admin) announce(ctx context.Context, c *Call) (*Outcome, error) {
	body := strings.Join(c.Values["announcement"], "\n")
	subject := c.Values.Get("subject")
	host := jid.MustParse(c.Host)
	users := a.online(c.Host)
	for _, u := range users {
		var b bytes.Buffer
		b.WriteString("<message xmlns='jabber:client' from='")
		stanza.EscapeAttr(&b, c.Host)
		b.WriteString("' to='")
		stanza.EscapeAttr(&b, u)
		b.WriteString("' type='headline'>")
		element(&b, "subject", subject)
		element(&b, "body", body)
		b.WriteString("</message>")
		to, err := jid.Parse(u)
		if err != nil {
			continue
		}
		raw := b.Bytes()
		a.Router.Route(ctx, stanza.Built(raw, stanza.StartLen(raw), stanza.Message, "headline", "", host, to))
	}
	a.Log.Info("announcement sent by an administrator", "host", c.Host, "users", len(users), "admin", c.From.String())
	return Info("Announcement sent to " + strconv.Itoa(len(users)) + " online users."), nil
}

// Module is XEP-0050 with XEP-0133's commands as a module. The
// administrators are [server] admins (per host: [hosts."x"] admins).
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "adhoc" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	s := &Service{IsAdmin: func(host string, bare jid.JID) bool { return env.Config().IsAdmin(host, bare) }}
	a := &Admin{
		Accounts:   env.Store,
		Router:     env.Router,
		Log:        env.Log,
		Iterations: func() int { return env.Config().Auth.SCRAMIterations },
		Deleted: func(bare jid.JID) {
			event.Fire(context.Background(), env.Bus, &auth.AccountDeleted{JID: bare})
		},
		EndSessions: func(j jid.JID, text string) {
			event.Fire(context.Background(), env.Bus, &c2s.EndSessions{JID: j, Text: text})
		},
	}
	for _, c := range a.Commands() {
		s.Add(c)
	}
	s.Register(env.IQ)
	return nil
}
