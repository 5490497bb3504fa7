package muc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"strconv"
	"strings"

	"github.com/starling-xmpp/starling/stanza"
)

// maxVCardBytes bounds a room's vCard, as the vcard module bounds a
// user's.
const maxVCardBytes = 128 << 10

// vcard is the room's vCard-temp (XEP-0054 on the room JID; XEP-0486
// MUC avatars): anyone reads it, owners set it; a set changes the
// avatar hashes in muc#roominfo and tells the occupants (status 104).
func (s *Service) vcard(ctx context.Context, r *room, st *stanza.Stanza, payload []byte) {
	if st.Type == "get" {
		r.mu.Lock()
		v := r.vcard
		r.mu.Unlock()
		if v == nil {
			v = []byte("<vCard xmlns='" + nsVCard + "'/>")
		}
		s.result(ctx, st, v)
		return
	}
	switch {
	case len(payload) > maxVCardBytes:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "the vCard is larger than " + strconv.Itoa(maxVCardBytes) + " bytes"})
		return
	case !stanza.SelfContained(payload):
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "the vCard uses a namespace prefix it does not declare"})
		return
	}
	v := bytes.Clone(payload)
	empty := true
	for range stanza.Children(v) {
		empty = false
	}
	if empty {
		v = nil
	}
	r.mu.Lock()
	if r.affiliationOf(st.From.Bare()) != affOwner {
		r.mu.Unlock()
		s.fail(ctx, st, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only owners set the room's vCard"}) // XEP-0486 §3.2
		return
	}
	r.vcard, r.avatars = v, photoHashes(v)
	outs := r.configChanged([]int{104})
	sn := r.snapshot()
	defer r.handOff()()
	s.persist(ctx, r, sn)
	s.result(ctx, st, nil)
	s.sendAll(ctx, outs)
}

// photoHashes is the SHA-1 of each PHOTO's picture (XEP-0153 §4.2).
func photoHashes(v []byte) []string {
	var c struct {
		Photos []struct {
			Binval string `xml:"BINVAL"`
		} `xml:"PHOTO"`
	}
	if v == nil || xml.Unmarshal(v, &c) != nil {
		return nil
	}
	var hashes []string
	for _, p := range c.Photos {
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.Binval), ""))
		if err != nil || len(data) == 0 {
			continue
		}
		h := sha1.Sum(data)
		hashes = append(hashes, hex.EncodeToString(h[:]))
	}
	return hashes
}
