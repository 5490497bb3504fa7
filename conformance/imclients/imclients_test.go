// Package imclients drives two real client libraries through the instant
// messaging features of RFC 6121 and the XEPs every chat client relies on,
// against Starling started from its built binary (issue 4, "Done means"):
// slixmpp (python3-slixmpp) and nbxmpp (python3-nbxmpp, the library inside
// Gajim), both from Debian packages and run by /usr/bin/python3.
//
// Each library's session is a long-running script (testdata/<library>_client.py)
// logged in as one full JID over STARTTLS, trusting the server's
// self-signed certificate and nothing else: the test writes commands to its
// stdin, one JSON object a line, and the script carries each out through the
// library's own API (its roster, presence, blocking and vCard calls) and
// reports what the library saw as JSON lines on stdout (agent_test.go).
//
// The checks, each run with each library, every participant of a check on
// that library, and each within checkTimeout (checks_test.go):
//
//   - roster: a resource adds a contact and removes it; another resource of
//     the account, which fetched the roster, gets both pushes (RFC 6121
//     §2.1.6, §2.3.2, §2.5.2).
//   - subscription: alice and bob subscribe to each other with the
//     library's subscribe and approve calls; both rosters end in "both"
//     (RFC 6121 §3.1).
//   - presence: each sees the other available with the status text the other
//     set, and unavailable once the other disconnects (RFC 6121 §4.2–§4.5).
//   - blocking: bob blocks alice (XEP-0191 §3.3); her message does not reach
//     him — shown by a later message from carol that does — and she gets an
//     error back; after bob unblocks her (§3.4) her message arrives.
//   - vcard: alice publishes a vCard with FN and NICKNAME, bob fetches it
//     (XEP-0054 §3.2, §3.3).
//   - avatar: alice on the check's library and bob on the other, each
//     with entity capabilities asking for avatar metadata notifications
//     (XEP-0115, XEP-0163 §4), publish an avatar with the library's own
//     call (XEP-0084); the other gets the metadata notification and
//     fetches the same bytes; carol, a stranger, is refused both; then
//     the nbxmpp user makes its avatar public as Gajim does (access model
//     open through precondition-not-met and reconfiguration), and carol
//     gets it.
//   - vcard-avatar: avatar conversion (XEP-0398) between alice and bob,
//     one on nbxmpp with PEP avatars only, the other on slixmpp with
//     vCard-based avatars only (XEP-0153): the PEP avatar's bytes and type
//     in the vCard's PHOTO and its SHA-1 in the vcard-temp:x:update of the
//     PEP user's presence; the PHOTO the vCard user sets notified and
//     fetched as a PEP avatar with the SHA-1 as its id.
//   - bookmarks: alice on nbxmpp, with the bookmarks Gajim picks (native
//     XEP-0402 on Starling), and on slixmpp, with XEP-0048 bookmarks in
//     private storage (XEP-0049): a bookmark one adds, with its name, nick
//     and autojoin, the other sees, and back, additions and removals, in
//     private storage, in the PEP node storage:bookmarks where #compat-pep
//     is advertised, and as XEP-0402 notifications (XEP-0402 §5).
//   - muc: group chat (XEP-0045) in a new room on conference.<domain>,
//     alice on the check's library (its owner), bob on the other, carol
//     on the check's: the locked new room (201) and its default
//     configuration, each one's presence with roles, affiliations and
//     occupant ids (XEP-0421) as the others' libraries parse them, the
//     occupant count in the room's disco#info, messages to everyone each
//     way exactly once, a private message, a nickname change (303), a
//     kick (307) and the history a returning occupant asks for
//     (muc_test.go); the room made persistent with the library's
//     configuration form, so it keeps an archive: 170 on entering, each
//     message with the same stanza-id by the room for every occupant
//     (XEP-0359), and the room's archive paged through by MAM (XEP-0313
//     at the room's JID, RSM) on both libraries, every message once, in
//     order, with the ids seen live.
//   - upload: HTTP file upload (XEP-0363, upload_test.go), alice on the
//     check's library, bob on the other: each uploads a file of a few
//     hundred KiB of random bytes under a non-ASCII name with the
//     library's own upload API (slixmpp's xep_0363 upload_file(), which
//     finds the service by disco; nbxmpp's HTTPUpload.request_slot()
//     and a PUT with the slot's headers, as Gajim), and sends the other
//     the GET URL as body and jabber:x:oob URL; the other downloads it
//     over HTTPS, trusting only the server's certificate, and has the
//     same bytes (SHA-256) with the declared content type. A slot of
//     the advertised max-file-size is granted, one byte more refused
//     with <file-too-large/> and the limit, as the library parses it
//     (§5). On Starling: the service upload.localhost, the configured
//     limit, the URLs on its HTTPS listener under /upload/.
//   - carbons: alice on both libraries at once (the check's and the other),
//     each with carbons enabled (XEP-0280 §4); what bob sends to one of
//     them reaches the other as a received carbon, and what one sends bob
//     reaches the other as a sent carbon (§7, §8), each way round.
//   - offline: alice writes to bob while he has no session; he gets the
//     message when he becomes available, with a XEP-0203 delay (RFC 6121
//     §8.5.2.2.1, XEP-0160 §2).
//   - resume-close: alice, with stream management and resumption
//     (XEP-0198), loses her TCP connection mid-conversation (a FIN, no
//     </stream:stream>); bob writes on; the library reconnects and resumes,
//     and she has every one of bob's messages exactly once, in order.
//   - resume-silent: the same with a connection the server never sees
//     close (slixmpp only: it keeps a duplicate of the socket open), which
//     the resumption must take the session over from.
//   - archive: alice on both libraries with carbons, then offline, then
//     syncing her archive (XEP-0313) 5 messages a page: stanza ids
//     (XEP-0359) the same live, on carbons, offline and in the archive;
//     every message once and in order.
//   - offline-restart: the same with Starling stopped (SIGTERM, which must
//     end it cleanly) and started again on the same data in between.
//
// On Starling a fresh server runs per storage backend (SQLite, and
// PostgreSQL via pgtest.Database) and library, with accounts alice, bob and
// carol, so each library starts from empty rosters, and with its HTTPS
// listener and upload module ([http] tls_listen, [modules.upload]
// max_file_size 1 MiB). offline-restart comes
// last: the server it restarts belongs to it.
//
// With STARLING_ANCHOR set (internal/anchorenv; `make conformance-anchors`)
// the same checks run against that server instead, such as Prosody or
// ejabberd, both libraries one after the other on the same accounts, which
// must include carol for the blocking check. What a run leaves there stays
// for the next: the subscription check starts by undoing the subscription
// an earlier one made, and the blocking check unblocks at its end.
// offline-restart is skipped there: a server this test did not start is
// not restarted; upload needs an upload service the anchor lists in its
// disco#items.
//
// Prerequisites (python3-slixmpp, and python3-aiohttp for its uploads;
// python3-nbxmpp with GObject and a GIO TLS backend) are checked with
// testbin.Require: a skip, or a failure under
// STARLING_REQUIRE_ALL=1.
package imclients

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/starling-xmpp/starling/internal/anchorenv"
	"github.com/starling-xmpp/starling/internal/pgtest"
	"github.com/starling-xmpp/starling/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

