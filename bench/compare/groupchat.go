package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/starling-xmpp/starling/internal/anchor"
)

// The groupchat case needs each server's multi-user chat service on
// conference.localhost (XEP-0045), where the server's own users may
// create rooms, with nothing archived or logged and rooms that go when
// their last occupant leaves:
//
//   - Starling: [modules.muc], on by default with those defaults
//     (create = "local", rooms not persistent, and so not archived even
//     with its archive option on, which startStarlingWith turns off all
//     the same), its flood limits (10 messages a second per occupant,
//     200 per room, by default) raised out of reach in
//     startStarlingWith: neither Prosody's mod_muc nor ejabberd's
//     (min_message_interval 0, no shapers) limits a room's traffic by
//     default.
//   - Prosody: a MUC component, appended to its configuration through
//     anchor.Options.Prosody, with restrict_room_creation = "local", no
//     muc_mam or muc_log, and no tombstones of destroyed rooms.
//   - ejabberd: internal/anchor's configuration has no mod_muc, so it is
//     added to the ejabberd.yml the anchor wrote (access_create allowing
//     local users, default room options without mam or logging) and the
//     running node reloads its configuration (ejabberdctl reload_config),
//     which starts the module, before any case runs.

// mucDomain is the service's domain on every server.
var mucDomain = "conference." + anchor.Domain

// needsMUC reports whether a case of phase uses group chat.
func needsMUC(phase []benchCase) bool {
	return slices.ContainsFunc(phase, func(c benchCase) bool { return c.scenario == "groupchat" })
}

// prosodyMUC is Prosody's MUC component.
var prosodyMUC = fmt.Sprintf(`
-- written by bench/compare: group chat (XEP-0045) for the groupchat case
Component %q "muc"
	restrict_room_creation = "local"
	muc_room_default_persistent = false
	muc_tombstones = false
`, mucDomain)

// ejabberdMUC enables mod_muc in the ejabberd.yml internal/anchor wrote
// in dir, then has the running node reload it.
func ejabberdMUC(ctx context.Context, dir string, pid int) error {
	path := filepath.Join(dir, "ejabberd.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	conf := string(b)
	// The module goes at the end of the modules map, the file's last
	// section; the ACL and the access rule into their sections.
	if !strings.HasSuffix(conf, "\n") || !strings.Contains(conf, "\nmodules:\n") || !strings.Contains(conf, "\nacl:\n") ||
		!strings.Contains(conf, "\naccess_rules:\n") || strings.Contains(conf, "mod_muc") {
		return fmt.Errorf("%s: not the configuration expected (modules last, acl and access_rules sections, no mod_muc)", path)
	}
	if i, j := strings.LastIndex(conf, "\nmodules:\n"), strings.LastIndex(conf, "\n"+"access_rules:\n"); i < j {
		return fmt.Errorf("%s: modules is not the last section", path)
	}
	conf = strings.Replace(conf, "\nacl:\n", "\nacl:\n  local:\n    user_regexp: \"\"\n", 1)
	conf = strings.Replace(conf, "\naccess_rules:\n", "\naccess_rules:\n  muc_create:\n    allow: local\n", 1)
	conf += fmt.Sprintf(`  mod_muc:
    host: %q
    access_create: muc_create
    history_size: 20
    default_room_options:
      mam: false
      logging: false
      persistent: false
`, mucDomain)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	node, err := erlangNode(pid)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "ejabberdctl", "--config-dir", dir, "--config", path,
		"--logs", filepath.Join(dir, "logs"), "--spool", filepath.Join(dir, "spool"), "--node", node, "reload_config")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ejabberdctl reload_config (mod_muc): %v\n%s", err, out)
	}
	return nil
}

// erlangNode is the node name of the Erlang VM pid (its -sname or -name
// argument).
func erlangNode(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "", err
	}
	args := bytes.Split(b, []byte{0})
	for i := 0; i+1 < len(args); i++ {
		if a := string(args[i]); a == "-sname" || a == "-name" {
			return string(args[i+1]), nil
		}
	}
	return "", fmt.Errorf("process %d has no -sname or -name: not an Erlang node", pid)
}

// groupchatReflections is the verdict on the reflections of a groupchat
// run's messages to their senders (XEP-0045 §7.4), checked apart from
// the deliveries to the other occupants.
func groupchatReflections(r *result) string {
	if r.ReflectedOnce {
		return "yes, " + thousands(float64(r.Reflections))
	}
	return fmt.Sprintf("NO: of %d, lost %d, duplicated %d", r.Sent, r.ReflectionsLost, r.ReflectionDuplicates)
}
