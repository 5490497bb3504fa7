package check

import (
	"os"
	"path/filepath"

	"github.com/starling-xmpp/starling/config"
)

// WebClient checks, when [http] web_client is on, that the web client's
// files are present and that a web listener serves them.
func WebClient(opts Options, r *Report) {
	cfg := opts.Config
	if !cfg.HTTP.WebClient {
		r.ok(AreaWebClient, "off ([http] web_client = false)")
		return
	}
	if len(cfg.HTTP.Listen) == 0 && len(cfg.HTTP.TLSListen) == 0 {
		r.add(AreaWebClient, Problem, "add [http] tls_listen (or listen, behind a reverse proxy)",
			"[http] web_client is on, but no web listener serves it")
	}
	missing := false
	for _, f := range config.WebClientFiles {
		p := filepath.Join(cfg.HTTP.WebClientDir, f)
		if _, err := os.Stat(p); err != nil {
			missing = true
			r.add(AreaWebClient, Problem, "run `make webclient` in Starling's source tree, or set http.web_client_dir to the converse.js package's directory",
				"%s is missing: the chat page at %s cannot load", p, cfg.HTTP.WebClientPath)
		}
	}
	if !missing {
		r.ok(AreaWebClient, "the files are in %s, served at %s", cfg.HTTP.WebClientDir, cfg.HTTP.WebClientPath)
	}
}
