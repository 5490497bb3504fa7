package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/event"
)

// The admin socket lets `starling user del`, which changes storage
// directly, tell a running server to end the sessions of the account it
// removed (as prosodyctl does through Prosody's admin socket). It is a Unix
// socket in the data directory, readable only by the server's user; the
// protocol is one line, "end-sessions BAREJID", answered "ok" or
// "error: TEXT".

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
