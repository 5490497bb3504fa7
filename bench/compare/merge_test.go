package main

import (
	"strings"
	"testing"
	"time"
)

func TestPickScenario(t *testing.T) {
	cases, err := pick(suite(false), "upload, messages")
	if err != nil || len(cases) != 3 || cases[0].name != "messages" || cases[1].name != "upload-1m" || cases[2].name != "upload-50m" {
		t.Fatalf("pick: %v %+v", err, cases)
	}
	if _, err := pick(suite(false), "nope"); err == nil {
		t.Fatal("an unknown case accepted")
	}
}

// TestMerge: a run of chosen cases replaces their rows, marked with its
// date, keeps every other row and the rest of the page, replaces the
// section of an earlier run of the same cases, and numbers the notes of
// both runs together, dropping those no row refers to any more.
func TestMerge(t *testing.T) {
	cases, _ := pick(suite(false), "upload-1m")
	up := cases[0]
	msgs, _ := pick(suite(false), "messages")
	label := func(c benchCase, i int) string {
		var ls []string
		for _, m := range metrics {
			if m.scenario == c.scenario {
				ls = append(ls, strings.Replace(m.label, "%s", c.title, 1))
			}
		}
		return ls[i]
	}
	old := "\n\nRun on 2026-12-07 10:17 UTC with `make bench-compare` (`go run ./bench/compare`), which took 44m46s.\n" +
		"Machine: 2 CPUs. Commit: 6ff067a.\n\n" +
		"| case | Starling | Prosody | ejabberd | Starling/Prosody | Starling/ejabberd |\n|---|---|---|---|---|---|\n" +
		"| " + label(msgs[0], 0) + " | 100 | 6 | failed [1] | 16.5× | — |\n" +
		"| " + label(up, 0) + " *[run of 2026-12-06 09:00 UTC]* | 1 | failed [2] | 3 | — | — |\n" +
		"| a case no longer in the suite | 1 | 2 | 3 [3] | — | — |\n" +
		"\n<!-- RUN OF CHOSEN CASES 2026-12-06T09:00:00Z cases=upload-1m -->\n\nold section\n\n<!-- END RUN -->\n" +
		"\n### Federation\n\n| run | x |\n|---|---|\n| Starling → Prosody | failed [3] |\n" +
		"\nFailures:\n\n1. ejabberd, `messages`: slow\n2. Prosody, `upload-1m`: old failure\n3. Prosody did not start: no\n\n"
	r := &report{date: time.Date(2026, 12, 7, 13, 50, 0, 0, time.UTC), took: 5 * time.Minute, machine: "2 CPUs", commit: "abc1234",
		cases: cases, servers: servers, versions: map[string]string{"starling": "built", "prosody": "0.12", "ejabberd": "23.01"},
		cells: map[string]map[string]*cell{up.name: {
			"starling": {res: &result{UploadsPerS: 50, UploadMiBPerS: 50, Uploads: 200, Downloads: 200, Verified: 200, DownloadsPerS: 80}},
			"prosody":  {err: "too slow"},
			"ejabberd": {res: &result{UploadsPerS: 25, UploadMiBPerS: 25, Uploads: 200, Downloads: 200, Verified: 200, DownloadsPerS: 40}},
		}}}
	got, err := r.merge(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Machine: 2 CPUs. Commit: 6ff067a.\n" + partialNote + "\n\n| case |",
		"| " + label(msgs[0], 0) + " | 100 | 6 | failed [1] | 16.5× | — |\n| " + label(up, 0) + " *[run of 2026-12-07 13:50 UTC]* | 50.00 | failed [3] | 25.00 | — | 2.0× |\n",
		"| a case no longer in the suite | 1 | 2 | 3 [2] | — | — |\n\n<!-- RUN OF CHOSEN CASES 2026-12-07T13:50:00Z cases=upload-1m -->\n",
		"come from `go run ./bench/compare -cases upload-1m` on 2026-12-07 13:50 UTC, which took 5m0s,\non 2 CPUs. Commit: abc1234.",
		"--scenario upload --size 1MiB --n 4 --count 50   # upload on\n",
		"<!-- END RUN -->\n\n### Federation\n",
		"| Starling → Prosody | failed [2] |\n\nFailures:\n\n1. ejabberd, `messages`: slow\n2. Prosody did not start: no\n3. Prosody, `upload-1m`: too slow\n\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "old section") || strings.Contains(got, "old failure") || strings.Contains(got, "2026-12-06") || strings.Contains(got, "\n\n\n") {
		t.Errorf("the earlier run's section, note or rows are left, or blank lines:\n%s", got)
	}
	// Once more: the note under the header is not added twice.
	again, err := r.merge(got)
	if err != nil || strings.Count(again, partialNote) != 1 {
		t.Fatalf("%v\n%s", err, again)
	}
	r.servers = servers[:2]
	if _, err := r.merge(old); err == nil {
		t.Fatal("a table of other servers merged")
	}
}

