package config

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadResolvesPaths: relative paths in a file are relative to the
// file's directory, whatever the working directory (issue 17 part 1);
// absolute ones and those of Parse are kept as written.
func TestLoadResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "certs"), 0o700)
	_, key := writeKeyPair(t, filepath.Join(dir, "certs"), "example.org") // key: absolute
	writeKeyPair(t, dir, "other.example")
	os.WriteFile(filepath.Join(dir, "..", "ca.pem"), nil, 0o600)
	file := filepath.Join(dir, "starling.toml")
	data := fmt.Sprintf(`[server]
hosts = ["example.org", "other.example"]
data_dir = "state"
[tls]
cert = "certs/example.org.crt"
key = %q
[s2s]
ca_file = "../ca.pem"
[storage]
dsn = "db/starling.db"
[hosts."other.example".tls]
cert = "other.example.crt"
key = "./other.example.key"
`, key)
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// A relative name for the file, from another working directory.
	t.Chdir(filepath.Dir(dir))
	cfg, err := Load(filepath.Join(filepath.Base(dir), "starling.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, got, want string }{
		{"server.data_dir", cfg.Server.DataDir, filepath.Join(dir, "state")},
		{"tls.cert", cfg.TLS.Cert, filepath.Join(dir, "certs", "example.org.crt")},
		{"tls.key", cfg.TLS.Key, key},
		{"s2s.ca_file", cfg.S2S.CAFile, filepath.Join(filepath.Dir(dir), "ca.pem")},
		{"storage.dsn", cfg.Storage.DSN, filepath.Join(dir, "db", "starling.db")},
		{"hosts.other.example.tls.cert", cfg.Hosts["other.example"].TLS.Cert, filepath.Join(dir, "other.example.crt")},
		{"hosts.other.example.tls.key", cfg.Hosts["other.example"].TLS.Key, filepath.Join(dir, "other.example.key")},
		{"http.web_client_dir (default)", cfg.HTTP.WebClientDir, filepath.Join(dir, DefaultWebClientDir)},
		{"Dir", cfg.Dir, dir},
		{"Path(upload)", cfg.Path("upload"), filepath.Join(dir, "upload")},
		{`Path("")`, cfg.Path(""), ""},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.key, c.got, c.want)
		}
	}

	// A file without data_dir keeps its data beside it.
	os.WriteFile(file, []byte("[server]\nhosts = [\"example.org\"]\n"), 0o600)
	if cfg, err := Load(file); err != nil || cfg.Server.DataDir != filepath.Join(dir, "data") {
		t.Errorf("default data_dir from a file: %+v, %v; want %s", cfg, err, filepath.Join(dir, "data"))
	}

	// Parse (like the embedded defaults) keeps paths relative to the
	// working directory; a postgres DSN is no path.
	cfg, err = Parse([]byte("[server]\ndata_dir = \"state\"\n[storage]\ndriver = \"postgres\"\ndsn = \"host=db user=starling\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.DataDir != "state" || cfg.Path("x") != "x" {
		t.Errorf("Parse: data_dir %q, Path(x) %q; want both relative", cfg.Server.DataDir, cfg.Path("x"))
	}
	cfg.TLS.ACMECAFile = "ca/pebble.pem"
	cfg.ResolvePaths(dir)
	if cfg.Storage.DSN != "host=db user=starling" {
		t.Errorf("a postgres DSN was resolved as a path: %q", cfg.Storage.DSN)
	}
	if want := filepath.Join(dir, "ca", "pebble.pem"); cfg.TLS.ACMECAFile != want {
		t.Errorf("tls.acme_ca_file = %q, want %q", cfg.TLS.ACMECAFile, want)
	}
}