const (
	starlingDomain = "localhost"        // the domain Starling serves here
	python         = "/usr/bin/python3" // Debian's, which has python3-slixmpp and python3-nbxmpp
)

// libraries are the client libraries every check runs with.
var libraries = []string{"slixmpp", "nbxmpp"}

// server is one running server under test with its accounts: Starling
// started here, or an anchor.
type server struct {
	bin, config string        // Starling's binary and config file, for restarts
	proc        *testbin.Proc // the running Starling; nil for an anchor
	anchor      string        // the anchor's name; "" for Starling
	host        string        // IP address the clients connect to
	port        int           // STARTTLS
	httpsPort   int           // Starling's HTTPS listener, of the upload service; 0 for an anchor
	domain      string        // the XMPP domain of the accounts
	cert        string        // the certificate (PEM) clients trust: self-signed, so also the CA
	mech        string        // the SASL mechanism the clients use
	passwords   map[string]string
}

// TestIMClients runs every check with every library against Starling on
// each storage backend or, when STARLING_ANCHOR is set, against that
// external server only. Subtests are <backend or anchor>/<library>/<check>.
func TestIMClients(t *testing.T) {
	if name := anchorenv.Name(); name != "" {
		t.Run(name, func(t *testing.T) {
			a := anchorenv.FromEnv(t)
			srv := &server{
				anchor:    name,
				host:      a.Host,
				port:      a.StartTLS,
				domain:    a.Domain,
				cert:      a.CA,
				mech:      a.SCRAM(t, "starttls"),
				passwords: a.Passwords,
			}
			for _, lib := range libraries {
				t.Run(lib, func(t *testing.T) { runChecks(t, srv, lib) })
			}
		})
		return
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			for _, lib := range libraries {
				t.Run(lib, func(t *testing.T) {
					dsn := ""
					if backend == "postgres" {
						dsn = pgtest.Database(t)
					}
					runChecks(t, startServer(t, backend, dsn), lib)
				})
			}
		})
	}
}

