package imclients

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/starling-xmpp/starling/internal/testbin"
)

// TestAdminFromClient: service administration (XEP-0133) from real
// client libraries: slixmpp's xep_0050 as a bot or a client built on it
// runs ad-hoc commands (testdata/slixmpp_adhoc.py), and nbxmpp's AdHoc as
// Gajim's "Execute Command" window does (testdata/nbxmpp_adhoc.py). An administrator
// ([server] admins) finds add-user among the server's commands, gets its
// form and completes it, and the account it added then logs in; a user
// who is not one sees no commands and is refused. Starling only: the
// anchors' administrators are not configured here.
func TestAdminFromClient(t *testing.T) {
	for _, lib := range libraries {
		t.Run(lib, func(t *testing.T) {
			requireLibrary(t, lib)
			adminFromClient(t, lib)
		})
	}
}

func adminFromClient(t *testing.T, lib string) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	port := testbin.FreePort(t)
	config := filepath.Join(dir, "starling.toml")
	cfg := fmt.Sprintf(`[server]
hosts = [%q]
data_dir = %q
admins = ["root@%s"]

[s2s]
enabled = false

[c2s]
listen = ["127.0.0.1:%d"]
direct_tls_listen = []

[log]
level = "debug"
`, starlingDomain, data, starlingDomain, port)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testbin.Build(t)
	testbin.Start(t, bin, config)
	rootPW, alicePW, davePW := randomHex(12), randomHex(12), randomHex(12)
	testbin.AddUser(t, bin, config, "root@"+starlingDomain, rootPW)
	testbin.AddUser(t, bin, config, "alice@"+starlingDomain, alicePW)
	cert := filepath.Join(data, "certs", starlingDomain+".crt")

	run := func(args ...string) []map[string]any {
		t.Helper()
		args = append([]string{filepath.Join("testdata", lib+"_adhoc.py"), "--port", strconv.Itoa(port),
			"--mech", "SCRAM-SHA-256", "--ca-file", cert}, args...)
		cmd := exec.Command(python, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var steps []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var step map[string]any
			if err := json.Unmarshal(sc.Bytes(), &step); err != nil {
				t.Errorf("not a JSON line: %q", sc.Text())
				continue
			}
			t.Logf("%s: %v", lib, step)
			steps = append(steps, step)
		}
		if err != nil {
			t.Fatalf("%s_adhoc.py %v: %v\n%s", lib, args, err, stderr.String())
		}
		return steps
	}
	step := func(steps []map[string]any, name string) map[string]any {
		t.Helper()
		for _, s := range steps {
			if s["step"] == name {
				return s
			}
		}
		t.Fatalf("no %q step in %v", name, steps)
		return nil
	}

	dave := "dave@" + starlingDomain
	steps := run("--jid", "root@"+starlingDomain+"/"+lib, "--password", rootPW, "--new-jid", dave, "--new-password", davePW)
	nodes, _ := step(steps, "commands")["nodes"].([]any)
	for _, want := range []string{"add-user", "delete-user", "end-user-session", "change-user-password", "get-online-users-list", "announce"} {
		if !slices.Contains(nodes, any("http://jabber.org/protocol/admin#"+want)) {
			t.Errorf("the admin's command list lacks %s: %v", want, nodes)
		}
	}
	vars, _ := step(steps, "form")["vars"].([]any)
	for _, want := range []string{"FORM_TYPE", "accountjid", "password", "password-verify"} {
		if !slices.Contains(vars, any(want)) {
			t.Errorf("the add-user form lacks %s: %v", want, vars)
		}
	}
	t.Logf("completed with %v", step(steps, "completed")["notes"])
	if got := step(steps, "login")["jid"]; fmt.Sprint(got) == "" {
		t.Errorf("the new account logged in as %v", got)
	}

	steps = run("--jid", "alice@"+starlingDomain+"/"+lib, "--password", alicePW, "--expect-none")
	if got := step(steps, "refused")["condition"]; got != "forbidden" {
		t.Errorf("alice's add-user: %v, want forbidden", got)
	}
}
