package storage

import (
	"context"
	"time"
)

// PushRegistration is one app server an account asked its server to
// notify (Push Notifications, XEP-0357 §5): usually one per device and
// client application.
type PushRegistration struct {
	// JID is the XMPP Push Service's address (the enable's 'jid').
	JID string
	// Node is the pubsub node provisioned for the device on it.
	Node string
	// Options are the fields of the publish-options form given at
	// enable, FORM_TYPE aside, in their order: sent with every
	// notification (credentials such as a secret). Backends return nil
	// for none.
	Options []PushOption
	// Enabled is when it was last enabled; stores keep milliseconds.
	Enabled time.Time
}

// PushOption is one field of a publish-options form: its var and values.
type PushOption struct {
	Var    string
	Values []string
}

// PushRegistrations stores each account's push registrations, one per
// (JID, Node).
type PushRegistrations interface {
	// PutPushRegistration adds r, or replaces the registration with the
	// same JID and node (XEP-0357 §5: the last request's options hold).
	// When the account then has more than max registrations (max <= 0:
	// no limit), the least recently enabled others are removed, in the
	// same transaction. ErrNotFound if there is no such account.
	PutPushRegistration(ctx context.Context, host, username string, r PushRegistration, max int) error
	// PushRegistrations returns the account's registrations, least
	// recently enabled first.
	PushRegistrations(ctx context.Context, host, username string) ([]PushRegistration, error)
	// DeletePushRegistrations removes the registration of jid and node,
	// or with node "" every registration of jid (§6), and returns how
	// many it removed.
	DeletePushRegistrations(ctx context.Context, host, username, jid, node string) (int, error)
}
