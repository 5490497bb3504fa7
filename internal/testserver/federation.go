package testserver

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testca"
)

// Federation is what in-process servers need to federate on loopback and
// nowhere else: a DNS server of the test's own, which they ask instead of
// the machine's ([s2s] resolver), and a certificate authority whose
// certificates they present and, if told to, trust.
type Federation struct {
	CA     *testca.CA
	CAFile string // the CA's certificate, PEM
	DNS    *dnstest.Server
	dir    string
}

// NewFederation starts the DNS server (stopped when the test ends) and
// makes the CA.
func NewFederation(t testing.TB) *Federation {
	t.Helper()
	ca, err := testca.New("Starling test CA")
	if err != nil {
		t.Fatal(err)
	}
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	f := &Federation{CA: ca, DNS: dns, dir: t.TempDir()}
	f.CAFile = filepath.Join(f.dir, "ca.crt")
	if err := ca.WriteCA(f.CAFile); err != nil {
		t.Fatal(err)
	}
	return f
}

// Register points domain's _xmpp-server SRV record at 127.0.0.1:port,
// through the target xmpp.<domain>.
func (f *Federation) Register(domain string, port int) {
	host := "xmpp." + domain
	f.DNS.SetSRV("_xmpp-server._tcp."+domain, dnstest.SRV{Target: host, Port: uint16(port)})
	f.DNS.SetA(host, netip.MustParseAddr("127.0.0.1"))
}

// Configure makes c serve domain with a certificate from the CA, federate
// through the DNS server, listen for other servers on a free port that
// Register publishes, and trust the CA if trust (else peers can only use
// dialback). It returns the port.
func (f *Federation) Configure(t testing.TB, c *config.Config, domain string, trust bool) int {
	t.Helper()
	cert, key, err := f.CA.WriteFiles(f.dir, domain, domain)
	if err != nil {
		t.Fatal(err)
	}
	port := testbin.FreePort(t)
	f.Register(domain, port)
	c.Server.Hosts = []string{domain}
	c.TLS = config.TLS{Cert: cert, Key: key}
	c.S2S.Enabled = true
	c.S2S.Listen = []string{fmt.Sprintf("127.0.0.1:%d", port)}
	c.S2S.Resolver = f.DNS.Addr()
	if trust {
		c.S2S.CAFile = f.CAFile
	}
	return port
}
