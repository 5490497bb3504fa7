package main_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testca"
)

// port is the port of a host:port address.
func port(t *testing.T, addr string) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// section returns the lines of one area of check's output.
func section(out, area string) string {
	_, rest, ok := strings.Cut("\n"+out, "\n"+area+"\n")
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "\n\n")
	return s
}

// checkConfig writes a configuration for host with a certificate of the
// test CA naming names, and the DNS records of a correct setup on
// loopback, and returns its path.
func checkConfig(t *testing.T, dns *dnstest.Server, ca *testca.CA, host string, names []string, c2s, direct, s2s string, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := ca.WriteFiles(dir, host, names...)
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	target := "xmpp." + host
	dns.SetA(host, lo)
	dns.SetA(target, lo)
	dns.SetA("conference."+host, lo)
	dns.SetSRV("_xmpp-client._tcp."+host, dnstest.SRV{Target: target, Port: port(t, c2s)})
	dns.SetSRV("_xmpps-client._tcp."+host, dnstest.SRV{Target: target, Port: port(t, direct)})
	dns.SetSRV("_xmpp-server._tcp."+host, dnstest.SRV{Target: target, Port: port(t, s2s)})
	path := filepath.Join(dir, "starling.toml")
	text := fmt.Sprintf(`[server]
hosts = [%q]
data_dir = "data"
[c2s]
listen = [%q]
direct_tls_listen = [%q]
[s2s]
listen = [%q]
resolver = %q
[tls]
cert = %q
key = %q
%s`, host, c2s, direct, s2s, dns.Addr(), cert, key, extra)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheck: `starling check` on a clean configuration exits 0, even
// with --strict; on one with a problem of each kind, it names each in its
// area, with how to fix it, and exits 1 (issue 17 part 2).
func TestCheck(t *testing.T) {
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	ca, err := testca.New("Starling check CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}

	t.Run("clean", func(t *testing.T) {
		cfg := checkConfig(t, dns, ca, "clean.test", []string{"clean.test", "*.clean.test"},
			testbin.FreeAddr(t), testbin.FreeAddr(t), testbin.FreeAddr(t), "")
		out, stderr, code := run(t, t.TempDir(), "", "check", "--config", cfg, "--strict", "--ca", caFile)
		if code != 0 || strings.Contains(out, "problem ") || strings.Contains(out, "warning ") {
			t.Fatalf("exit %d:\n%s%s", code, out, stderr)
		}
		for _, area := range []string{"configuration", "certificates", "dns", "ports", "database", "web client"} {
			if !strings.Contains(section(out, area), "ok ") {
				t.Errorf("no ok line under %s:\n%s", area, out)
			}
		}
		if !strings.HasSuffix(out, ", 0 warnings, 0 problems\n") {
			t.Errorf("summary line:\n%s", out)
		}
		// Without the test CA, the chain is a warning: exit 0, but 1
		// with --strict.
		if out, _, code := run(t, t.TempDir(), "", "check", "--config", cfg); code != 0 || !strings.Contains(section(out, "certificates"), "warning  clean.test: the chain does not lead to a CA") {
			t.Errorf("without --ca: exit %d:\n%s", code, out)
		}
		if _, stderr, code := run(t, t.TempDir(), "", "check", "--config", cfg, "--strict"); code != 1 || !strings.Contains(stderr, "--strict") {
			t.Errorf("without --ca, --strict: exit %d, %s", code, stderr)
		}
	})

	t.Run("problems", func(t *testing.T) {
		// A port another program holds.
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		// The certificate does not name the host; the server SRV record
		// points at the wrong port; the database is damaged.
		s2s := testbin.FreeAddr(t)
		cfg := checkConfig(t, dns, ca, "broken.test", []string{"other.test"},
			busy.Addr().String(), testbin.FreeAddr(t), s2s, "")
		dns.SetSRV("_xmpp-server._tcp.broken.test", dnstest.SRV{Target: "xmpp.broken.test", Port: port(t, s2s) + 1})
		data := filepath.Join(filepath.Dir(cfg), "data")
		os.MkdirAll(data, 0o700)
		if err := os.WriteFile(filepath.Join(data, "starling.db"), []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := run(t, t.TempDir(), "", "check", "--config", cfg, "--ca", caFile)
		if code != 1 || !strings.Contains(stderr, "check failed") {
			t.Errorf("exit %d, stderr %q; want 1", code, stderr)
		}
		for _, c := range []struct{ area, want string }{
			{"certificates", "problem  broken.test: the certificate does not name broken.test (it names other.test)"},
			{"dns", "problem  broken.test: _xmpp-server._tcp.broken.test points at xmpp.broken.test:"},
			{"ports", "problem  c2s.listen " + busy.Addr().String() + " is in use by another program"},
			{"database", "problem  sqlite:"},
		} {
			sec := section(out, c.area)
			if !strings.Contains(sec, c.want) {
				t.Errorf("%s: no %q in:\n%s", c.area, c.want, sec)
			}
			if !strings.Contains(sec, "fix: ") {
				t.Errorf("%s: no fix:\n%s", c.area, sec)
			}
		}
		if !strings.Contains(out, "4 problems\n") {
			t.Errorf("want 4 problems:\n%s", out)
		}
	})

	t.Run("configuration", func(t *testing.T) {
		// A misspelt key, and the web client on without its files: the
		// configuration is refused, so nothing else is checked.
		dir := t.TempDir()
		cfg := filepath.Join(dir, "starling.toml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("[c2s]\nlisten = [%q]\nstream_managment = true\n[s2s]\nenabled = false\n[http]\nlisten = [%q]\nweb_client = true\nweb_client_dir = %q\n",
			testbin.FreeAddr(t), testbin.FreeAddr(t), dir)), 0o600)
		out, _, code := run(t, dir, "", "check", "--config", cfg)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if sec := section(out, "configuration"); !strings.Contains(sec, "problem  c2s.stream_managment") || !strings.Contains(sec, "fix: edit c2s.stream_managment in "+cfg) {
			t.Errorf("configuration:\n%s", out)
		}
		if sec := section(out, "web client"); !strings.Contains(sec, "problem  http.web_client_dir") || !strings.Contains(sec, "make webclient") {
			t.Errorf("web client:\n%s", out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("check left %v in the working directory", entries)
		}
	})
}

// TestCheckRunning: while the server runs, its ports are its own (told
// by the admin socket) and accept connections, and its database has
// every migration.
func TestCheckRunning(t *testing.T) {
	setup := testbin.NewSetup(t, "")
	testbin.Start(t, testbin.Build(t), setup.Config)
	out, stderr, code := run(t, t.TempDir(), "", "check", "--config", setup.Config, "--no-dns")
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, out, stderr)
	}
	ports := section(out, "ports")
	for _, want := range []string{
		"ok       a Starling runs on this data directory",
		"ok       c2s.listen " + setup.StartTLS + " is in use by the running server",
		"ok       c2s.listen " + setup.StartTLS + " accepts connections",
		"ok       c2s.direct_tls_listen " + setup.DirectTLS + " accepts connections",
	} {
		if !strings.Contains(ports, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(section(out, "database"), "every migration applied") {
		t.Errorf("database:\n%s", out)
	}
	if !strings.Contains(section(out, "certificates"), "warning  localhost: self-signed certificate") {
		t.Errorf("certificates:\n%s", out)
	}
}
