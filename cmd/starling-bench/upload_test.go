package main

import (
	"testing"
)

func TestUploadParsing(t *testing.T) {
	// Prosody's and ejabberd's disco#info of their upload services.
	info := []byte(`<iq type='result' id='up2' from='upload.localhost'><query xmlns='http://jabber.org/protocol/disco#info'>` +
		`<identity category='store' type='file' name='HTTP File Upload'/><feature var='urn:xmpp:http:upload:0'/>` +
		`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field>` +
		`<field var='max-file-size'><value>104857600</value></field></x>` +
		`<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload</value></field>` +
		`<field var='max-file-size'><value>5</value></field></x></query></iq>`)
	if jid, max, ok, err := uploadService("upload.localhost", info); err != nil || !ok || jid != "upload.localhost" || max != 104857600 {
		t.Fatalf("uploadService: %q %d %v %v", jid, max, ok, err)
	}
	if _, _, ok, err := uploadService("conference.localhost", []byte(`<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='http://jabber.org/protocol/muc'/></query></iq>`)); ok || err != nil {
		t.Fatalf("a MUC service taken for upload: %v", err)
	}

	slot := []byte(`<iq type='result' id='up3'><slot xmlns='urn:xmpp:http:upload:0'>` +
		`<put url='https://upload.localhost:5281/file_share/abc/a%20b.bin?x=1&amp;y=2'><header name='Authorization'>Bearer t.o.k` + "\n" + `en</header>` +
		`<header name='Cookie'>c=1</header></put><get url='https://upload.localhost:5281/file_share/abc/a%20b.bin'/></slot></iq>`)
	f, err := parseSlot(slot)
	if err != nil || f.put != "https://upload.localhost:5281/file_share/abc/a%20b.bin?x=1&y=2" || f.get != "https://upload.localhost:5281/file_share/abc/a%20b.bin" ||
		f.headers.Get("Authorization") != "Bearer t.o.ken" || f.headers.Get("Cookie") != "c=1" || len(f.headers) != 2 {
		t.Fatalf("parseSlot: %+v %v", f, err)
	}
	if _, err := parseSlot([]byte(`<iq type='result'><slot xmlns='urn:xmpp:http:upload:0'><put url='ftp://x/'/><get url='https://x/'/></slot></iq>`)); err == nil {
		t.Fatal("an ftp URL accepted")
	}

	head, base := []byte("HEAD"), []byte("xxxxabcdefgh")
	if i := mismatch(head, base, 0, []byte("HEADabcd")); i != -1 {
		t.Fatalf("mismatch %d on the same bytes", i)
	}
	if i := mismatch(head, base, 2, []byte("ADabXd")); i != 4 {
		t.Fatalf("mismatch %d, want 4", i)
	}
	for s, want := range map[string]int64{"1MiB": 1 << 20, "50M": 50 << 20, "4096": 4096, " 2 KiB ": 2048} {
		if n, err := parseSize(s); err != nil || n != want {
			t.Errorf("parseSize(%q) = %d, %v", s, n, err)
		}
	}
	for _, s := range []string{"", "0", "-1", "1TiB", "MiB", "2G0"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) accepted", s)
		}
	}
}
