package server

import (
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/s2s"
	"github.com/starling-xmpp/starling/xep/adhoc"
	"github.com/starling-xmpp/starling/xep/blocking"
	"github.com/starling-xmpp/starling/xep/carbons"
	"github.com/starling-xmpp/starling/xep/contactinfo"
	"github.com/starling-xmpp/starling/xep/csi"
	"github.com/starling-xmpp/starling/xep/disco"
	"github.com/starling-xmpp/starling/xep/entitytime"
	"github.com/starling-xmpp/starling/xep/extdisco"
	"github.com/starling-xmpp/starling/xep/last"
	"github.com/starling-xmpp/starling/xep/mam"
	"github.com/starling-xmpp/starling/xep/muc"
	"github.com/starling-xmpp/starling/xep/offline"
	"github.com/starling-xmpp/starling/xep/pep"
	"github.com/starling-xmpp/starling/xep/ping"
	"github.com/starling-xmpp/starling/xep/private"
	"github.com/starling-xmpp/starling/xep/push"
	"github.com/starling-xmpp/starling/xep/register"
	"github.com/starling-xmpp/starling/xep/upload"
	"github.com/starling-xmpp/starling/xep/vcard"
	"github.com/starling-xmpp/starling/xep/version"
)

// Modules is the ordered list of the modules the server starts (and stops
// in reverse): adding an extension is one package under xep/ and one line
// here (module/README.md). The order is the start order, and the order of
// equal priorities on the event bus.
func Modules() []module.Module {
	return []module.Module{
		disco.Module{},
		ping.Module{},
		register.Module{},
		adhoc.Module{},
		blocking.Module{},
		offline.Module{},
		&last.Module{},
		carbons.Module{},
		&mam.Module{},
		csi.Module{},
		&push.Module{},
		version.Module{Software: "Starling", Version: Version},
		entitytime.Module{},
		contactinfo.Module{},
		&extdisco.Module{},
		vcard.Module{},
		private.Module{},
		pep.Module{},
		&muc.Module{},
		&upload.Module{},
		// Federation last: other servers' stanzas arrive once every
		// module is ready for them.
		&s2s.Module{},
	}
}
