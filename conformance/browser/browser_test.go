// Package browser checks Starling with Converse.js, a web client nobody
// here wrote, running in a real browser: Debian's headless Chromium driven
// by playwright-core (testdata/driver.mjs) opens a page (testdata/
// index.html) that loads Converse.js from its npm package, served by the
// test itself on loopback, so nothing comes from the network. For each web
// transport, XMPP over WebSocket (RFC 7395) and BOSH (XEP-0124/0206),
// Converse logs in as alice; a TCP client (bob, internal/xmpptest) sends
// her a chat message, which must show in her chat; she types a reply into
// the chat and presses Enter, and it must reach bob, stamped with her full
// JID. A screenshot of the conversation is kept as the test's artifact,
// in $STARLING_ARTIFACTS or else $TMPDIR/starling-browser-artifacts, named
// after the subtest (issue 5).
//
// Against Starling, whose accounts have a message archive (XEP-0313),
// the page is then reloaded with everything the browser kept for it
// cleared, and Converse logs in anew: when alice opens the chat with bob,
// Converse fetches its history from the archive, the only place it can
// still come from, and the chat must show bob's message and her reply,
// once each and in that order (issue 13). A second screenshot,
// "-history", shows it.
//
// Against Starling, alice and bob are made mutual contacts first, and
// each login checks their profiles too (profile_test.go), as a user sees
// them. bob (over TCP) publishes a new avatar, a small random PNG, in PEP
// (XEP-0084, readable by his contacts): once logged in, alice's roster
// must show it, the very bytes (Converse asks for bob's vCard, XEP-0054,
// so the server must give his PEP avatar as the vCard's PHOTO, XEP-0398).
// A bookmark of a random room with a random name is stored for alice
// before she logs in, as legacy clients do, in private XML storage
// (XEP-0049) of storage:bookmarks (XEP-0048): Converse, which keeps
// bookmarks in PEP (XEP-0402 when the account advertises
// urn:xmpp:bookmarks:1#compat, else XEP-0048's node), must list it by its
// name when alice opens her bookmarks; then she bookmarks another room in
// Converse (through its API: its form for it belongs to a groupchat's
// view, and there is no MUC service to join), and a legacy client must
// read both back from private XML storage, each with its name. A
// screenshot, "-bookmarks", shows the list.
//
// Then group chat (muc_test.go, the subtest "muc"): Converse opens a new
// room on conference.<domain>, which it creates and configures with the
// defaults as its owner; bob, over TCP, enters and writes there; the room
// view must show his message with his occupant id (XEP-0421), its
// sidebar both occupants, the room's disco#info two; alice's message,
// typed into the room, must reach bob from her occupant JID; she leaves
// and bob sees her go. A screenshot, "-muc", shows the room. On an anchor
// without a MUC service at conference.<domain> the subtest is skipped.
//
// Then a file shared (upload_test.go, the subtest "upload"; XEP-0363):
// in the chat with bob, alice clicks the paperclip and chooses a file of
// a few hundred KiB of random bytes with a non-ASCII name; Converse asks
// the upload service (upload.<domain>, found among the server's
// disco#items) for a slot, PUTs the file from the page, a cross-origin
// request that the service's CORS headers must allow, and sends bob the
// GET URL as body and jabber:x:oob URL; bob receives it, and the test
// downloads it, trusting only the server's certificate, and compares the
// bytes and the type. A screenshot, "-upload", shows the chat. On an
// anchor without an upload service the subtest is skipped.
//
// `make check` installs chromium (Debian) and the npm packages into
// testdata/node_modules (npm ci from testdata/package-lock.json).
//
// With STARLING_ANCHOR set (internal/anchorenv; `make conformance-anchors`)
// the same checks run against that server instead, at the URLs of
// STARLING_ANCHOR_WEBSOCKET_URL and STARLING_ANCHOR_BOSH_URL.
//
// Against Starling both checks run on the HTTPS listener ([http]
// tls_listen, with the page's origin in allowed_origins): WebSocket at
// /xmpp-websocket, BOSH at /http-bind, and the upload service's URLs
// ([modules.upload]) under /upload/.
//
// TestWebClient (webclient_test.go) checks Starling's own chat page
// ([http] web_client) the same way, logging in through the page's login
// form; it needs Converse.js where `make webclient` installs it.
package browser

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/anchorenv"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

func TestMain(m *testing.M) { testbin.Main(m) }

