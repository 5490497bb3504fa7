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
