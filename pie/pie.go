// Package pie exports Starling's user data to, and imports it from, the
// Portable Import/Export Format of XEP-0227 (v1.1, urn:xmpp:pie:0), which
// Prosody (mod_storage_xep0227, through prosody-migrator) and ejabberd
// (ejabberdctl export_piefxis, import_piefxis) read and write: how users
// move between servers with their passwords, contacts and data.
//
// Per account (<user name=…/> under <host jid=…/>):
//
//   - credentials: the stored SCRAM keys as <scram-credentials
//     xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'> with
//     <iter-count/>, <salt/>, <server-key/>, <stored-key/> (base64), one
//     per hash family, as Prosody and ejabberd write them, so that users
//     keep their passwords without the server ever knowing them; on
//     import, a plaintext password attribute (older exports, ejabberd with
//     plaintext storage) has every family derived from it, and ejabberd's
//     old password='scram:…' form is read too; ejabberd (23.01) writes
//     and reads the salts and keys base64-encoded twice: Import
//     recognises that form, Export writes it on request;
//   - the roster (jabber:iq:roster, RFC 6121 items with groups,
//     subscription, ask and approved) and the pending inbound
//     subscription requests (<presence type='subscribe'/> children of
//     <user/>, as both servers write them);
//   - the vCard (vcard-temp), private XML storage (jabber:iq:private);
//   - offline messages (<offline-messages/>, each with the XEP-0203
//     delay of when it was stored, which import takes back);
//   - personal eventing nodes: configuration forms, whitelists (member
//     affiliations) and subscriptions under pubsub#owner, items under
//     pubsub (the shape of Prosody's mod_storage_xep0227);
//   - the message archive (<archive xmlns='urn:xmpp:pie:0#mam'/> of
//     XEP-0313 results with the time of each message);
//   - the blocklist (XEP-0191), as an extension (<blocklist
//     xmlns='urn:xmpp:blocking'/>) that other servers ignore.
//
// Not carried: MUC rooms, push registrations, uploaded files, last
// activity, archive preferences and the disabled flag. XIncludes are
// followed on import; Export writes one file, ExportAccount one per
// account.
package pie

import (
	"encoding/xml"

	"github.com/starling-xmpp/starling/storage"
)

// Namespaces of the format and of what it carries.
const (
	NS        = "urn:xmpp:pie:0"
	nsOld     = "http://www.xmpp.org/extensions/xep-0227.html#ns" // before v1.0; ejabberd reads both
	nsSCRAM   = NS + "#scram"
	nsMAM     = NS + "#mam"
	nsXInc    = "http://www.w3.org/2001/XInclude"
	nsClient  = "jabber:client"
	nsRoster  = "jabber:iq:roster"
	nsPrivate = "jabber:iq:private"
	nsVCard   = "vcard-temp"
	nsPubSub  = "http://jabber.org/protocol/pubsub"
	nsOwner   = nsPubSub + "#owner"
	nsData    = "jabber:x:data"
	nsNodeCfg = nsPubSub + "#node_config"
	nsResult2 = "urn:xmpp:mam:2"
	nsForward = "urn:xmpp:forward:0"
	nsDelay   = "urn:xmpp:delay"
	nsBlock   = "urn:xmpp:blocking"
)

var xincludeName = xml.Name{Space: nsXInc, Local: "include"}

// mechanisms names each hash family's SCRAM mechanism.
var mechanisms = map[storage.Hash]string{
	storage.SHA1:   "SCRAM-SHA-1",
	storage.SHA256: "SCRAM-SHA-256",
	storage.SHA512: "SCRAM-SHA-512",
}

// DefaultHashes is the order in which Export writes an account's SCRAM
// keys: SHA-1 first, because ejabberd takes the first <scram-credentials/>
// it finds (its default auth_scram_hash is sha) and Prosody reads the
// SCRAM-SHA-1 one (its default password_hash).
var DefaultHashes = []storage.Hash{storage.SHA1, storage.SHA256, storage.SHA512}

// Stats counts what an export wrote or an import stored.
type Stats struct {
	Accounts        int
	Skipped         int // accounts not imported (see the warnings)
	RosterItems     int
	Requests        int // pending inbound subscription requests
	VCards          int
	PrivateElements int
	Offline         int
	PEPNodes        int
	PEPItems        int
	Archived        int
	Blocked         int
}
