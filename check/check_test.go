package check

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testca"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// parse returns the configuration of text, with relative paths from dir.
func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "starling.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Report{}
	cfg := LoadConfig(path, r)
	if cfg == nil {
		t.Fatalf("configuration refused: %+v", r.Results)
	}
	return cfg
}

// has reports whether r has a result of area and level whose text
// contains every one of subs.
func has(r *Report, area string, level Level, subs ...string) bool {
	for _, res := range r.Results {
		if res.Area != area || res.Level != level {
			continue
		}
		all := true
		for _, s := range subs {
			all = all && strings.Contains(res.Text, s)
		}
		if all {
			return true
		}
	}
	return false
}

func want(t *testing.T, r *Report, area string, level Level, subs ...string) {
	t.Helper()
	if !has(r, area, level, subs...) {
		var b bytes.Buffer
		r.Write(&b)
		t.Errorf("no %s %s with %q in:\n%s", area, level, subs, b.String())
	}
}

func none(t *testing.T, r *Report, level Level) {
	t.Helper()
	for _, res := range r.Results {
		if res.Level == level {
			var b bytes.Buffer
			r.Write(&b)
			t.Errorf("unexpected %s: %s\nin:\n%s", level, res.Text, b.String())
			return
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[c2s]\nlisten = [\"nope\"]\nstream_managment = true\n[modules.muc]\nsubdomian = \"x\"\n"), 0o600)
	r := &Report{}
	if cfg := LoadConfig(bad, r); cfg != nil {
		t.Fatal("a bad configuration was accepted")
	}
	want(t, r, AreaConfig, Problem, "c2s.stream_managment")
	want(t, r, AreaConfig, Problem, "c2s.listen")
	for _, res := range r.Results {
		if res.Level == Problem && !strings.Contains(res.Fix, bad) {
			t.Errorf("fix %q does not name the file", res.Fix)
		}
	}
	// The modules' tables, once the rest is right (as check-config).
	os.WriteFile(bad, []byte("[modules.muc]\nsubdomian = \"x\"\n"), 0o600)
	r = &Report{}
	LoadConfig(bad, r)
	want(t, r, AreaConfig, Problem, "modules.muc.subdomian")

	r = &Report{}
	cfg := LoadConfig("", r)
	if cfg == nil || r.Failed(true) {
		t.Errorf("the defaults: %+v", r.Results)
	}
	os.WriteFile(bad, []byte("[registration]\nenabled = true\n[c2s]\nrequire_tls = false\n"), 0o600)
	r = &Report{}
	if LoadConfig(bad, r) == nil {
		t.Fatal("refused")
	}
	want(t, r, AreaConfig, Warning, "registration is open on localhost")
	want(t, r, AreaConfig, Warning, "require_tls is off")
	if r.Failed(false) || !r.Failed(true) {
		t.Error("warnings: Failed(false) must be false, Failed(true) true")
	}
}

// certConfig is a configuration of host a.test with the certificate
// files certFile, keyFile, not validated: Validate refuses missing files
// and keys of other certificates, which the check must explain too when
// they change after the server loaded them.
func certConfig(t *testing.T, certFile, keyFile string) *config.Config {
	cfg := config.Default()
	cfg.Server.Hosts = []string{"a.test"}
	cfg.Server.DataDir = t.TempDir()
	cfg.TLS.Cert, cfg.TLS.Key = certFile, keyFile
	return cfg
}

func TestCertificates(t *testing.T) {
	ca, err := testca.New("Check CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	services := []string{"conference.a.test"}
	run := func(cfg *config.Config, roots *x509.CertPool, now time.Time) *Report {
		r := &Report{}
		Certificates(Options{Config: cfg, Roots: roots, Now: now}, services, r)
		return r
	}

	good, goodKey, _ := ca.WriteFiles(dir, "good", "a.test", "conference.a.test")
	r := run(certConfig(t, good, goodKey), ca.Pool(), time.Time{})
	none(t, r, Warning)
	none(t, r, Problem)
	want(t, r, AreaCerts, OK, "a.test: the certificate names conference.a.test")
	want(t, r, AreaCerts, OK, "chain leads to a trusted CA")

	// A wildcard covers the services.
	wild, wildKey, _ := ca.WriteFiles(dir, "wild", "a.test", "*.a.test")
	r = run(certConfig(t, wild, wildKey), ca.Pool(), time.Time{})
	none(t, r, Problem)
	want(t, r, AreaCerts, OK, "names conference.a.test")

	// Expiry: soon, past.
	r = run(certConfig(t, good, goodKey), ca.Pool(), time.Now().Add(360*24*time.Hour))
	want(t, r, AreaCerts, Warning, "expires in")
	r = run(certConfig(t, good, goodKey), ca.Pool(), time.Now().Add(400*24*time.Hour))
	want(t, r, AreaCerts, Problem, "expired on")

	// Names: the host missing is a problem, a service a warning.
	other, otherKey, _ := ca.WriteFiles(dir, "other", "b.test")
	r = run(certConfig(t, other, otherKey), ca.Pool(), time.Time{})
	want(t, r, AreaCerts, Problem, "does not name a.test", "b.test")
	hostOnly, hostOnlyKey, _ := ca.WriteFiles(dir, "hostonly", "a.test")
	r = run(certConfig(t, hostOnly, hostOnlyKey), ca.Pool(), time.Time{})
	want(t, r, AreaCerts, Warning, "does not name conference.a.test")
	none(t, r, Problem)

	// Files: missing, not PEM, a key of another certificate, readable key.
	r = run(certConfig(t, filepath.Join(dir, "nope.crt"), goodKey), ca.Pool(), time.Time{})
	want(t, r, AreaCerts, Problem, "nope.crt does not exist")
	junk := filepath.Join(dir, "junk.crt")
	os.WriteFile(junk, []byte("hello"), 0o644)
	r = run(certConfig(t, junk, goodKey), ca.Pool(), time.Time{})
	want(t, r, AreaCerts, Problem, "no PEM certificate")
	r = run(certConfig(t, good, otherKey), ca.Pool(), time.Time{})
	want(t, r, AreaCerts, Problem, "does not go with")
	os.Chmod(wildKey, 0o644)
	r = run(certConfig(t, wild, wildKey), ca.Pool(), time.Time{})
	want(t, r, AreaCerts, Warning, "can be read by other users")

	// Chains: a CA this machine does not trust, the leaf alone, self-signed.
	r = run(certConfig(t, good, goodKey), x509.NewCertPool(), time.Time{})
	want(t, r, AreaCerts, Warning, "does not lead to a CA this machine trusts", "Check CA")
	leafOnly := filepath.Join(dir, "leaf.crt")
	data, _ := os.ReadFile(good)
	b, _ := pem.Decode(data)
	os.WriteFile(leafOnly, pem.EncodeToMemory(b), 0o644)
	r = run(certConfig(t, leafOnly, goodKey), x509.NewCertPool(), time.Time{})
	want(t, r, AreaCerts, Warning, "holds the server's certificate alone")
	self, selfKey := selfSigned(t, dir, "a.test", "*.a.test")
	r = run(certConfig(t, self, selfKey), nil, time.Time{})
	want(t, r, AreaCerts, Warning, "self-signed", "dialback")
	none(t, r, Problem)

	// Generated and ACME certificates.
	cfg := parse(t, "[server]\nhosts = [\"a.test\"]\n")
	r = run(cfg, nil, time.Time{})
	want(t, r, AreaCerts, Warning, "a.test: self-signed certificate (generated")
	cfg = parse(t, "[server]\nhosts = [\"a.test\"]\n[tls]\nacme = true\n")
	r = run(cfg, nil, time.Time{})
	want(t, r, AreaCerts, Warning, "from the ACME CA", "none issued yet", "conference.a.test")
}

// selfSigned writes a self-signed certificate and key for names.
func selfSigned(t *testing.T, dir string, names ...string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c, k := filepath.Join(dir, "self.crt"), filepath.Join(dir, "self.key")
	os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return c, k
}

func TestDNS(t *testing.T) {
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	lo := netip.MustParseAddr("127.0.0.1")
	far := netip.MustParseAddr("203.0.113.9")
	// a.test: every record right, on this machine.
	dns.SetSRV("_xmpp-client._tcp.a.test", dnstest.SRV{Target: "xmpp.a.test", Port: 5222})
	dns.SetSRV("_xmpps-client._tcp.a.test", dnstest.SRV{Target: "xmpp.a.test", Port: 5223})
	dns.SetSRV("_xmpp-server._tcp.a.test", dnstest.SRV{Target: "xmpp.a.test", Port: 5269})
	dns.SetA("a.test", lo)
	dns.SetA("xmpp.a.test", lo)
	dns.SetA("conference.a.test", lo)
	// b.test: the server record on the wrong port, a target without
	// address, no client record, an address elsewhere, no record for
	// its rooms.
	dns.SetSRV("_xmpp-server._tcp.b.test", dnstest.SRV{Target: "gone.b.test", Port: 5270})
	dns.SetA("gone.b.test")
	dns.SetA("b.test", far)
	// c.test: nothing at all.

	cfg := parse(t, "[server]\nhosts = [\"a.test\", \"b.test\", \"c.test\", \"localhost\"]\n[s2s]\nresolver = \""+dns.Addr()+"\"\n")
	services := []string{"conference.a.test", "conference.b.test"}
	r := &Report{}
	local := func() ([]netip.Addr, error) { return []netip.Addr{lo, netip.MustParseAddr("192.168.1.4")}, nil }
	DNS(context.Background(), Options{Config: cfg, LocalAddrs: local, Timeout: 2 * time.Second}, services, r)

	want(t, r, AreaDNS, OK, "_xmpp-client._tcp.a.test points at xmpp.a.test:5222, a port of c2s.listen")
	want(t, r, AreaDNS, OK, "_xmpps-client._tcp.a.test points at xmpp.a.test:5223")
	want(t, r, AreaDNS, OK, "no _xmpps-server._tcp.a.test record, and s2s.direct_tls_listen is empty")
	want(t, r, AreaDNS, OK, "xmpp.a.test: 127.0.0.1 is this machine's")
	want(t, r, AreaDNS, OK, "conference.a.test: other servers find it")

	want(t, r, AreaDNS, Problem, "_xmpp-server._tcp.b.test points at gone.b.test:5270, but s2s.listen listens on 5269")
	want(t, r, AreaDNS, Problem, "the SRV target gone.b.test has no A/AAAA record")
	want(t, r, AreaDNS, Warning, "no _xmpp-client._tcp.b.test record", "fall back to b.test:5222")
	want(t, r, AreaDNS, Warning, "203.0.113.9 is not an address of this machine", "behind NAT")
	want(t, r, AreaDNS, Problem, "conference.b.test: other servers cannot find this service")

	want(t, r, AreaDNS, Problem, "c.test: no A/AAAA record")
	want(t, r, AreaDNS, OK, "localhost: a local name")

	// A machine with a public address says the address is elsewhere.
	r = &Report{}
	public := func() ([]netip.Addr, error) { return []netip.Addr{lo, netip.MustParseAddr("198.51.100.7")}, nil }
	DNS(context.Background(), Options{Config: cfg, LocalAddrs: public, Timeout: 2 * time.Second}, nil, r)
	want(t, r, AreaDNS, Warning, "b.test: 203.0.113.9 is not one of this machine's addresses (127.0.0.1, 198.51.100.7)")

	// Clients on another port than the fallback's, federation off.
	cfg = parse(t, "[server]\nhosts = [\"c.test\"]\n[c2s]\nlisten = [\"0.0.0.0:5999\"]\ndirect_tls_listen = []\n[s2s]\nenabled = false\nresolver = \""+dns.Addr()+"\"\n")
	r = &Report{}
	DNS(context.Background(), Options{Config: cfg, LocalAddrs: local, Timeout: 2 * time.Second}, nil, r)
	want(t, r, AreaDNS, Problem, "no _xmpp-client._tcp.c.test record", "fall back to port 5222, but c2s.listen listens on 5999")
	want(t, r, AreaDNS, OK, "no _xmpps-client._tcp.c.test record, and c2s.direct_tls_listen is empty")
	want(t, r, AreaDNS, OK, "federation is off")
}

func TestPorts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	freeAddr := free.Addr().String()
	free.Close()
	cfg := parse(t, "[c2s]\nlisten = [\""+busy.Addr().String()+"\"]\ndirect_tls_listen = [\""+freeAddr+"\"]\n[s2s]\nenabled = false\n[http]\nlisten = [\"192.0.2.1:5280\"]\n")
	cfg.Metrics.Listen = "192.0.2.1:9090"

	r := &Report{}
	Ports(context.Background(), Options{Config: cfg, Running: func(context.Context) bool { return false }}, r)
	want(t, r, AreaPorts, Problem, "c2s.listen "+busy.Addr().String()+" is in use by another program")
	want(t, r, AreaPorts, OK, "c2s.direct_tls_listen "+freeAddr+" can be bound")
	want(t, r, AreaPorts, Problem, "http.listen 192.0.2.1:5280: this machine has no such address")
	want(t, r, AreaPorts, Problem, "metrics.listen 192.0.2.1:9090: this machine has no such address")
	want(t, r, AreaPorts, Warning, "metrics.listen 192.0.2.1:9090 is not a loopback address")

	// The running server's: in use by it, and it accepts connections.
	r = &Report{}
	Ports(context.Background(), Options{Config: cfg, Running: func(context.Context) bool { return true }}, r)
	want(t, r, AreaPorts, OK, "c2s.listen "+busy.Addr().String()+" is in use by the running server")
	want(t, r, AreaPorts, OK, "accepts connections (tried "+busy.Addr().String()+")")
	want(t, r, AreaPorts, Warning, "c2s.direct_tls_listen "+freeAddr+" is free: the running server does not listen there")
}

func TestDatabase(t *testing.T) {
	cfg := parse(t, "")
	r := &Report{}
	Database(context.Background(), Options{Config: cfg}, r)
	want(t, r, AreaDatabase, OK, "no database at", "yet")
	want(t, r, AreaDatabase, OK, "data_dir", "does not exist yet")
	if _, err := os.Stat(cfg.Server.DataDir); err == nil {
		t.Error("the check created the data directory")
	}

	path := filepath.Join(cfg.Server.DataDir, "starling.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	r = &Report{}
	Database(context.Background(), Options{Config: cfg}, r)
	want(t, r, AreaDatabase, OK, "every migration applied")
	want(t, r, AreaDatabase, OK, "data_dir "+cfg.Server.DataDir+" can be written")

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM schema_versions WHERE aggregate = 'roster'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r = &Report{}
	Database(context.Background(), Options{Config: cfg}, r)
	want(t, r, AreaDatabase, Warning, "lacks 1 migration(s): roster/0001_")

	os.WriteFile(path, []byte("this is not a database, but it is long enough to be taken for one..............................................................................................."), 0o600)
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	r = &Report{}
	Database(context.Background(), Options{Config: cfg}, r)
	want(t, r, AreaDatabase, Problem, "")

	// A data_dir that is a file.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	r = &Report{}
	dataDir(file, r)
	want(t, r, AreaDatabase, Problem, "is not a directory")

	cfg = parse(t, "[storage]\ndriver = \"postgres\"\ndsn = \"postgres://nobody@127.0.0.1:1/none?connect_timeout=2\"\n")
	r = &Report{}
	Database(context.Background(), Options{Config: cfg}, r)
	want(t, r, AreaDatabase, Problem, "PostgreSQL cannot be reached")
}

func TestWebClient(t *testing.T) {
	dir := t.TempDir()
	// Validate refuses both; the check must say it too should the files
	// go away under a running server.
	cfg := config.Default()
	cfg.HTTP.WebClient, cfg.HTTP.WebClientDir = true, dir
	r := &Report{}
	WebClient(Options{Config: cfg}, r)
	want(t, r, AreaWebClient, Problem, "dist/converse.min.js is missing")
	want(t, r, AreaWebClient, Problem, "no web listener")
	for _, f := range config.WebClientFiles {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	cfg = parse(t, "[http]\nlisten = [\"127.0.0.1:0\"]\nweb_client = true\nweb_client_dir = \""+dir+"\"\n")
	r = &Report{}
	WebClient(Options{Config: cfg}, r)
	none(t, r, Problem)
	want(t, r, AreaWebClient, OK, "the files are in")
}

func TestWrite(t *testing.T) {
	r := &Report{}
	r.ok(AreaConfig, "fine")
	r.add(AreaCerts, Warning, "do this", "meh")
	r.add(AreaCerts, Problem, "do that", "broken")
	var b bytes.Buffer
	r.Write(&b)
	wantText := "configuration\n  ok       fine\n\ncertificates\n  warning  meh\n           fix: do this\n  problem  broken\n           fix: do that\n\n1 ok, 1 warning, 1 problem\n"
	if b.String() != wantText {
		t.Errorf("Write:\n%s\nwant:\n%s", b.String(), wantText)
	}
	if !r.Failed(false) {
		t.Error("a problem must fail")
	}
}
