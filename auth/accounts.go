package auth

import (
	"context"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/storage"
)

// CreateAccount adds the account j (a bare JID) with the SCRAM keys of
// password, derived with iterations (config auth.scram_iterations): for
// in-band registration (XEP-0077), `starling user add` and tests.
// storage.ErrConflict if it exists, ErrInvalidPassword for a password
// PRECIS refuses.
func CreateAccount(ctx context.Context, accounts storage.Accounts, j jid.JID, password string, iterations int) error {
	keys, err := DeriveKeys(password, iterations)
	if err != nil {
		return err
	}
	return accounts.CreateAccount(ctx, storage.Account{Host: j.Domainpart(), Username: j.Localpart(), Keys: keys, Created: time.Now().UTC()})
}

// SetPassword replaces the credentials of account j with the keys of
// password, derived with iterations; ErrInvalidPassword for a password
// PRECIS refuses.
func SetPassword(ctx context.Context, accounts storage.Accounts, j jid.JID, password string, iterations int) error {
	keys, err := DeriveKeys(password, iterations)
	if err != nil {
		return err
	}
	return accounts.SetKeys(ctx, j.Domainpart(), j.Localpart(), keys)
}

// AccountCreated is fired (package event) when an account was created by
// in-band registration (XEP-0077 §3.1), for modules that prepare
// something for new accounts.
type AccountCreated struct {
	JID jid.JID
}

// AccountDeleted is fired (package event) when an account has been removed
// from storage, in-band (XEP-0077 §3.2) or by the administrator: its
// sessions end, and modules forget what they keep of it in memory.
type AccountDeleted struct {
	JID jid.JID
}
