// Package auth owns accounts' credentials and the server side of SASL
// (RFC 6120 §6, RFC 4422): SCRAM-SHA-1/-256/-512 and their -PLUS variants
// (RFC 5802, RFC 7677) with the tls-exporter (RFC 9266) and
// tls-server-end-point (RFC 5929 §4) channel bindings advertised per
// XEP-0440, PLAIN (RFC 4616) over encrypted streams, derivation of stored
// SCRAM keys from passwords (RFC 5802 §3, PRECIS OpaqueString, RFC 8265 §4.2)
// and the creation of accounts and changes of password with them
// (CreateAccount, SetPassword), and throttling of failed logins.
//
// The package never sees XML streams or base64: the caller (the c2s SASL
// feature) decodes <auth/> and <response/>, feeds the bytes to a [Server] and
// wraps what it returns in <challenge/>, <success/> or [Failure.Bytes].
package auth