// TestSuiteIssue18: the logins and idle sessions of issue 18: ECDSA and
// resumed logins, 10,000 idle sessions on 1,000 accounts over TCP and
// WebSocket, and the relay cases, which bring the case each is the floor
// of.
func TestSuiteIssue18(t *testing.T) {
	cases, err := pick(suite(false), "relay-login,idle,websocket-idle,login-ecdsa,login-resume")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.name)
	}
	if got := strings.Join(names, ","); got != "login-sha-1,login-sha-256,login-ecdsa,login-resume,idle,websocket-idle,relay-login" {
		t.Fatalf("picked %s", got)
	}
	for _, c := range cases {
		args := strings.Join(caseArgs(c, "127.0.0.1"), " ")
		switch c.name {
		case "idle", "websocket-idle":
			if !strings.Contains(args, "--n 10000 --accounts 1000") || c.websocket != strings.Contains(args, "--url wss://127.0.0.1:5281/xmpp-websocket") {
				t.Errorf("%s: %s", c.name, args)
			}
			if c.name == "websocket-idle" && phaseOf(c) != fresh {
				t.Errorf("websocket-idle runs in phase %d, not on a server of its own", phaseOf(c))
			}
		case "login-ecdsa":
			if phaseOf(c) != ecdsa {
				t.Errorf("login-ecdsa runs in phase %d", phaseOf(c))
			}
		case "login-resume":
			if !strings.Contains(args, "--resume") || phaseOf(c) != plain || len(metricsFor(c)) != 4 {
				t.Errorf("login-resume: %s, %d rows", args, len(metricsFor(c)))
			}
		}
	}
	if len(metricsFor(cases[0])) != 3 {
		t.Errorf("login-sha-1 has %d rows, want 3 (no resumption row)", len(metricsFor(cases[0])))
	}
	relay, _ := pick(suite(false), "relay")
	if len(relay) != 5 || !relay[4].relay || relay[4].ref != "messages" {
		t.Errorf("-cases relay: %+v", relay)
	}
	if accts := accountsNeeded(cases); len(accts) != 1 || accts[0].k != 1000 {
		t.Errorf("accounts %+v", accts)
	}
}