const (
	// chromiumPath is Debian's chromium, the browser the checks drive.
	chromiumPath = "/usr/bin/chromium"
	// driverTimeout bounds one run of the driver, browser start included.
	driverTimeout = 90 * time.Second
	// stepTimeout bounds each step inside the driver (login, a message
	// showing up) and the wait for each of its reports.
	stepTimeout = 30 * time.Second
	// maxLogLine bounds a line of the browser's console in the test log
	// (Converse logs whole stanzas).
	maxLogLine = 600
	// artifactsVar names the directory the screenshots go to.
	artifactsVar = "STARLING_ARTIFACTS"
)

// event is a line of the driver's output.
type event struct {
	Event     string `json:"event"`
	JID       string `json:"jid"`
	Transport string `json:"transport"`
	Service   string `json:"service"`
	From      string `json:"from"`
	Type      string `json:"type"`
	Body      string `json:"body"`
	Path      string `json:"path"`
	Text      string `json:"text"`
	Error     string `json:"error"`
	// The history after a reload: the chat's texts and Converse's
	// message bodies, in order, and how many MAM queries it made.
	Texts  []string `json:"texts"`
	Bodies []string `json:"bodies"`
	MAM    int      `json:"mam"`
	// Settings are what a page passed to converse.initialize (with
	// --login).
	Settings map[string]any `json:"settings"`
	// Image is the data URL of the avatar shown (with --avatar).
	Image string `json:"image"`
	// Bookmarks are the bookmarks Converse lists, Node the PEP node it
	// keeps them in (with --bookmark-jid); Answer the server's error
	// answer to its publish of one (with --add-bookmark-jid).
	Bookmarks []bookmark `json:"bookmarks"`
	Node      string     `json:"node"`
	Answer    string     `json:"answer"`
	// The group chat (with --muc-room; muc_test.go): Converse's own
	// nick, role and affiliation in the room, or a message's sender's
	// nick and occupant id (XEP-0421); the room's occupant count
	// (muc#roominfo_occupants) as Converse has it.
	Nick        string `json:"nick"`
	Role        string `json:"role"`
	Affiliation string `json:"affiliation"`
	OccupantID  string `json:"occupant_id"`
	Count       int    `json:"count"`
	// The file shared (with --upload-file; upload_test.go): the URL
	// Converse sent, and the HTTP status of its PUT.
	URL       string `json:"url"`
	PutStatus int    `json:"put_status"`
}

// server is the server under test: Starling started by the test, or an
// anchor.
type server struct {
	name      string // for messages
	domain    string
	starttls  string            // host:port, for the TCP client
	mech      string            // the TCP client's SASL mechanism
	passwords map[string]string // alice, bob
	ca        string            // the server's certificate (PEM), self-signed: what an HTTPS client trusts
	// upload is the origin of Starling's upload service (its HTTPS
	// listener, by the host's name), "" for an anchor.
	upload string
	// archive: the accounts have a message archive (XEP-0313) that
	// Converse syncs from, so the history check after a reload runs.
	archive bool
	// profile: the profile checks run (bob's avatar, alice's bookmarks;
	// profile_test.go): the server converts avatars between PEP and vCard
	// (XEP-0398) and keeps bookmarks in PEP and private XML storage in
	// step (XEP-0402 §5, XEP-0048).
	profile bool
	// urls maps each web transport checked ("websocket", "bosh") to its
	// endpoint.
	urls map[string]string
}

