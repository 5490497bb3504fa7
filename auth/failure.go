package auth

import (
	"encoding/xml"
	"strings"
)

// SASL failure conditions (RFC 6120 §6.5).
const (
	Aborted              = "aborted"                // §6.5.1
	AccountDisabled      = "account-disabled"       // §6.5.2
	CredentialsExpired   = "credentials-expired"    // §6.5.3
	EncryptionRequired   = "encryption-required"    // §6.5.4
	IncorrectEncoding    = "incorrect-encoding"     // §6.5.5
	InvalidAuthzid       = "invalid-authzid"        // §6.5.6
	InvalidMechanism     = "invalid-mechanism"      // §6.5.7
	MalformedRequest     = "malformed-request"      // §6.5.8
	MechanismTooWeak     = "mechanism-too-weak"     // §6.5.9
	NotAuthorized        = "not-authorized"         // §6.5.10
	TemporaryAuthFailure = "temporary-auth-failure" // §6.5.11
)

// NSSASL is the SASL namespace of XMPP (RFC 6120 §6.4).
const NSSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// Failure is a SASL failure (RFC 6120 §6.5). Text is for humans and never
// carries passwords, key material or whether an account exists.
type Failure struct {
	Condition string
	Text      string
}

// Error implements error.
func (f *Failure) Error() string {
	if f.Text == "" {
		return "sasl: " + f.Condition
	}
	return "sasl: " + f.Condition + ": " + f.Text
}

// Bytes marshals the failure as
// <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><COND/>[<text>…</text>]</failure>
// (RFC 6120 §6.4.5).
func (f *Failure) Bytes() []byte {
	var b strings.Builder
	b.WriteString("<failure xmlns='" + NSSASL + "'><")
	b.WriteString(f.Condition)
	b.WriteString("/>")
	if f.Text != "" {
		b.WriteString("<text xml:lang='en'>")
		xml.EscapeText(&b, []byte(f.Text))
		b.WriteString("</text>")
	}
	b.WriteString("</failure>")
	return []byte(b.String())
}

func fail(cond, text string) *Failure { return &Failure{Condition: cond, Text: text} }
