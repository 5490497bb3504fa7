package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/stanza"
)

// The admin socket is how the starling command talks to a running server
// (as prosodyctl does through Prosody's admin socket): `starling user del`,
// which changes storage directly, tells it to end the removed account's
// sessions, and `starling sessions`, `kick`, `announce`, `reload` and the
// modules' commands (`s2s`) ask it. It is a Unix socket in the data
// directory, readable only by the server's user. The protocol is one line,
// "COMMAND ARGS", answered by text ending at EOF, "error: TEXT" for a
// failure. Free text (a reason, a message) is an argument quoted as a Go
// string (strconv.Quote), so that it stays on one line. The commands:
//
//	end-sessions BAREJID          ok
//	sessions [HOST]               one line per session, tab-separated:
//	                              JID, transport, address, tls|plain,
//	                              since (RFC 3339), stream management
//	                              state, active|inactive (CSI),
//	                              available PRIORITY|unavailable
//	kick JID [QUOTED-REASON]      ended N
//	announce HOST|* QUOTED-TEXT   sent N (available sessions reached)
//	reload                        ok

// AdminSocket is the path of the admin socket for cfg.
func AdminSocket(cfg *config.Config) string {
	return filepath.Join(cfg.Server.DataDir, "admin.sock")
}

// listenAdmin opens the admin socket, replacing a stale one left by a
// server that did not stop cleanly. The socket never exists at path with a
// mode other than 0600, whatever the umask and the data directory's mode:
// it is bound in a new private directory (0700), given mode 0600 there,
// then renamed into place. Closing the listener removes it.
func listenAdmin(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another server is running on this data directory", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	private, err := os.MkdirTemp(dir, ".admin") // mode 0700
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if beforeAdminRename != nil {
		beforeAdminRename(tmp)
	}
	// rename(2) replaces a stale socket atomically.
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	return adminListener{ln, path}, nil
}

// beforeAdminRename, when set by a test, runs with the socket's temporary
// path before it is moved into place.
var beforeAdminRename func(tmp string)

// adminListener removes the socket file when it is closed.
type adminListener struct {
	net.Listener
	path string
}

func (l adminListener) Close() error {
	os.Remove(l.path)
	return l.Listener.Close()
}

// serveAdmin answers admin commands until ln is closed.
func (s *Server) serveAdmin(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintln(conn, s.adminCommand(strings.TrimSpace(line)))
		}()
	}
}

func (s *Server) adminCommand(line string) string {
	cmd, arg, _ := strings.Cut(line, " ")
	switch cmd {
	case "end-sessions":
		j, err := jid.Parse(arg)
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			return "error: not a bare JID"
		}
		s.log.Info("ending sessions of a removed account", "jid", j.String())
		event.Fire(context.Background(), s.bus, &auth.AccountDeleted{JID: j})
		return "ok"
	case "sessions":
		return s.adminSessions(arg)
	case "kick":
		return s.adminKick(arg)
	case "announce":
		return s.adminAnnounce(arg)
	case "reload":
		return s.adminReload()
	}
	if f, ok := s.modules.AdminCommand(cmd); ok {
		return f(arg)
	}
	return "error: unknown command"
}

// EndSessions asks the server running on cfg's data directory, if any, to
// end every session of bare. It reports false when no server is running.
func EndSessions(ctx context.Context, cfg *config.Config, bare jid.JID) (bool, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", AdminSocket(cfg))
	if err != nil {
		return false, nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "end-sessions %s\n", bare); err != nil {
		return true, err
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return true, err
	}
	if answer = strings.TrimSpace(answer); answer != "ok" {
		return true, errors.New(answer)
	}
	return true, nil
}

