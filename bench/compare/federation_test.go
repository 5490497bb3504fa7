package main

import (
	"strings"
	"testing"
)

func TestParseFederation(t *testing.T) {
	pairs, err := parseFederation(defaultFederation)
	if err != nil || len(pairs) != 3 || pairs[0].name() != "starling-prosody" || pairs[1].name() != "prosody-starling" || pairs[2].title() != "Prosody → ejabberd" {
		t.Fatalf("%q: %v, %+v", defaultFederation, err, pairs)
	}
	if pairs, err := parseFederation(""); err != nil || len(pairs) != 0 {
		t.Fatalf("'': %v, %+v", err, pairs)
	}
	for _, bad := range []string{"starling", "starling-", "starling-openfire", "starling_prosody"} {
		if _, err := parseFederation(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Each side on its server's address and domain; a server paired with
	// itself runs a second time elsewhere.
	pairs, _ = parseFederation("starling-prosody, starling-starling")
	a, b := pairs[0].sides()
	if a.addr != "127.0.0.1" || a.domain != "starling.test" || b.addr != "127.0.0.2" || b.domain != "prosody.test" {
		t.Fatalf("sides %+v %+v", a, b)
	}
	a, b = pairs[1].sides()
	if a.addr == b.addr || a.domain == b.domain || b.domain != "starling-2.test" {
		t.Fatalf("sides %+v %+v", a, b)
	}
}

func TestFedArgs(t *testing.T) {
	pairs, _ := parseFederation("prosody-ejabberd")
	c := fedCase(false)
	args := strings.Join(fedArgs(pairs[0], c, "11", "22"), " ")
	for _, want := range []string{"--addr 127.0.0.2:5222 --domain prosody.test", "--peer-addr 127.0.0.3:5222 --peer-domain ejabberd.test",
		"--pid 11 --peer-pid 22", "--mech SCRAM-SHA-1 --peer-mech SCRAM-SHA-256", "--scenario federation --n 10 --count 10000"} {
		if !strings.Contains(args, want) {
			t.Errorf("%s: no %q", args, want)
		}
	}
	if fedAccounts(c) != 10 || fedAccounts(fedCase(true)) != 2 {
		t.Fatalf("accounts %d, quick %d", fedAccounts(c), fedAccounts(fedCase(true)))
	}
}

func TestFedTable(t *testing.T) {
	pairs, _ := parseFederation("starling-prosody,prosody-ejabberd")
	ok := &cell{res: &result{RatePerS: 9092, LatP50Ms: 14.3, LatP99Ms: 52, ServerCPUUs: 17.1, PeerCPUUs: 99.4, Sent: 100000, ExactlyOnce: true}}
	r := &report{fedCase: fedCase(false), commit: "abc", fed: []*fedRun{
		{pair: pairs[0], versions: [2]string{"built with Go 1.26", "0.12.3 (Debian)"}, cell: ok},
		{pair: pairs[1], cell: &cell{err: "Prosody did not start: no"}},
	}}
	got := r.fedSection()
	for _, want := range []string{
		"| Starling → Prosody (starling.test → prosody.test, 10 pairs, window 16) | 9,092 | 14.3 / 52.0 ms | 17.1 µs | 99.4 µs | 116.5 µs | yes, 100,000 |",
		"| Prosody → ejabberd (prosody.test → ejabberd.test, 10 pairs, window 16) | failed [1] |",
		"Starling (commit abc, built with Go 1.26) on starling.test",
		"starling-bench --addr 127.0.0.1:5222 --domain starling.test --peer-addr 127.0.0.2:5222",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	if len(r.notes) != 1 || !strings.Contains(r.notes[0], "did not start") || r.failures() != 1 {
		t.Fatalf("notes %q, failures %d", r.notes, r.failures())
	}
}