func TestBrowser(t *testing.T) {
	_, convErr := os.Stat("testdata/node_modules/converse.js/dist/converse.min.js")
	_, pwErr := os.Stat("testdata/node_modules/playwright-core/package.json")
	_, nodeErr := exec.LookPath("node")
	testbin.Require(t, "node and testdata/node_modules/{converse.js,playwright-core} (npm ci --prefix conformance/browser/testdata)", convErr == nil && pwErr == nil && nodeErr == nil)
	_, chromiumErr := os.Stat(chromiumPath)
	testbin.Require(t, chromiumPath+" (Debian package chromium)", chromiumErr == nil)

	page := servePage(t)

	if name := anchorenv.Name(); name != "" {
		t.Run(name, func(t *testing.T) {
			a := anchorenv.FromEnv(t)
			srv := &server{name: a.Name, domain: a.Domain, starttls: a.Addr("starttls"), mech: a.SCRAM(t, "starttls"),
				passwords: a.Passwords, ca: a.CA, urls: map[string]string{"websocket": a.WebSocketURL, "bosh": a.BOSHURL}}
			runChecks(t, page, srv)
		})
		return
	}

	// Starling on its default storage, SQLite: the subtest is named after
	// it, as in the other real-client suites, for conformance/anchors'
	// table.
	t.Run("sqlite", func(t *testing.T) {
		bin := testbin.Build(t)
		httpAddr := testbin.FreeAddr(t)
		setup := testbin.NewSetup(t, "[log]\nlevel = \"debug\"\n"+starlingHTTP(httpAddr, page)+starlingUpload)
		if out, err := exec.Command(bin, "check-config", setup.Config).CombinedOutput(); err != nil {
			testbin.Require(t, fmt.Sprintf("Starling has no WebSocket listener yet: its config does not take %q (check-config: %s)", starlingHTTP(httpAddr, page), bytes.TrimSpace(out)), false)
		}
		srv := &server{name: "Starling", domain: "localhost", starttls: setup.StartTLS, mech: "SCRAM-SHA-256",
			passwords: map[string]string{"alice": "alice-secret", "bob": "bob-secret"}, archive: true, profile: true,
			ca: filepath.Join(setup.DataDir, "certs", "localhost.crt"), upload: "https://localhost:" + strings.TrimPrefix(httpAddr, "127.0.0.1:")}
		for _, user := range []string{"alice", "bob"} {
			testbin.AddUser(t, bin, setup.Config, user+"@"+srv.domain, srv.passwords[user])
		}
		testbin.Start(t, bin, setup.Config)
		srv.urls = map[string]string{"websocket": "wss://" + httpAddr + "/xmpp-websocket", "bosh": "https://" + httpAddr + "/http-bind"}
		runChecks(t, page, srv)
	})
}

// starlingHTTP is the TOML of Starling's HTTPS listener at addr (with the
// generated certificate, which the browser is told to accept), which lets
// the test's page use WebSocket and BOSH: its origin is allowed.
func starlingHTTP(addr, page string) string {
	u, err := url.Parse(page)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("[http]\ntls_listen = [%q]\nallowed_origins = [%q]\n", addr, u.Scheme+"://"+u.Host)
}

// starlingUpload is the TOML of Starling's upload service, on the HTTPS
// listener: upload.localhost, with a limit well above the file shared.
const starlingUpload = "[modules.upload]\nmax_file_size = 1048576\n"

// servePage serves testdata (index.html and node_modules, with Converse's
// dist files) on a loopback port for the browser, and returns the page's
// URL.
func servePage(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir("testdata")))
	t.Cleanup(srv.Close)
	return srv.URL + "/index.html"
}

// runChecks runs the browser check over each web transport srv has, in a
// fixed order.
func runChecks(t *testing.T, page string, srv *server) {
	bob := xmpptest.Login(t, srv.starttls, srv.domain, "bob", srv.passwords["bob"], srv.mech, "browser-peer")
	// Available, so that a reply to his bare JID reaches this session.
	bob.Send("<presence/>")
	// With the profile checks, a session of alice's over TCP as a legacy
	// client, never available, and alice and bob mutual contacts.
	var legacy *xmpptest.Client
	if srv.profile {
		legacy = xmpptest.Login(t, srv.starttls, srv.domain, "alice", srv.passwords["alice"], srv.mech, "browser-legacy")
		befriend(t, legacy, bob)
	}
	for _, transport := range []string{"websocket", "bosh"} {
		endpoint, ok := srv.urls[transport]
		if !ok {
			continue // not on this server: see the package comment
		}
		t.Run(transport, func(t *testing.T) {
			if endpoint == "" {
				t.Fatalf("no %s URL for %s: set %s_%s_URL", transport, srv.name, anchorenv.Var, strings.ToUpper(transport))
			}
			checkConverse(t, page, srv, bob, legacy, transport, endpoint)
		})
	}
}

// checkConverse is one login of Converse over transport at endpoint, a
// message from bob shown in the chat and a reply typed back to him; with
// srv.profile, bob's avatar and alice's bookmarks (legacy is her TCP
// session).
func checkConverse(t *testing.T, page string, srv *server, bob, legacy *xmpptest.Client, transport, endpoint string) {
	alice := "alice@" + srv.domain
	tag := randomTag()
	expect := fmt.Sprintf("Hello Converse over %s, from a TCP client <&> ☃ %s", transport, tag)
	reply := fmt.Sprintf("Hi bob, Converse over %s here %s", transport, tag)
	shot := artifactPath(t)

	args := []string{"--page", page, "--transport", transport, "--url", endpoint,
		"--jid", alice, "--password", srv.passwords["alice"], "--peer", bareJID(bob.JID),
		"--expect", expect, "--reply", reply, "--screenshot", shot, "--timeout", fmt.Sprint(stepTimeout.Milliseconds())}
	if srv.archive {
		args = append(args, "--history")
	}
	var p *profile
	if srv.profile {
		p = newProfile(t, legacy, bob, srv.domain)
		args = append(args, p.args()...)
	}
	g := newGroupchat(t, srv, transport)
	args = append(args, g.args()...)
	u := newUpload(t, srv)
	args = append(args, u.args()...)
	d := startDriver(t, args...)
	chat(t, d, alice, bob, transport, endpoint, tag, expect, reply, srv.archive, p, g, u)
}

