package pie

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/internal/dbtest"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/storage"
)

const host = "example.org"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fill stores one of everything Export writes.
func fill(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(auth.CreateAccount(ctx, s, jid.MustParse("alice@"+host), "wonderland ☃", auth.MinIterations))
	must(auth.CreateAccount(ctx, s, jid.MustParse("bob@"+host), "builder", auth.MinIterations))
	must(auth.CreateAccount(ctx, s, jid.MustParse("carol@other.example"), "elsewhere", auth.MinIterations))
	for _, it := range []storage.RosterItem{
		{Contact: "bob@" + host, Name: "Bob & Co", Groups: []string{"Friends", "Work"}, Subscription: storage.SubBoth},
		{Contact: "dave@remote.example", Subscription: storage.SubNone, Ask: true},
		{Contact: "eve@remote.example", Name: "Eve", Subscription: storage.SubTo, Approved: true},
	} {
		_, err := s.PutRosterItem(ctx, host, "alice", it)
		must(err)
	}
	must(s.PutSubscriptionRequest(ctx, host, "alice", storage.SubscriptionRequest{Contact: "frank@remote.example",
		Stanza: []byte(`<presence from='frank@remote.example' to='alice@example.org' type='subscribe'><status>It's Frank</status></presence>`)}))
	must(s.PutDocument(ctx, host, "alice", storage.VCardKey, []byte(`<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard>`)))
	must(s.PutDocument(ctx, host, "alice", storage.PrivateKey("storage:bookmarks", "storage"),
		[]byte(`<storage xmlns='storage:bookmarks'><conference jid='room@conference.example.org' autojoin='true' name='Room'><nick>al</nick></conference></storage>`)))
	must(s.PutDocument(ctx, host, "alice", storage.PrivateKey("exodus:prefs", "exodus"),
		[]byte(`<exodus xmlns='exodus:prefs' xmlns:x='urn:x' x:flag='1' xml:lang='en'><defaultnick>Al</defaultnick></exodus>`)))
	must(s.StoreOffline(ctx, host, "alice", []byte(`<message from='bob@example.org/work' to='alice@example.org' type='chat' id='m1'><body>first &lt;1&gt;</body></message>`), t0, 0))
	must(s.StoreOffline(ctx, host, "alice", []byte(`<message xmlns='jabber:client' from='eve@remote.example/x' to='alice@example.org'><body>second</body><delay xmlns='urn:xmpp:delay' from='remote.example' stamp='2026-02-28T00:00:00Z'/></message>`), t0.Add(time.Minute+123*time.Microsecond), 0))
	cfg := storage.PubSubNodeConfig{AccessModel: storage.AccessWhitelist, PersistItems: true, MaxItems: 10,
		SendLastPublishedItem: "never", NotifyRetract: false, Whitelist: []string{"bob@example.org", "dave@remote.example"},
		Extra: map[string][]string{"pubsub#title": {"Notes"}, "pubsub#type": {"urn:x:notes"}}}
	must(s.CreatePubSubNode(ctx, host, "alice", "urn:x:notes", cfg, storage.PubSubLimits{}))
	must(s.CreatePubSubNode(ctx, host, "alice", "urn:xmpp:avatar:metadata", defaultConfig(), storage.PubSubLimits{}))
	for i, id := range []string{"n2", "n1"} {
		must(s.PublishPubSubItem(ctx, host, "alice", "urn:x:notes", storage.PubSubItem{ID: id, Publisher: "alice@example.org/phone",
			Payload: []byte(`<note xmlns='urn:x:notes'>note ` + id + `</note>`), Published: t0.Add(time.Duration(i) * time.Second)}, storage.PubSubLimits{}))
	}
	must(s.PubSubSubscribe(ctx, host, "alice", "urn:x:notes", "bob@example.org/work", storage.PubSubLimits{}))
	must(s.AppendArchive(ctx, []storage.ArchiveEntry{
		{Host: host, Username: "alice", ArchivedMessage: storage.ArchivedMessage{ID: t0.UnixMicro() + 7, With: "bob@example.org", WithResource: "work",
			Direction: storage.Incoming, Stanza: []byte(`<message from='bob@example.org/work' to='alice@example.org/phone' type='chat'><body>hi</body></message>`)}},
		{Host: host, Username: "alice", ArchivedMessage: storage.ArchivedMessage{ID: t0.UnixMicro() + 2_000_000, With: "bob@example.org",
			Direction: storage.Outgoing, Stanza: []byte(`<message to='bob@example.org' type='chat'><body>hello</body></message>`)}},
		{Host: host, Username: "bob", ArchivedMessage: storage.ArchivedMessage{ID: t0.UnixMicro() + 8, With: "alice@example.org", WithResource: "phone",
			Direction: storage.Outgoing, Stanza: []byte(`<message from='bob@example.org/work' to='alice@example.org/phone' type='chat'><body>hi</body></message>`)}},
	}))
	must(s.Block(ctx, host, "bob", []string{"spam@remote.example", "remote.example/bot"}))
}

