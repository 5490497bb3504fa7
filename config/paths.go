package config

import "path/filepath"

// ResolvePaths makes every relative file or directory path of c absolute
// by joining it to dir, and records dir as c.Dir: server.data_dir,
// tls.cert and tls.key (also per host), tls.acme_ca_file, s2s.ca_file,
// http.web_client_dir and a SQLite storage.dsn. The defaults of keys the
// file leaves out are resolved too, so a file without data_dir keeps its
// data in "data" beside it. Load calls it with the file's directory, so
// that `starling user …` run from any directory finds the server's data;
// the embedded defaults (Default, Parse) stay relative to the working
// directory. Modules resolve their own paths with Path.
func (c *Config) ResolvePaths(dir string) {
	c.Dir = dir
	c.Server.DataDir = c.Path(c.Server.DataDir)
	c.TLS.Cert = c.Path(c.TLS.Cert)
	c.TLS.Key = c.Path(c.TLS.Key)
	c.TLS.ACMECAFile = c.Path(c.TLS.ACMECAFile)
	for name, h := range c.Hosts {
		h.TLS.Cert = c.Path(h.TLS.Cert)
		h.TLS.Key = c.Path(h.TLS.Key)
		c.Hosts[name] = h
	}
	c.S2S.CAFile = c.Path(c.S2S.CAFile)
	c.HTTP.WebClientDir = c.Path(c.HTTP.WebClientDir)
	if c.Storage.Driver == "" || c.Storage.Driver == "sqlite" {
		c.Storage.DSN = c.Path(c.Storage.DSN)
	}
}

// Path resolves p, a path from the configuration, as ResolvePaths does:
// relative to c.Dir when p is relative and c.Dir is set; "" stays "" (an
// unset option).
func (c *Config) Path(p string) string {
	if p == "" || c.Dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}
