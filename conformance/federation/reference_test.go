package federation

import (
	"testing"

	"github.com/starling-xmpp/starling/internal/anchor"
)

// TestProsodyEjabberd is the reference: Prosody and ejabberd federated
// with each other through this harness, in each trust mode and over
// each transport. It also checks in both servers' logs that the streams
// authenticated the way the mode says.
func TestProsodyEjabberd(t *testing.T) {
	requirePeers(t)
	for _, mode := range modes {
		for _, tr := range transports {
			t.Run(mode.String()+"/"+string(tr), func(t *testing.T) {
				w := newWorld(t, tr, false)
				// ejabberd takes EXTERNAL only from a certificate
				// for clientAuth too: Prosody gets one in External
				// mode, where nothing else would do. In
				// ExternalOrDialback mode it has serverAuth only,
				// and falls back to dialback towards ejabberd.
				p, up := w.peer("prosody", mode, mode == anchor.External)
				e, ue := w.peer("ejabberd", mode, false)
				exchange(t, up, ue)
				// In ExternalOrDialback mode Prosody's
				// serverAuth-only certificate fails EXTERNAL
				// at ejabberd, and Prosody falls back to
				// dialback; ejabberd's EXTERNAL works, Prosody
				// not checking the purpose.
				toEjabberd, toProsody := external, external
				switch mode {
				case anchor.DialbackOnly:
					toEjabberd, toProsody = dialback, dialback
				case anchor.ExternalOrDialback:
					toEjabberd = dialback
				}
				checkAuth(t, p, ejabberdDomain, toProsody, toEjabberd)
				checkAuth(t, e, prosodyDomain, toEjabberd, toProsody)
			})
		}
	}
}