// dump is everything stored for the accounts of host, to compare two
// stores.
type dump struct {
	Accounts map[string]storage.Account
	Roster   map[string][]storage.RosterItem
	Requests map[string][]string
	Docs     map[string]map[string]string
	Offline  map[string][]string
	Nodes    map[string][]storage.PubSubNode
	Items    map[string][]string
	Subs     map[string][]storage.PubSubSubscription
	Archive  map[string][]storage.ArchivedMessage
	Blocked  map[string][]string
}

func dumpStore(t *testing.T, s storage.Store, h string) dump {
	t.Helper()
	ctx := t.Context()
	d := dump{map[string]storage.Account{}, map[string][]storage.RosterItem{}, map[string][]string{}, map[string]map[string]string{},
		map[string][]string{}, map[string][]storage.PubSubNode{}, map[string][]string{}, map[string][]storage.PubSubSubscription{},
		map[string][]storage.ArchivedMessage{}, map[string][]string{}}
	users, err := s.ListAccounts(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	canon := func(raw []byte, ns string) string {
		n, err := parseElement(raw, ns)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return string(marshal(n, ns))
	}
	for _, u := range users {
		a, err := s.Account(ctx, h, u)
		if err != nil {
			t.Fatal(err)
		}
		a.Created = time.Time{}
		d.Accounts[u] = a
		items, _, _ := s.RosterItems(ctx, h, u)
		for i := range items {
			items[i].Version = 0
		}
		d.Roster[u] = items
		reqs, _ := s.SubscriptionRequests(ctx, h, u)
		for _, r := range reqs {
			d.Requests[u] = append(d.Requests[u], r.Contact+" "+canon(r.Stanza, nsClient))
		}
		keys, _ := s.DocumentKeys(ctx, h, u, "")
		d.Docs[u] = map[string]string{}
		for _, k := range keys {
			doc, _ := s.Document(ctx, h, u, k)
			d.Docs[u][k] = canon(doc, "")
		}
		off, _ := s.OfflineMessages(ctx, h, u)
		for _, m := range off {
			d.Offline[u] = append(d.Offline[u], m.Stored.UTC().Format(time.RFC3339Nano)+" "+canon(m.Stanza, nsClient))
		}
		nodes, _ := s.PubSubNodes(ctx, h, u)
		d.Nodes[u] = nodes
		for _, n := range nodes {
			its, _ := s.PubSubItems(ctx, h, u, n.Name, storage.PubSubItemsQuery{})
			for _, it := range its {
				d.Items[u] = append(d.Items[u], n.Name+" "+it.ID+" "+it.Publisher+" "+canon(it.Payload, ""))
			}
			subs, _ := s.PubSubSubscriptions(ctx, h, u, n.Name)
			d.Subs[u] = append(d.Subs[u], subs...)
		}
		page, err := s.QueryArchive(ctx, h, u, storage.ArchiveQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			m.Stanza = []byte(canon(m.Stanza, nsClient))
			d.Archive[u] = append(d.Archive[u], m)
		}
		d.Blocked[u], _ = s.BlockedJIDs(ctx, h, u)
	}
	return d
}

func TestRoundTrip(t *testing.T) {
	for _, b := range dbtest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			src, dst := b.Open(t)(), b.Open(t)()
			fill(t, src)
			var warnings []string
			warn := func(s string) { warnings = append(warnings, s) }
			var file bytes.Buffer
			st, err := Export(t.Context(), src, &file, ExportOptions{Hosts: []string{host}, Warn: warn})
			if err != nil {
				t.Fatal(err)
			}
			want := Stats{Accounts: 2, RosterItems: 3, Requests: 1, VCards: 1, PrivateElements: 2, Offline: 2, PEPNodes: 2, PEPItems: 2, Archived: 3, Blocked: 2}
			if st != want {
				t.Errorf("Export stats = %+v, want %+v", st, want)
			}
			path := filepath.Join(t.TempDir(), "export.xml")
			if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err = Import(t.Context(), dst, path, ImportOptions{Hosts: []string{host}, Warn: warn, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatalf("%v\n%s", err, file.Bytes())
			}
			if st != want {
				t.Errorf("Import stats = %+v, want %+v", st, want)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %q", warnings)
			}
			got, exp := dumpStore(t, dst, host), dumpStore(t, src, host)
			for _, f := range []struct {
				name      string
				got, want any
			}{
				{"accounts", got.Accounts, exp.Accounts}, {"roster", got.Roster, exp.Roster}, {"requests", got.Requests, exp.Requests},
				{"documents", got.Docs, exp.Docs}, {"offline", got.Offline, exp.Offline}, {"nodes", got.Nodes, exp.Nodes},
				{"items", got.Items, exp.Items}, {"subscriptions", got.Subs, exp.Subs}, {"archive", got.Archive, exp.Archive},
				{"blocklist", got.Blocked, exp.Blocked},
			} {
				if !reflect.DeepEqual(f.got, f.want) {
					t.Errorf("%s:\n got %+v\nwant %+v", f.name, f.got, f.want)
				}
			}
			a, err := dst.Account(t.Context(), host, "alice")
			if err != nil || !auth.CheckPassword(a.Keys, "wonderland ☃") || len(a.Keys) != 3 {
				t.Errorf("alice's password does not check after the import (%v, %d families)", err, len(a.Keys))
			}
			if users, _ := dst.ListAccounts(t.Context(), "other.example"); len(users) != 0 {
				t.Errorf("accounts of a host not exported: %q", users)
			}
			// The second export is the first, byte for byte.
			var again bytes.Buffer
			if _, err := Export(t.Context(), dst, &again, ExportOptions{Hosts: []string{host}}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), file.Bytes()) {
				t.Errorf("export after import differs:\n%s\nfirst:\n%s", again.Bytes(), file.Bytes())
			}
			// Importing it again adds nothing.
			warnings = nil
			st, err = Import(t.Context(), dst, path, ImportOptions{Warn: warn})
			if err != nil || st.Accounts != 0 || st.Skipped != 2 || len(warnings) != 2 || !strings.Contains(warnings[0], "exists already") {
				t.Errorf("second import: %+v, %v, %q", st, err, warnings)
			}
			if d := dumpStore(t, dst, host); !reflect.DeepEqual(d.Offline, exp.Offline) || !reflect.DeepEqual(d.Archive, exp.Archive) {
				t.Errorf("the second import changed the data")
			}
		})
	}
}