// TestFloor: the relay cases are not rows of the main table but of the
// floor section, each server's figure beside the relay's with its ratio;
// a run of chosen cases puts it in its section, and a failed relay run is
// a failure with its note.
func TestFloor(t *testing.T) {
	cases, _ := pick(suite(false), "relay-login,login-resume")
	var login, resume, relay benchCase
	for _, c := range cases {
		switch c.name {
		case "login-sha-1":
			login = c
		case "login-resume":
			resume = c
		case "relay-login":
			relay = c
		}
	}
	sha256 := "login-sha-256"
	r := &report{date: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC), machine: "2 CPUs", commit: "abc1234", cases: cases, servers: servers,
		versions: map[string]string{"starling": "built", "prosody": "0.12", "ejabberd": "23.01"},
		cells: map[string]map[string]*cell{
			login.name: {
				"starling": {res: &result{RatePerS: 900, ServerCPUUs: 1500, LatP50Ms: 10, LatP99Ms: 30, Exchange: "135/288,51/50|135/693,16/90"}},
				"prosody":  {res: &result{RatePerS: 300, ServerCPUUs: 6000, LatP50Ms: 40, LatP99Ms: 90}},
				"ejabberd": {skipped: true},
			},
			resume.name: {
				"starling": {res: &result{RatePerS: 2000, ServerCPUUs: 400, LatP50Ms: 5, LatP99Ms: 9, Resumed: 1980, Full: 20, ResumedPct: 99}},
				"prosody":  {res: &result{RatePerS: 300, ServerCPUUs: 6000, LatP50Ms: 40, LatP99Ms: 90, Full: 2000}},
				"ejabberd": {err: "boom"},
			},
			relay.name: {"relay": {res: &result{RatePerS: 1500, ServerCPUUs: 500, LatP50Ms: 4, LatP99Ms: 12}}},
			sha256: {"ejabberd": {res: &result{RatePerS: 100, ServerCPUUs: 10000, LatP50Ms: 100, LatP99Ms: 200}},
				"starling": {res: &result{RatePerS: 800, ServerCPUUs: 1600}}, "prosody": {skipped: true}},
		}}
	table := r.table()
	if strings.Contains(table, "relay") {
		t.Errorf("relay rows in the main table:\n%s", table)
	}
	for _, want := range []string{
		"| TLS sessions resumed (" + resume.title + ") | 99 % (1,980 of 2,000) | 0 % (0 of 2,000) | failed [1] | — | — |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("no %q in\n%s", want, table)
		}
	}
	floor := r.floor()
	for _, want := range []string{
		"| floor | relay | Starling | Starling ÷ relay | Prosody | Prosody ÷ relay | ejabberd | ejabberd ÷ relay |",
		"| server CPU per login (" + relay.title + ") | 500.0 µs | 1,500 µs | 3.0× | 6,000 µs | 12.0× | 10,000 µs (`login-sha-256`) | 20.0× |",
		"--relay --scenario login --n 2000 --concurrency 20 --script 135/288,51/50|135/693,16/90\n",
	} {
		if !strings.Contains(floor, want) {
			t.Errorf("no %q in\n%s", want, floor)
		}
	}
	if n := r.failures(); n != 1 {
		t.Errorf("%d failures, want 1 (ejabberd's login-resume)", n)
	}
	r.cells[relay.name]["relay"] = &cell{err: "no exchange"}
	if n := r.failures(); n != 2 || !strings.Contains(r.floor(), "failed [") {
		t.Errorf("%d failures, want 2; floor:\n%s", n, r.floor())
	}
	old := "\n\nRun on 2026-12-07 10:17 UTC.\nMachine: 2 CPUs. Commit: 6ff067a.\n\n" +
		"| case | Starling | Prosody | ejabberd | Starling/Prosody | Starling/ejabberd |\n|---|---|---|---|---|---|\n" +
		"| a row | 1 | 2 | 3 [1] | — | — |\n\nFailures:\n\n1. ejabberd, `x`: slow\n\n"
	got, err := r.merge(old)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "### The floor: a bare TLS relay") || !strings.Contains(got, "<!-- END RUN -->") ||
		strings.Index(got, "### The floor") > strings.Index(got, "<!-- END RUN -->") {
		t.Errorf("the floor is not in the run's section:\n%s", got)
	}
	if !strings.Contains(got, "relay, `relay-login`: no exchange") || !strings.Contains(got, "1. ejabberd, `x`: slow") {
		t.Errorf("notes:\n%s", got)
	}
}