// Admin sends line, a command, to the server running on cfg's data
// directory and returns its whole answer; an error says when no server
// runs there.
func Admin(ctx context.Context, cfg *config.Config, line string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", AdminSocket(cfg))
	if err != nil {
		return "", fmt.Errorf("no server is running on %s (%v)", cfg.Server.DataDir, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
		return "", err
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(answer), "\n"), nil
}

// servedHosts returns the hosts arg names: every host served for "" (or
// "*" when all is true), else arg if it is served.
func (s *Server) servedHosts(arg string, all bool) ([]string, error) {
	hosts := s.config().Server.Hosts
	if arg == "" || (all && arg == "*") {
		return hosts, nil
	}
	if !slices.Contains(hosts, arg) {
		return nil, fmt.Errorf("%s is not served (server.hosts: %s)", arg, strings.Join(hosts, ", "))
	}
	return []string{arg}, nil
}

// adminSessions lists the client sessions of one host or all.
func (s *Server) adminSessions(arg string) string {
	hosts, err := s.servedHosts(arg, false)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, h := range hosts {
		for _, sess := range s.c2s.Router.HostSessions(h) {
			info, ok := c2s.Info(sess)
			if !ok {
				continue
			}
			sec, csi, pres := "plain", "active", "unavailable"
			if info.TLS {
				sec = "tls"
			}
			if info.Inactive {
				csi = "inactive"
			}
			if info.Available {
				pres = fmt.Sprintf("available %d", info.Priority)
			}
			sm := info.SM
			if !info.DetachedUntil.IsZero() {
				sm += " until " + info.DetachedUntil.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", info.JID, info.Transport, info.Addr, sec,
				info.Since.UTC().Format(time.RFC3339), sm, csi, pres)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// adminKick ends one session (a full JID) or all of an account's (a bare
// JID) with <policy-violation/> and the reason as its text.
func (s *Server) adminKick(arg string) string {
	who, quoted, _ := strings.Cut(arg, " ")
	j, err := jid.Parse(who)
	if err != nil || j.Localpart() == "" {
		return fmt.Sprintf("error: %q is not a user's JID (alice@example.org, or alice@example.org/phone for one session)", who)
	}
	if _, err := s.servedHosts(j.Domainpart(), false); err != nil {
		return "error: " + err.Error()
	}
	reason := "ended by an administrator"
	if quoted != "" {
		if reason, err = strconv.Unquote(quoted); err != nil {
			return "error: the reason is not a quoted string"
		}
	}
	e := &c2s.EndSessions{JID: j, Text: reason}
	event.Fire(context.Background(), s.bus, e)
	s.log.Info("sessions ended by an administrator", "jid", j.String(), "sessions", e.Ended, "reason", reason)
	return fmt.Sprintf("ended %d", e.Ended)
}

// adminAnnounce sends a headline message from the host to every available
// session of its accounts (of every host for "*"), as Prosody's
// mod_announce does: type headline, subject "Announcement", the text as
// its body.
func (s *Server) adminAnnounce(arg string) string {
	host, quoted, _ := strings.Cut(arg, " ")
	hosts, err := s.servedHosts(host, true)
	if err != nil {
		return "error: " + err.Error()
	}
	text, err := strconv.Unquote(quoted)
	if err != nil || strings.TrimSpace(text) == "" {
		return "error: no message (a quoted string)"
	}
	n := 0
	for _, h := range hosts {
		seen := map[string]bool{}
		for _, sess := range s.c2s.Router.HostSessions(h) {
			bare := sess.JID().Bare()
			if seen[bare.String()] {
				continue
			}
			seen[bare.String()] = true
			raw := "<message type='headline' from='" + stanza.Escape(h) + "' to='" + stanza.Escape(bare.String()) +
				"' id='" + announceID() + "'><subject>Announcement</subject><body>" + stanza.Escape(text) + "</body></message>"
			n += s.c2s.Router.DeliverAvailable(bare, []byte(raw))
		}
	}
	s.log.Info("announcement sent", "hosts", strings.Join(hosts, ","), "sessions", n)
	return fmt.Sprintf("sent %d", n)
}

func announceID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return "announce-" + base64.RawURLEncoding.EncodeToString(b)
}

// SetReloader sets what `starling reload` runs: what SIGHUP does, reading
// the configuration file again and applying it (Reload); its error is the
// command's answer.
func (s *Server) SetReloader(f func() error) {
	s.mu.Lock()
	s.reload = f
	s.mu.Unlock()
}

func (s *Server) adminReload() string {
	s.mu.Lock()
	f := s.reload
	s.mu.Unlock()
	if f == nil {
		return "error: this server cannot reload its configuration"
	}
	if err := f(); err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}