// TestExportFormat checks the elements other servers read, as
// mod_storage_xep0227 (Prosody 0.12) and ejabberd_piefxis (23.01) read
// them.
func TestExportFormat(t *testing.T) {
	s := dbtest.Backends[0].Open(t)()
	ctx := t.Context()
	if err := s.CreateAccount(ctx, storage.Account{Host: host, Username: "juliet", Keys: map[storage.Hash]storage.SCRAMKeys{
		storage.SHA1:   {Salt: []byte("salt1"), Iterations: 4096, StoredKey: bytes.Repeat([]byte{1}, 20), ServerKey: bytes.Repeat([]byte{2}, 20)},
		storage.SHA256: {Salt: []byte("salt256"), Iterations: 5000, StoredKey: bytes.Repeat([]byte{3}, 32), ServerKey: bytes.Repeat([]byte{4}, 32)},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRosterItem(ctx, host, "juliet", storage.RosterItem{Contact: "romeo@montague.net", Name: "Romeo", Groups: []string{"Friends"}, Subscription: storage.SubBoth}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Export(ctx, s, &out, ExportOptions{Hosts: []string{host}, Hashes: []storage.Hash{storage.SHA256, storage.SHA1}}); err != nil {
		t.Fatal(err)
	}
	want := `<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
<host jid='example.org'>
<user name='juliet'>` +
		`<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'><iter-count>5000</iter-count><salt>c2FsdDI1Ng==</salt>` +
		`<server-key>BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=</server-key><stored-key>AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=</stored-key></scram-credentials>` +
		`<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count><salt>c2FsdDE=</salt>` +
		`<server-key>AgICAgICAgICAgICAgICAgICAgI=</server-key><stored-key>AQEBAQEBAQEBAQEBAQEBAQEBAQE=</stored-key></scram-credentials>` +
		`<query xmlns='jabber:iq:roster'><item jid='romeo@montague.net' name='Romeo' subscription='both'><group>Friends</group></item></query>` +
		`</user>
</host>
</server-data>
`
	if err := xmlcmp.Equal([]byte(want), out.Bytes(), ""); err != nil {
		t.Errorf("%v\ngot:\n%s", err, out.Bytes())
	}
}

// TestImportEjabberd reads what ejabberd 23.01's export_piefxis writes:
// a main file including a file per host, SCRAM credentials of one family,
// a plaintext password, pending requests as presence, offline messages
// with ejabberd's delay; and its old password='scram:…' form.
func TestImportEjabberd(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := auth.DeriveKeys("secret256", 4096)
	if err != nil {
		t.Fatal(err)
	}
	k := keys[storage.SHA256]
	old := keys[storage.SHA1]
	b64 := func(b []byte) string { return encodeB64(b) }
	// ejabberd 23.01 writes its SCRAM values base64-encoded twice.
	b64twice := func(b []byte) string { return encodeB64([]byte(encodeB64(b))) }
	write("20261207-120000.xml", `<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='20261207-120000_example_org.xml'/></server-data>`)
	write("20261207-120000_example_org.xml", `<?xml version='1.0' encoding='UTF-8'?><host xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude' jid='example.org'>`+
		`<user name='Juliet'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-256'><iter-count>4096</iter-count><salt>`+b64twice(k.Salt)+`</salt><server-key>`+b64twice(k.ServerKey)+`</server-key><stored-key>`+b64twice(k.StoredKey)+`</stored-key></scram-credentials>`+
		`<offline-messages><message xmlns='jabber:client' from='romeo@montague.net/orchard' to='juliet@example.org' type='chat'><body>Neither, fair saint</body><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2026-11-01T10:00:00.5Z'>Offline Storage</delay></message></offline-messages>`+
		`<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard>`+
		`<query xmlns='jabber:iq:roster'><item jid='romeo@montague.net' name='Romeo' subscription='both'><group>Friends</group></item><item jid='nurse@example.org' subscription='none' ask='subscribe'/></query>`+
		`<presence xmlns='jabber:client' from='tybalt@example.org' to='juliet@example.org' type='subscribe'><status/></presence>`+
		`<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>`+
		`<query xmlns='jabber:iq:privacy'/>`+
		`</user>`+
		`<user name='romeo' password='plain pw'><offline-messages><message from='juliet@example.org' type='chat'><body>unqualified</body></message></offline-messages></user>`+
		`<user name='mercutio' password='scram:`+b64(old.StoredKey)+`,`+b64(old.ServerKey)+`,`+b64(old.Salt)+`,4096'/>`+
		`<user name='nopass'/>`+
		`</host>`)
	s := dbtest.Backends[0].Open(t)()
	var warnings []string
	st, err := Import(t.Context(), s, filepath.Join(dir, "20261207-120000.xml"), ImportOptions{Hosts: []string{host}, Iterations: 4096, Warn: func(w string) { warnings = append(warnings, w) }})
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Accounts: 3, Skipped: 1, RosterItems: 2, Requests: 1, VCards: 1, PrivateElements: 1, Offline: 2}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "jabber:iq:privacy") || !strings.Contains(warnings[1], "nopass@example.org: skipped") {
		t.Errorf("warnings = %q", warnings)
	}
	ctx := t.Context()
	for user, pw := range map[string]string{"juliet": "secret256", "romeo": "plain pw", "mercutio": "secret256"} {
		a, err := s.Account(ctx, host, user)
		if err != nil || !auth.CheckPassword(a.Keys, pw) {
			t.Errorf("%s: password does not check (%v)", user, err)
		}
	}
	if a, _ := s.Account(ctx, host, "juliet"); len(a.Keys) != 1 || a.Keys[storage.SHA256].Iterations != 4096 {
		t.Errorf("juliet's keys: %+v", a.Keys)
	}
	off, _ := s.OfflineMessages(ctx, host, "juliet")
	if len(off) != 1 || !off[0].Stored.Equal(time.Date(2026, 11, 1, 10, 0, 0, 5e8, time.UTC)) || bytes.Contains(off[0].Stanza, []byte("delay")) ||
		xmlcmp.Equal([]byte(`<message from='romeo@montague.net/orchard' to='juliet@example.org' type='chat'><body>Neither, fair saint</body></message>`), off[0].Stanza, nsClient) != nil {
		t.Errorf("offline: %+v", off)
	}
	if off, _ := s.OfflineMessages(ctx, host, "romeo"); len(off) != 1 || xmlcmp.Equal([]byte(`<message from='juliet@example.org' type='chat'><body>unqualified</body></message>`), off[0].Stanza, nsClient) != nil {
		t.Errorf("romeo's offline message, written without its namespace: %+v", off)
	}
	items, _, _ := s.RosterItems(ctx, host, "juliet")
	if len(items) != 2 || items[0].Contact != "nurse@example.org" || !items[0].Ask || items[1].Subscription != storage.SubBoth || !slices.Equal(items[1].Groups, []string{"Friends"}) {
		t.Errorf("roster: %+v", items)
	}
	reqs, _ := s.SubscriptionRequests(ctx, host, "juliet")
	if len(reqs) != 1 || reqs[0].Contact != "tybalt@example.org" {
		t.Errorf("requests: %+v", reqs)
	}
	if doc, _ := s.Document(ctx, host, "juliet", storage.PrivateKey("storage:bookmarks", "storage")); xmlcmp.Equal([]byte(`<storage xmlns='storage:bookmarks'/>`), doc, "") != nil {
		t.Errorf("bookmarks: %s", doc)
	}
}

// TestImportProsody reads what Prosody 0.12's mod_storage_xep0227 writes
// (one file per user): its PEP items, a node configuration, and its
// subscriptions written with subscribed='subscribed'.
func TestImportProsody(t *testing.T) {
	path := filepath.Join(t.TempDir(), "juliet@example.org.xml")
	keys, _ := auth.DeriveKeys("secret", 4096)
	k := keys[storage.SHA1]
	err := os.WriteFile(path, []byte(`<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'><user name='juliet'>`+
		`<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><server-key>`+encodeB64(k.ServerKey)+`</server-key><stored-key>`+encodeB64(k.StoredKey)+`</stored-key><iter-count>4096</iter-count><salt>`+encodeB64(k.Salt)+`</salt></scram-credentials>`+
		`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:microblog:0'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>open</value></field><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#title'><value>Blog</value></field></x></configure>`+
		`<subscriptions node='urn:xmpp:microblog:0'><subscription jid='romeo@montague.net' subscribed='subscribed'/></subscriptions></pubsub>`+
		`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:microblog:0'><item id='p1'><entry xmlns='http://www.w3.org/2005/Atom'><title>one</title></entry></item></items>`+
		`<items node='urn:xmpp:avatar:metadata'><item id='abc'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></items></pubsub>`+
		`<archive xmlns='urn:xmpp:pie:0#mam'><result xmlns='urn:xmpp:mam:2' id='5b7d8f2e-0000'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-10-01T08:00:00Z'/><message xmlns='jabber:client' from='juliet@example.org/balcony' to='romeo@montague.net' type='chat'><body>wherefore</body></message></forwarded></result></archive>`+
		`</user></host></server-data>`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s := dbtest.Backends[0].Open(t)()
	st, err := Import(t.Context(), s, path, ImportOptions{Warn: func(w string) { t.Errorf("warning: %s", w) }})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Accounts: 1, PEPNodes: 2, PEPItems: 2, Archived: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	ctx := t.Context()
	n, err := s.PubSubNode(ctx, host, "juliet", "urn:xmpp:microblog:0")
	if err != nil || n.Config.AccessModel != storage.AccessOpen || n.Config.MaxItems != storage.PubSubMaxItemsMax || n.Items != 1 ||
		!reflect.DeepEqual(n.Config.Extra, map[string][]string{"pubsub#title": {"Blog"}}) {
		t.Errorf("microblog node: %+v, %v", n, err)
	}
	if n, err := s.PubSubNode(ctx, host, "juliet", "urn:xmpp:avatar:metadata"); err != nil || !reflect.DeepEqual(n.Config, defaultConfig()) {
		t.Errorf("avatar node: %+v, %v", n, err)
	}
	if subs, _ := s.PubSubSubscriptions(ctx, host, "juliet", "urn:xmpp:microblog:0"); len(subs) != 1 || subs[0].JID != "romeo@montague.net" {
		t.Errorf("subscriptions: %+v", subs)
	}
	page, _ := s.QueryArchive(ctx, host, "juliet", storage.ArchiveQuery{})
	if len(page.Messages) != 1 || page.Messages[0].Direction != storage.Outgoing || page.Messages[0].With != "romeo@montague.net" ||
		!page.Messages[0].Time().Equal(time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("archive: %+v", page.Messages)
	}
}

// TestImportHosts skips the accounts of hosts not served, and refuses
// XIncludes that are no relative file names.
func TestImportHosts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.xml")
	os.WriteFile(path, []byte(`<server-data xmlns='urn:xmpp:pie:0'><host jid='other.example'><user name='a' password='x'/><user name='b' password='y'/></host><host jid='example.org'><user name='c' password='z'/></host></server-data>`), 0o600)
	s := dbtest.Backends[0].Open(t)()
	var warnings []string
	st, err := Import(context.Background(), s, path, ImportOptions{Hosts: []string{host}, Iterations: 4096, Warn: func(w string) { warnings = append(warnings, w) }})
	if err != nil || st.Accounts != 1 || st.Skipped != 2 || len(warnings) != 1 || !strings.Contains(warnings[0], "other.example is not served") {
		t.Errorf("%+v, %v, %q", st, err, warnings)
	}
	bad := filepath.Join(dir, "b.xml")
	os.WriteFile(bad, []byte(`<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='/etc/passwd'/></server-data>`), 0o600)
	if _, err := Import(context.Background(), s, bad, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "only relative file names") {
		t.Errorf("absolute XInclude: %v", err)
	}
	loop := filepath.Join(dir, "loop.xml")
	os.WriteFile(loop, []byte(`<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='loop.xml'/></server-data>`), 0o600)
	if _, err := Import(context.Background(), s, loop, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("XInclude loop: %v", err)
	}
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestExportAccount writes one account as Prosody keeps it, a document
// of its own, which imports back.
func TestExportAccount(t *testing.T) {
	src, dst := dbtest.Backends[0].Open(t)(), dbtest.Backends[0].Open(t)()
	fill(t, src)
	var b bytes.Buffer
	st, err := ExportAccount(t.Context(), src, &b, host, "alice", ExportOptions{Hashes: []storage.Hash{storage.SHA1}})
	if err != nil || st.Accounts != 1 || st.RosterItems != 3 {
		t.Fatalf("%+v, %v", st, err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'><user name='alice'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>")) {
		t.Errorf("not one server-data, host and user:\n%s", b.Bytes())
	}
	path := filepath.Join(t.TempDir(), "alice@example.org.xml")
	os.WriteFile(path, b.Bytes(), 0o600)
	if st, err := Import(t.Context(), dst, path, ImportOptions{}); err != nil || st.Accounts != 1 || st.Archived != 2 {
		t.Fatalf("%+v, %v", st, err)
	}
	a, _ := dst.Account(t.Context(), host, "alice")
	if len(a.Keys) != 1 || !auth.CheckPassword(a.Keys, "wonderland ☃") {
		t.Errorf("keys: %d families", len(a.Keys))
	}

	// As ejabberd writes them: base64 twice, read back as they were.
	b.Reset()
	if _, err := ExportAccount(t.Context(), src, &b, host, "alice", ExportOptions{Hashes: []storage.Hash{storage.SHA256}, Base64Twice: true}); err != nil {
		t.Fatal(err)
	}
	orig, _ := src.Account(t.Context(), host, "alice")
	if want := "<salt>" + encodeB64([]byte(encodeB64(orig.Keys[storage.SHA256].Salt))) + "</salt>"; !bytes.Contains(b.Bytes(), []byte(want)) {
		t.Errorf("no %s in\n%s", want, b.Bytes())
	}
	os.WriteFile(path, b.Bytes(), 0o600)
	third := dbtest.Backends[0].Open(t)()
	if _, err := Import(t.Context(), third, path, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if a, _ := third.Account(t.Context(), host, "alice"); !reflect.DeepEqual(a.Keys, map[storage.Hash]storage.SCRAMKeys{storage.SHA256: orig.Keys[storage.SHA256]}) {
		t.Errorf("keys read from base64 twice: %+v", a.Keys)
	}
}