// chat is the check once the driver d has started logging alice in: she
// is online over transport at endpoint, sees bob's message expect (with
// id browser-tag) in her chat, and her reply reaches him; then the
// screenshot; with history, the reload and the history from the archive
// (see checkHistory); and the logout. With a profile p, bob's avatar in
// her roster once she is online, and her bookmarks after the screenshot;
// with a groupchat g, then the room (the subtest "muc", muc_test.go);
// with an upload u, then the file shared with bob (the subtest "upload",
// upload_test.go).
func chat(t *testing.T, d *driver, alice string, bob *xmpptest.Client, transport, endpoint, tag, expect, reply string, history bool, p *profile, g *groupchat, u *upload) {
	t.Helper()
	// 1. Logged in over the transport asked for, at the URL given.
	e := d.next(t, "online")
	if bareJID(e.JID) != alice || e.JID == alice || e.Transport != transport || e.Service != endpoint {
		t.Fatalf("Converse online as %q over %q at %q; want a full JID of %s over %s at %s", e.JID, e.Transport, e.Service, alice, transport, endpoint)
	}
	t.Logf("Converse logged in as %s over %s at %s", e.JID, e.Transport, e.Service)
	full := e.JID
	if p != nil {
		p.checkAvatar(t, d, bareJID(bob.JID))
	}

	// 2. bob's message, to alice's bare JID, shows up in her chat.
	bob.Send(fmt.Sprintf("<message to='%s' type='chat' id='browser-%s'><body>%s</body></message>", alice, tag, xmlEscape(expect)))
	e = d.next(t, "received")
	if e.From != bob.JID || e.Type != "chat" || e.Body != expect {
		t.Fatalf("Converse shows a message from %q of type %q with body %q; want from %s, chat, %q", e.From, e.Type, e.Body, bob.JID, expect)
	}

	// 3. Her reply, typed into the chat, reaches bob from her full JID.
	d.next(t, "sent")
	msg := nextMessage(t, bob, reply)
	if msg.From != full || msg.Type != "chat" {
		t.Fatalf("bob received the reply from %q of type %q; want from %s, chat", msg.From, msg.Type, full)
	}

	// 4. The screenshot of the conversation.
	e = d.next(t, "screenshot")
	checkPNG(t, e.Path)
	t.Logf("screenshot: %s", e.Path)
	if p != nil {
		p.checkBookmarks(t, d)
	}
	if g != nil {
		t.Run("muc", func(t *testing.T) { g.check(t, d) })
	}
	if u != nil {
		t.Run("upload", func(t *testing.T) { u.check(t, d, bob, full) })
	}

	if history {
		io.WriteString(d.stdin, "reload\n")
		checkHistory(t, d, alice, expect, reply)
	}

	// 5. Log out; the browser closes.
	d.quit(t)
}

// checkHistory: the driver has reloaded the page with the browser's
// storage for it cleared, Converse has logged alice in again and, once
// she opened the chat with bob, fetched it from her archive. The chat
// must show bob's message and her reply, each once (Converse's message
// models and the texts shown), bob's before hers, after at least one MAM
// query.
func checkHistory(t *testing.T, d *driver, alice, expect, reply string) {
	t.Helper()
	e := d.next(t, "reloaded")
	if bareJID(e.JID) != alice {
		t.Fatalf("after the reload Converse is online as %q, want a full JID of %s", e.JID, alice)
	}
	e = d.next(t, "history")
	t.Logf("after the reload, with %d MAM queries, the chat shows %q (messages %q)", e.MAM, e.Texts, e.Bodies)
	if e.MAM == 0 {
		t.Errorf("Converse made no MAM query after the reload")
	}
	for what, list := range map[string][]string{"shows": e.Texts, "has the messages": e.Bodies} {
		count := func(s string) int {
			return len(slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x != s }))
		}
		if n, m := count(expect), count(reply); n != 1 || m != 1 {
			t.Errorf("after the reload the chat %s bob's message %d times and alice's reply %d times, want once each: %q", what, n, m, list)
		} else if slices.Index(list, expect) > slices.Index(list, reply) {
			t.Errorf("after the reload the chat %s alice's reply before bob's message: %q", what, list)
		}
	}
}

