package browser

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/anchorenv"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// webClientPackage is where `make webclient` installs Converse.js for
// Starling's bundled web client (npm ci in webclient/js).
const webClientPackage = "../../webclient/js/node_modules/converse.js"

// TestWebClient checks Starling's bundled web chat page ([http]
// web_client, package webclient) in the real browser: the built binary
// serves the page and Converse.js from the package `make webclient`
// installs, on its HTTPS listener at the default path /chat; Chromium
// opens https://localhost:PORT/chat, which must show Converse's login
// form preconfigured for the host (its settings: this listener's
// WebSocket and BOSH URLs, the domain localhost); alice types her name
// alone and her password into it, and Converse logs in over WebSocket; a
// TCP client (bob) sends her a message, which shows in her chat, and her
// reply, typed into it, reaches him. Nothing may come from another site
// and nothing may violate the page's Content-Security-Policy. The
// screenshot is kept as TestBrowser's are.
//
// It checks Starling's own page: with STARLING_ANCHOR set it does not
// run.
func TestWebClient(t *testing.T) {
	if name := anchorenv.Name(); name != "" {
		t.Skipf("the bundled web client is Starling's, not %s's", name)
	}
	_, pwErr := os.Stat("testdata/node_modules/playwright-core/package.json")
	_, nodeErr := exec.LookPath("node")
	testbin.Require(t, "node and testdata/node_modules/playwright-core (npm ci --prefix conformance/browser/testdata)", pwErr == nil && nodeErr == nil)
	_, chromiumErr := os.Stat(chromiumPath)
	testbin.Require(t, chromiumPath+" (Debian package chromium)", chromiumErr == nil)
	pkg, err := filepath.Abs(webClientPackage)
	if err != nil {
		t.Fatal(err)
	}
	_, convErr := os.Stat(filepath.Join(pkg, "dist", "converse.min.js"))
	testbin.Require(t, "Converse.js for the web client in webclient/js/node_modules (make webclient)", convErr == nil)

	bin := testbin.Build(t)
	httpAddr := testbin.FreeAddr(t)
	_, port, _ := net.SplitHostPort(httpAddr)
	// The web client on, at its default path: only the listener and
	// where the package is (the test does not run from the source tree's
	// root, where the default points).
	setup := testbin.NewSetup(t, fmt.Sprintf("[log]\nlevel = \"debug\"\n[http]\ntls_listen = [%q]\nweb_client = true\nweb_client_dir = %q\n", httpAddr, pkg))
	passwords := map[string]string{"alice": "alice-secret", "bob": "bob-secret"}
	for _, user := range []string{"alice", "bob"} {
		testbin.AddUser(t, bin, setup.Config, user+"@localhost", passwords[user])
	}
	proc := testbin.Start(t, bin, setup.Config)
	page := "https://localhost:" + port + "/chat"
	proc.WaitLog(t, 0, stepTimeout, "the web client's URL", func(l string) bool {
		return strings.Contains(l, "web_client="+page)
	})

	bob := xmpptest.Login(t, setup.StartTLS, "localhost", "bob", passwords["bob"], "SCRAM-SHA-256", "browser-peer")
	bob.Send("<presence/>")

	tag := randomTag()
	expect := "Hello from a TCP client to the bundled web client <&> ☃ " + tag
	reply := "Hi bob, the bundled web client here " + tag
	wsURL := "wss://localhost:" + port + "/xmpp-websocket"
	d := startDriver(t, "--page", page, "--login", "alice", "--password", passwords["alice"],
		"--transport", "websocket", "--url", wsURL, "--peer", bareJID(bob.JID),
		"--expect", expect, "--reply", reply, "--screenshot", artifactPath(t), "--timeout", fmt.Sprint(stepTimeout.Milliseconds()))

	// 0. The login form, preconfigured for the host the browser asked
	// for: a name is enough.
	e := d.next(t, "form")
	want := map[string]any{
		"websocket_url":                 wsURL,
		"bosh_service_url":              "https://localhost:" + port + "/http-bind",
		"discover_connection_methods":   false,
		"view_mode":                     "fullscreen",
		"default_domain":                "localhost",
		"domain_placeholder":            "localhost",
		"allow_registration":            false,
		"xmpp_providers_url":            "",
		"embed_3rd_party_media_players": false,
		"assets_path":                   "/chat/dist/",
	}
	if !reflect.DeepEqual(e.Settings, want) {
		t.Errorf("the page passed converse.initialize\n %v\nwant\n %v", e.Settings, want)
	}
	if e.Text != "Username" {
		t.Errorf("the login form asks for %q; want a user name alone (\"Username\")", e.Text)
	}

	chat(t, d, "alice@localhost", bob, "websocket", wsURL, tag, expect, reply, false, nil, nil, nil)
}
