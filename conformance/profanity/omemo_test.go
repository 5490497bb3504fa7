package profanity

// TestProfanityOMEMO: OMEMO (the eu.siacs.conversations.axolotl version,
// 0.3) between two different implementations through Starling's PEP:
// Profanity (libsignal) as alice, and python-omemo with oldmemo as bob
// (testdata/omemo_client.py on slixmpp). Each publishes its device list and
// bundle on its own account; Profanity encrypts a message to bob, which the
// Python side decrypts, and shows the Python side's encrypted answer.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

const (
	// python is Debian's, which has the python3-* packages.
	python = "/usr/bin/python3"
	// nsOMEMO is OMEMO 0.3's namespace; its PEP nodes are named after it.
	nsOMEMO        = "eu.siacs.conversations.axolotl"
	deviceListNode = nsOMEMO + ".devicelist"
	bundlesNode    = nsOMEMO + ".bundles:"
	// omemoTimeout bounds each wait for the Python side.
	omemoTimeout = 30 * time.Second
)

func TestProfanityOMEMO(t *testing.T) {
	_, perr := exec.LookPath("profanity")
	_, terr := exec.LookPath("tmux")
	testbin.Require(t, "profanity and tmux (Debian packages)", perr == nil && terr == nil)
	out, err := exec.Command(python, "-c", "import slixmpp, omemo, oldmemo, oldmemo.etree").CombinedOutput()
	testbin.Require(t, fmt.Sprintf("python3-slixmpp, python3-omemo, python3-oldmemo and python3-xmlschema for %s "+
		"(apt-get install python3-slixmpp python3-omemo python3-oldmemo python3-xmlschema): %v %s", python, err, bytes.TrimSpace(out)), err == nil)

	setup := testbin.NewSetup(t, "")
	bin := testbin.Build(t)
	const domain = "localhost"
	alice, bob, carol := "alice@"+domain, "bob@"+domain, "carol@"+domain
	passwords := map[string]string{alice: "alice-" + randomHex(8), bob: "bob-" + randomHex(8), carol: "carol-" + randomHex(8)}
	for _, jid := range []string{alice, bob, carol} {
		testbin.AddUser(t, bin, setup.Config, jid, passwords[jid])
	}
	testbin.Start(t, bin, setup.Config)

	// alice and bob are each other's contacts, as people who chat are:
	// Profanity 0.13 looks for pubsub#publish-options in the server's
	// disco#info only, and Starling, as Prosody 0.12, lists PEP's features
	// on the account's bare JID (XEP-0163 §6.1), so Profanity publishes
	// its nodes without publish-options, with the default access model,
	// presence, which lets contacts read them. Raw sessions set that up
	// and later read what each side published; carol is no contact.
	aliceRaw := rawLogin(t, setup.StartTLS, domain, "alice", passwords[alice])
	bobRaw := rawLogin(t, setup.StartTLS, domain, "bob", passwords[bob])
	carolRaw := rawLogin(t, setup.StartTLS, domain, "carol", passwords[carol])
	subscribeBoth(t, aliceRaw, bobRaw)
	// Profanity 0.13 publishes its device list only once it has read one:
	// an error answer (item-not-found for a node never created) without a
	// legacy code='404' leaves it waiting, so there has to be a list to add
	// its device to, as another client of alice's would have left.
	aliceRaw.iq(t, "set", alice, fmt.Sprintf(
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'><item id='current'><list xmlns='%s'/></item></publish></pubsub>`,
		deviceListNode, nsOMEMO))

	// bob: python-omemo on slixmpp; its device list and bundle published
	// (access model open) before it says it is ready.
	py := startOMEMOClient(t, setup, bob+"/python-omemo", passwords[bob])
	ready := py.next(t, "ready")
	bobDevice := ready.DeviceID
	t.Logf("python-omemo: %s is device %d", ready.JID, bobDevice)

	// alice: Profanity, logged in over STARTTLS, blind trust, OMEMO keys
	// generated on the spot.
	x := startProfanity(t, setup.StartTLS, alice, passwords[alice])
	x.keys(t, "/omemo trustmode blind")
	x.waitScreen(t, "ALL OMEMO fingerprints will be trusted automatically")
	x.keys(t, "/omemo gen")
	screen := x.waitScreen(t, "Your Device ID is ")
	m := regexp.MustCompile(`Your Device ID is (\d+)`).FindStringSubmatch(screen)
	if m == nil {
		t.Fatalf("no device id on Profanity's screen:\n%s", screen)
	}
	aliceDevice, _ := strconv.ParseUint(m[1], 10, 32)
	t.Logf("Profanity: alice's device %d", aliceDevice)

	// Both sides' device lists and bundles are on Starling: each read by
	// the other account; python-omemo's, published with access model
	// open, by carol too.
	ok := t.Run("published", func(t *testing.T) {
		bundle := func(c *raw, jid string, device uint64) {
			t.Helper()
			c.iq(t, "get", jid, fmt.Sprintf(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s%d'/></pubsub>`, bundlesNode, device)).mustHave(t, "<identityKey>")
		}
		waitDevice(t, bobRaw, alice, aliceDevice)
		bundle(bobRaw, alice, aliceDevice)
		for _, c := range []*raw{aliceRaw, carolRaw} {
			waitDevice(t, c, bob, bobDevice)
			bundle(c, bob, bobDevice)
		}
	})
	if !ok {
		return
	}

	// Profanity encrypts a message to bob; the Python side decrypts it.
	ok = t.Run("profanity-to-python", func(t *testing.T) {
		x.keys(t, "/omemo start "+bob)
		// The chat window with bob, in OMEMO mode; then, once Profanity
		// has read bob's device list and bundle, its session with
		// python-omemo's device (Profanity's debug log says so; its
		// screen does not).
		x.waitScreen(t, bob+" [online] [OMEMO]")
		x.waitLog(t, fmt.Sprintf("[OMEMO] create session with %s device %d", bob, bobDevice),
			fmt.Sprintf("[OMEMO] session with %s device %d exists", bob, bobDevice))
		text := "omemo from profanity " + randomHex(8)
		x.keys(t, text)
		// "~": Profanity's mark of an OMEMO message (plain ones have "-").
		x.waitScreen(t, "~ me: "+text)
		for {
			e := py.next(t, "message")
			if e.Plaintext == nil && e.Error == nil {
				t.Logf("python-omemo: an empty OMEMO message (key material only) from %s", e.From)
				continue
			}
			if e.Error != nil {
				t.Fatalf("python-omemo could not decrypt alice's message from %s (device %d): %s", e.From, e.SID, *e.Error)
			}
			if !strings.HasPrefix(e.From, alice+"/") || uint64(e.SID) != aliceDevice {
				t.Fatalf("message from %s device %d, want %s/… device %d", e.From, e.SID, alice, aliceDevice)
			}
			if *e.Plaintext != text {
				t.Fatalf("python-omemo decrypted %q, Profanity sent %q", *e.Plaintext, text)
			}
			if e.Body != nil && strings.Contains(*e.Body, text) {
				t.Fatalf("the text went in the clear too: <body>%s</body>", *e.Body)
			}
			t.Logf("python-omemo decrypted %q (the message's body: %v)", *e.Plaintext, bodyString(e.Body))
			return
		}
	})
	if !ok {
		return
	}

	// The Python side encrypts an answer to alice's device; Profanity
	// shows it decrypted.
	t.Run("python-to-profanity", func(t *testing.T) {
		text := "omemo from python " + randomHex(8)
		py.send(t, map[string]any{"cmd": "send", "to": alice, "text": text})
		sent := py.next(t, "sent")
		found := false
		for _, d := range sent.Devices {
			found = found || uint64(d) == aliceDevice
		}
		if !found {
			t.Fatalf("python-omemo encrypted for devices %v, not alice's %d", sent.Devices, aliceDevice)
		}
		x.waitScreen(t, "~ "+ready.JID+": "+text)
	})
	x.keys(t, "/quit")
	py.send(t, map[string]any{"cmd": "quit"})
}

func bodyString(b *string) string {
	if b == nil {
		return "none"
	}
	return strconv.Quote(*b)
}

// startProfanity runs Profanity in a tmux server of its own, logged in as
// jid over STARTTLS (trusting the server's self-signed certificate). On
// failure the test's log gets Profanity's own log (every stanza, with -l
// DEBUG) and its screen.
func startProfanity(t *testing.T, starttls, jid, password string) *tmux {
	t.Helper()
	home := t.TempDir()
	x := &tmux{socket: "starling-" + randomHex(6), log: filepath.Join(home, ".local/share/profanity/logs/profanity.log"), env: append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+home+"/.config", "XDG_DATA_HOME="+home+"/.local/share", "TERM=xterm")}
	x.run(t, "new-session", "-d", "-s", "p", "-x", "200", "-y", "50", "profanity -l DEBUG")
	t.Cleanup(func() {
		if t.Failed() {
			if screen, err := exec.Command("tmux", "-L", x.socket, "capture-pane", "-p", "-t", "p").CombinedOutput(); err == nil {
				t.Logf("Profanity's screen:\n%s", screen)
			}
			if log, err := os.ReadFile(x.log); err == nil {
				t.Logf("Profanity's log:\n%s", log)
			}
		}
		exec.Command("tmux", "-L", x.socket, "kill-server").Run()
	})
	x.waitScreen(t, "/connect")
	host, port, _ := strings.Cut(starttls, ":")
	x.keys(t, fmt.Sprintf("/connect %s server %s port %s tls trust", jid, host, port))
	x.waitScreen(t, "password")
	x.keys(t, password)
	x.waitScreen(t, "logged in successfully")
	return x
}

// waitLog polls Profanity's log (profanity -l DEBUG) until it has a line
// containing one of lines.
func (x *tmux) waitLog(t *testing.T, lines ...string) {
	t.Helper()
	deadline := time.Now().Add(screenTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		log, err := os.ReadFile(x.log)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, l := range lines {
			if bytes.Contains(log, []byte(l)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Profanity's log never said %q", lines)
		}
		<-tick.C
	}
}

// raw is a session of the raw-XML test client.
type raw struct {
	*xmpptest.Client
	n int
}

func rawLogin(t *testing.T, addr, domain, user, password string) *raw {
	return &raw{Client: xmpptest.Login(t, addr, domain, user, password, "SCRAM-SHA-256", "omemo-check")}
}

// rawIQ is an IQ's answer.
type rawIQ struct{ Type, Raw string }

func (r rawIQ) mustHave(t *testing.T, s string) {
	t.Helper()
	if r.Type != "result" || !strings.Contains(r.Raw, s) {
		t.Fatalf("want a result with %q, got %s", s, r.Raw)
	}
}

// iq sends an IQ and reads up to its answer, which must not be an error
// when it is a set.
func (c *raw) iq(t *testing.T, typ, to, payload string) rawIQ {
	t.Helper()
	c.n++
	id := fmt.Sprintf("omemo-check-%d", c.n)
	if to != "" {
		to = fmt.Sprintf(" to='%s'", to)
	}
	c.Send(fmt.Sprintf("<iq type='%s'%s id='%s'>%s</iq>", typ, to, id, payload))
	for {
		el := c.MustNext()
		if el.Name.Local != "iq" || el.AttrValue("id") != id {
			continue
		}
		r := rawIQ{Type: el.AttrValue("type"), Raw: string(el.Raw)}
		if typ == "set" && r.Type != "result" {
			t.Fatalf("%s answered %s", payload, r.Raw)
		}
		return r
	}
}

// waitFor reads elements until one satisfies match.
func (c *raw) waitFor(t *testing.T, what string, match func(raw string) bool) {
	t.Helper()
	for {
		el, err := c.Next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(string(el.Raw)) {
			return
		}
	}
}

// subscribeBoth makes a and b each other's contacts (subscription both),
// each approving the other's request once it has arrived. Both are
// available meanwhile, for subscription requests to reach them, and
// unavailable again at the end.
func subscribeBoth(t *testing.T, a, b *raw) {
	t.Helper()
	for _, c := range []*raw{a, b} {
		c.iq(t, "get", "", "<query xmlns='jabber:iq:roster'/>") // roster pushes from now on
		c.Send("<presence/>")
	}
	aJID, bJID := bare(a.JID), bare(b.JID)
	for _, p := range [][2]*raw{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		from.Send(fmt.Sprintf("<presence to='%s' type='subscribe'/>", bare(to.JID)))
		to.waitFor(t, "the subscription request", func(s string) bool {
			return strings.HasPrefix(s, "<presence") && hasAttr(s, "type", "subscribe")
		})
		to.Send(fmt.Sprintf("<presence to='%s' type='subscribed'/>", bare(from.JID)))
	}
	for _, p := range []struct {
		c     *raw
		other string
	}{{a, bJID}, {b, aJID}} {
		p.c.waitFor(t, "subscription both with "+p.other, func(s string) bool {
			return strings.Contains(s, "jabber:iq:roster") && hasAttr(s, "subscription", "both") && strings.Contains(s, p.other)
		})
	}
	a.Send("<presence type='unavailable'/>")
	b.Send("<presence type='unavailable'/>")
}

// hasAttr reports whether raw XML has the attribute name=value, in either
// quotes.
func hasAttr(raw, name, value string) bool {
	return strings.Contains(raw, name+`="`+value+`"`) || strings.Contains(raw, name+"='"+value+"'")
}

func bare(full string) string {
	b, _, _ := strings.Cut(full, "/")
	return b
}

// waitDevice polls jid's OMEMO device list until it lists device.
func waitDevice(t *testing.T, c *raw, jid string, device uint64) {
	t.Helper()
	deadline := time.Now().Add(omemoTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r := c.iq(t, "get", jid, fmt.Sprintf("<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s'/></pubsub>", deviceListNode))
		if r.Type == "result" && hasAttr(r.Raw, "id", strconv.FormatUint(device, 10)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's device list never listed device %d; last answer: %s", jid, device, r.Raw)
		}
		<-tick.C
	}
}

// omemoClient is testdata/omemo_client.py.
type omemoClient struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan omemoEvent
	stderr bytes.Buffer
	done   chan struct{}
}

// omemoEvent is a line of its output.
type omemoEvent struct {
	Event     string  `json:"event"`
	Error     *string `json:"error"`
	JID       string  `json:"jid"`
	DeviceID  uint64  `json:"device_id"`
	Devices   []int64 `json:"devices"`
	From      string  `json:"from"`
	Body      *string `json:"body"`
	SID       int64   `json:"sid"` // 0 for none
	Plaintext *string `json:"plaintext"`
	line      string
}

func startOMEMOClient(t *testing.T, setup testbin.Setup, jid, password string) *omemoClient {
	t.Helper()
	host, port, _ := strings.Cut(setup.StartTLS, ":")
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{filepath.Join("testdata", "omemo_client.py"), "--jid", jid, "--password", password,
		"--host", host, "--port", port, "--ca-file", filepath.Join(setup.DataDir, "certs", "localhost.crt"),
		"--timeout", "300"}
	c := &omemoClient{cmd: exec.CommandContext(ctx, python, args...), events: make(chan omemoEvent, 1000), done: make(chan struct{})}
	c.cmd.WaitDelay = 5 * time.Second
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", args[0], err)
	}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			var e omemoEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				msg := "not a JSON event: " + sc.Text()
				e = omemoEvent{Event: "fatal", Error: &msg}
			}
			e.line = sc.Text()
			c.events <- e
		}
	}()
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		if !t.Failed() { // it was told to quit
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
			}
		}
		cancel()
		<-c.done
		if t.Failed() {
			t.Logf("omemo_client.py (%s) stderr:\n%s", jid, c.stderr.Bytes())
		}
	})
	return c
}

// next waits for the next event of the kind given; a fatal event, or the
// end of the output, fails the test.
func (c *omemoClient) next(t *testing.T, kind string) omemoEvent {
	t.Helper()
	timer := time.NewTimer(omemoTimeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				<-c.done
				t.Fatalf("omemo_client.py ended (%v) while the test waited for %q", c.cmd.ProcessState, kind)
			}
			if e.Event == "fatal" {
				t.Fatalf("omemo_client.py: %s", e.line)
			}
			if e.Event == kind {
				return e
			}
			t.Logf("omemo_client.py: %s", e.line)
		case <-timer.C:
			t.Fatalf("omemo_client.py said no %q within %v", kind, omemoTimeout)
		}
	}
}

// send writes a command line.
func (c *omemoClient) send(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("omemo_client.py: %v", err)
	}
}
