package server

import (
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/module"
)

// ServiceDomains returns the domains the modules of the list would serve
// with cfg besides its hosts (conference.host, upload.host), sorted,
// without starting anything: what the hosts' certificates and DNS must
// cover too (`starling check`). An error if a module's table is wrong.
func ServiceDomains(cfg *config.Config) ([]string, error) {
	return module.NewSet(Modules()).ServiceDomains(cfg)
}