// runChecks runs every check with lib against srv, in this order:
// presence relies on the subscription the subscription check makes, and
// offline-restart, which replaces the server, comes last.
func runChecks(t *testing.T, srv *server, lib string) {
	for _, c := range []struct {
		name string
		run  func(*check)
	}{
		{"roster", checkRoster},
		{"subscription", checkSubscription},
		{"presence", checkPresence},
		{"blocking", checkBlocking},
		{"vcard", checkVCard},
		{"avatar", checkAvatar},
		{"vcard-avatar", checkVCardAvatar},
		{"bookmarks", checkBookmarks},
		{"muc", checkMUC},
		{"upload", checkUpload},
		{"carbons", checkCarbons},
		{"offline", checkOffline},
		{"resume-close", checkResumeClose},
		{"resume-silent", checkResumeSilent},
		{"archive", checkArchive},
		{"offline-restart", checkOfflineRestart},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireLibrary(t, lib)
			c.run(newCheck(t, srv, lib))
		})
	}
}

// startServer writes a config for backend, starts Starling and adds alice,
// bob and carol, as an operator would, while it runs.
func startServer(t *testing.T, backend, dsn string) *server {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := &server{
		bin:       testbin.Build(t),
		config:    filepath.Join(dir, "starling.toml"),
		host:      "127.0.0.1",
		port:      testbin.FreePort(t),
		httpsPort: testbin.FreePort(t),
		domain:    starlingDomain,
		cert:      filepath.Join(data, "certs", starlingDomain+".crt"),
		mech:      "SCRAM-SHA-256",
		passwords: map[string]string{"alice": randomHex(12), "bob": randomHex(12), "carol": randomHex(12)},
	}
	cfg := fmt.Sprintf(`[server]
hosts = [%q]
data_dir = %q

[s2s]
enabled = false

[c2s]
listen = ["%s:%d"]
direct_tls_listen = []

[http]
tls_listen = ["%s:%d"]

[modules.upload]
max_file_size = %d

[storage]
driver = %q
dsn = %q

[log]
level = "debug"
`, s.domain, data, s.host, s.port, s.host, s.httpsPort, uploadLimit, backend, dsn)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("config %s:\n%s", s.config, cfg)
	s.proc = testbin.Start(t, s.bin, s.config)
	for _, user := range []string{"alice", "bob", "carol"} {
		testbin.AddUser(t, s.bin, s.config, user+"@"+s.domain, s.passwords[user])
	}
	if _, err := os.Stat(s.cert); err != nil {
		t.Fatalf("generated certificate: %v", err)
	}
	return s
}

// restart stops Starling with SIGTERM, which must end it with exit code 0,
// and starts it again on the same config, data directory and database. The
// new process belongs to t: it is stopped when t ends.
func (s *server) restart(t *testing.T) {
	t.Helper()
	s.proc.Stop()
	if st := s.proc.Cmd.ProcessState; !st.Success() {
		t.Fatalf("starling did not exit cleanly on SIGTERM: %v", st)
	}
	s.proc = testbin.Start(t, s.bin, s.config)
	t.Logf("starling restarted on %s", s.config)
}

// bare is user's bare JID.
func (s *server) bare(user string) string { return user + "@" + s.domain }

// --- prerequisites ---

var libraryCheck = map[string]*struct {
	once    sync.Once
	version string
	err     error
	what    string
	probe   string
}{
	"slixmpp": {
		what:  "python3-slixmpp for " + python + " (apt-get install python3-slixmpp)",
		probe: "import slixmpp; print(slixmpp.__version__)",
	},
	// nbxmpp's GObject dependencies (python3-gi, the GLib and Soup 3
	// typelibs) load on import; GIO needs a TLS backend (glib-networking).
	// slixmpp's xep_0363 uploads with aiohttp (upload_test.go).
	"aiohttp": {
		what:  "python3-aiohttp for " + python + ", which slixmpp's HTTP file upload needs (apt-get install python3-aiohttp)",
		probe: "import aiohttp; print(aiohttp.__version__)",
	},
	"nbxmpp": {
		what: "python3-nbxmpp for " + python + " (apt-get install python3-nbxmpp python3-gi gir1.2-glib-2.0 gir1.2-soup-3.0 glib-networking)",
		probe: `import nbxmpp
from gi.repository import Gio
assert Gio.TlsBackend.get_default().supports_tls(), "GIO has no TLS backend (glib-networking)"
print(nbxmpp.__version__)`,
	},
}

// requireLibrary checks, once per process, that python can import lib.
func requireLibrary(t *testing.T, lib string) {
	t.Helper()
	c := libraryCheck[lib]
	c.once.Do(func() {
		out, err := exec.Command(python, "-c", c.probe).CombinedOutput()
		c.version = strings.TrimSpace(string(out))
		if err != nil {
			c.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	testbin.Require(t, fmt.Sprintf("%s: %v", c.what, c.err), c.err == nil)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
