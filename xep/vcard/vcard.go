// Package vcard implements vcard-temp (XEP-0054): a user retrieves (§3.1)
// and replaces (§3.2) their own vCard, and anyone retrieves another local
// user's (§3.3); the server answers on the account's behalf. The vCard is
// kept as the exact bytes of the <vCard/> element the user set, under the
// storage.Documents key "vcard".
//
// Choices where the XEP leaves room (Prosody's mod_vcard and ejabberd's
// mod_vcard are the references):
//   - no vCard stored for the user's own account: an empty <vCard/> result
//     (§3.1 allows it; ejabberd does so);
//   - no vCard stored for another account: <item-not-found/> (§3.3 requires
//     an error; Prosody answers item-not-found); an account that does not
//     exist gets <service-unavailable/> from dispatch (RFC 6121 §8.5.1);
//   - set on anyone else's vCard, or the server's: <forbidden/>, type auth
//     (§3.2; Prosody);
//   - the server itself has no vCard: get to the domain is
//     <item-not-found/> (Prosody);
//   - a vCard larger than MaxBytes: <not-acceptable/> with a text, type
//     modify, as XEP-0060 §7.1.3.4 answers an oversized item (Metronome's
//     vcard_max_size answers policy-violation instead; neither Prosody nor
//     ejabberd has a limit below the stanza size).
package vcard

import (
	"bytes"
	"context"
	"errors"
	"strconv"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// NS is the vcard-temp namespace and disco feature (XEP-0054 §4).
const NS = "vcard-temp"

// Key is the storage.Documents key of an account's vCard.
const Key = storage.VCardKey

// DefaultMaxBytes is the largest vCard stored when Service.MaxBytes is 0:
// room for an embedded photo (XEP-0153 avatars are meant to be well below
// it) while staying under the default stanza limit.
const DefaultMaxBytes = 128 << 10

// Service stores and serves vCards.
type Service struct {
	Store storage.Documents
	// MaxBytes caps the size of a stored vCard; 0 means DefaultMaxBytes.
	MaxBytes int
}

// Register adds the vCard handler to m, for the user's own account, other
// local accounts and the server.
func (s *Service) Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	m.HandleForAccounts(NS, "vCard", s.handle)
}

func (s *Service) handle(ctx context.Context, req dispatch.Request) ([]byte, error) {
	user := req.Stanza.From.Bare()
	own := req.To.Equal(user)
	if req.Set() {
		if !own {
			return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
		}
		if max := s.maxBytes(); len(req.Payload) > max {
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: "the vCard is larger than " + strconv.Itoa(max) + " bytes"}
		}
		if !stanza.SelfContained(req.Payload) {
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: "the vCard uses a namespace prefix it does not declare"}
		}
		if err := s.Store.PutDocument(ctx, user.Domainpart(), user.Localpart(), Key, bytes.Clone(req.Payload)); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if req.ForServer() {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	doc, err := s.Store.Document(ctx, req.To.Domainpart(), req.To.Localpart(), Key)
	switch {
	case errors.Is(err, storage.ErrNotFound) && own:
		return []byte("<vCard xmlns='" + NS + "'/>"), nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	case err != nil:
		return nil, err
	}
	return doc, nil
}

func (s *Service) maxBytes() int {
	if s.MaxBytes > 0 {
		return s.MaxBytes
	}
	return DefaultMaxBytes
}

// Module is XEP-0054 as a module.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "vcard" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	(&Service{Store: env.Store}).Register(env.IQ)
	return nil
}