// message is what bob checks of a message he receives.
type message struct {
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
	Type string `xml:"type,attr"`
	Body string `xml:"body"`
}

// nextMessage reads what bob receives until the message whose body is
// body, passing over anything else: his own presence, and the chat states
// Converse sends while alice types (messages without a body).
func nextMessage(t *testing.T, bob *xmpptest.Client, body string) message {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for time.Now().Before(deadline) {
		el, err := bob.Next()
		if err != nil {
			t.Fatalf("bob waiting for %q: %v", body, err)
		}
		if el.Name.Local != "message" {
			continue
		}
		var m message
		if err := xml.Unmarshal(el.Raw, &m); err != nil {
			t.Fatalf("bob received %s: %v", el.Raw, err)
		}
		if m.Body == body {
			return m
		}
		if m.Body != "" {
			t.Logf("bob passes over %s", el.Raw)
		}
	}
	t.Fatalf("bob did not receive %q within %v", body, stepTimeout)
	return message{}
}

// artifactPath is where the subtest's screenshot goes: a file named after
// it in $STARLING_ARTIFACTS, or else in $TMPDIR/starling-browser-artifacts
// (t.TempDir would be removed with the test).
func artifactPath(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(artifactsVar)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "starling-browser-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(t.Name(), "_")
	path, err := filepath.Abs(filepath.Join(dir, name+".png"))
	if err != nil {
		t.Fatal(err)
	}
	// A stale screenshot must not pass for this run's.
	os.Remove(path)
	os.Remove(strings.TrimSuffix(path, ".png") + "-failed.png")
	return path
}

// checkPNG checks that path is a non-empty PNG image.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(b) < 100 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s is not a PNG image (%d bytes)", path, len(b))
	}
}

// driver is a run of testdata/driver.mjs.
type driver struct {
	events chan event
	done   chan error
	stdin  io.WriteCloser
}

func startDriver(t *testing.T, args ...string) *driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), driverTimeout)
	cmd := exec.CommandContext(ctx, "node", append([]string{"driver.mjs", "--chromium", chromiumPath}, args...)...)
	cmd.Dir = "testdata"
	// In a process group of its own with the browser it starts, which a
	// timeout kills whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &driver{events: make(chan event, 64), done: make(chan error, 1), stdin: stdin}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{Event: "log", Text: "not JSON: " + sc.Text()}
			}
			d.events <- e
		}
		close(d.events)
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%v; stderr: %s", err, stderr.String())
		}
		d.done <- err
	}()
	// A test that ends early closes the driver's stdin, which makes it
	// log out and close the browser; if it does not end by itself soon,
	// its process group is killed.
	t.Cleanup(func() {
		defer cancel()
		stdin.Close()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case _, ok := <-d.events:
				if !ok {
					return
				}
			case <-timeout:
				cancel()
				for range d.events {
				}
				return
			}
		}
	})
	return d
}

// next returns the next report, which must be want, logging the browser's
// output on the way; it fails the test if the driver reports an error,
// ends, or is silent for stepTimeout.
func (d *driver) next(t *testing.T, want string) event {
	t.Helper()
	timer := time.NewTimer(stepTimeout + 5*time.Second)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-d.events:
			switch {
			case !ok:
				t.Fatalf("the driver ended before %q: %v", want, <-d.done)
			case e.Event == "log":
				if len(e.Text) > maxLogLine {
					e.Text = e.Text[:maxLogLine] + fmt.Sprintf("… (%d bytes)", len(e.Text))
				}
				t.Log("browser: " + e.Text)
				continue
			case e.Event == "error":
				t.Fatalf("the driver failed waiting for %q: %s", want, e.Error)
			case e.Event != want:
				t.Fatalf("the driver reported %+v; want %q", e, want)
			}
			return e
		case <-timer.C:
			t.Fatalf("the driver reported no %q within %v", want, stepTimeout+5*time.Second)
		}
	}
}

// quit lets the driver log out and close the browser, and checks that it
// exits cleanly.
func (d *driver) quit(t *testing.T) {
	t.Helper()
	io.WriteString(d.stdin, "quit\n")
	d.next(t, "closed")
	for e := range d.events {
		t.Logf("browser after closing: %+v", e)
	}
	if err := <-d.done; err != nil {
		t.Fatalf("the driver exited: %v", err)
	}
}

func randomTag() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func bareJID(jid string) string {
	bare, _, _ := strings.Cut(jid, "/")
	return bare
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
