// Package xmppjs checks Starling with xmpp.js (@xmpp/client from npm, in
// Node), a client stack nobody here wrote: it logs in to the built binary
// over STARTTLS and direct TLS (XEP-0368) with SCRAM-SHA-1 and PLAIN (the
// mechanisms xmpp.js has), and a message is checked on arrival both ways.
// `make check` installs the npm package into testdata/node_modules.
package xmppjs

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// clientTimeout bounds one run of the Node client.
const clientTimeout = 30 * time.Second

type event struct {
	Event     string `json:"event"`
	JID       string `json:"jid"`
	Mechanism string `json:"mechanism"`
	From      string `json:"from"`
	To        string `json:"to"`
	Type      string `json:"type"`
	Body      string `json:"body"`
	Error     string `json:"error"`
}

// node runs testdata/client.mjs and streams its events.
type node struct {
	events chan event
	done   chan error
}

func startNode(t *testing.T, certFile string, args ...string) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "node", append([]string{"client.mjs"}, args...)...)
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+certFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{events: make(chan event, 16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{Event: "garbage", Error: sc.Text()}
			}
			n.events <- e
		}
		close(n.events)
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%v; stderr: %s", err, stderr.String())
		}
		n.done <- err
	}()
	return n
}

// next returns the next event, failing the test if the client ended.
func (n *node) next(t *testing.T) event {
	t.Helper()
	e, ok := <-n.events
	if !ok {
		t.Fatalf("xmpp.js ended: %v", <-n.done)
	}
	if e.Event == "error" || e.Event == "garbage" {
		t.Fatalf("xmpp.js: %+v", e)
	}
	return e
}

// wait checks that the client closed its stream and exited cleanly.
func (n *node) wait(t *testing.T) {
	t.Helper()
	for e := range n.events {
		if e.Event == "error" || e.Event == "garbage" {
			t.Errorf("xmpp.js: %+v", e)
		}
	}
	if err := <-n.done; err != nil {
		t.Errorf("xmpp.js exited: %v", err)
	}
}

func TestXMPPJS(t *testing.T) {
	_, err := os.Stat("testdata/node_modules/@xmpp/client/package.json")
	_, nodeErr := exec.LookPath("node")
	testbin.Require(t, "node and testdata/node_modules/@xmpp/client (npm ci --prefix conformance/xmppjs/testdata)", err == nil && nodeErr == nil)

	setup := testbin.NewSetup(t, "[log]\nlevel = \"debug\"\n")
	cfg, dir, starttls, direct := setup.Config, setup.DataDir, setup.StartTLS, setup.DirectTLS
	bin := testbin.Build(t)
	testbin.AddUser(t, bin, cfg, "alice@localhost", "alice-secret")
	testbin.AddUser(t, bin, cfg, "bob@localhost", "bob-secret")
	testbin.Start(t, bin, cfg)
	cert := filepath.Join(dir, "certs", "localhost.crt")
	bob := xmpptest.Login(t, starttls, "localhost", "bob", "bob-secret", "SCRAM-SHA-256", "go")

	for _, transport := range []struct{ name, service string }{
		{"starttls", "xmpp://" + starttls},
		// xmpp.js checks the certificate against the host of the URL.
		{"directtls", "xmpps://localhost:" + direct[strings.LastIndexByte(direct, ':')+1:]},
	} {
		for _, mech := range []string{"SCRAM-SHA-1", "PLAIN"} {
			t.Run(transport.name+"/"+mech, func(t *testing.T) {
				res := "js-" + transport.name + "-" + mech
				alice := "alice@localhost/" + res
				common := []string{"--service", transport.service, "--domain", "localhost", "--username", "alice", "--password", "alice-secret", "--resource", res, "--mechanism", mech}

				// xmpp.js sends; the message arrives at bob, stamped.
				body := fmt.Sprintf("from xmpp.js over %s with %s <&> ☃", transport.name, mech)
				n := startNode(t, cert, append(common, "--send-to", bob.JID, "--body", body)...)
				if e := n.next(t); e.Event != "online" || e.JID != alice || e.Mechanism != mech {
					t.Fatalf("xmpp.js login: %+v", e)
				}
				n.wait(t)
				el := bob.MustNext()
				var msg struct {
					From string `xml:"from,attr"`
					Type string `xml:"type,attr"`
					Body string `xml:"body"`
				}
				if err := xml.Unmarshal(el.Raw, &msg); err != nil || msg.From != alice || msg.Type != "chat" || msg.Body != body {
					t.Fatalf("bob received %s (%v)", el.Raw, err)
				}

				// xmpp.js receives what bob sends.
				n = startNode(t, cert, append(common, "--expect-from", bob.JID)...)
				if e := n.next(t); e.Event != "online" || e.JID != alice {
					t.Fatalf("xmpp.js login: %+v", e)
				}
				reply := "to xmpp.js " + transport.name + " " + mech
				bob.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", alice, reply))
				if e := n.next(t); e.Event != "message" || e.From != bob.JID || e.To != alice || e.Type != "chat" || e.Body != reply {
					t.Fatalf("xmpp.js received %+v", e)
				}
				n.wait(t)
			})
		}
	}
}
