// Package s2s is federation (RFC 6120 server-to-server): streams to and
// from other XMPP servers, started as the module "s2s" on the router's
// remote-domain address (router.Remote).
//
//   - Outgoing: one authenticated stream per (local domain, remote
//     domain) pair, found through DNS SRV (_xmpps-server, direct TLS
//     with ALPN xmpp-server, XEP-0368; _xmpp-server, STARTTLS; s2s/resolve),
//     shared by every user; stanzas wait in a bounded queue while it is
//     set up and bounce with remote-server-not-found or
//     remote-server-timeout when it fails (never errors or results);
//     after a failure the domain is bounced at once for a backoff.
//     Whitespace keepalives (RFC 6120 §4.6.1), idle streams closed.
//   - Incoming: [s2s] listen (STARTTLS) and direct_tls_listen; the
//     header's to/from checked (host-unknown, invalid-from), TLS required
//     by default (RFC 7590), stanzas accepted only for the domain pairs
//     the stream authenticated.
//   - Authentication: SASL EXTERNAL (XEP-0178) when the certificate
//     validates for the domain (RFC 6125, s2s/peercert: any extended key
//     usage, so that serverAuth-only certificates work as client
//     certificates), else server dialback (XEP-0220), unless
//     require_valid_certificates; several domains per incoming stream.
//   - Incoming stanzas are routed by a queue per local recipient, so one
//     slow delivery (offline storage, a vCard read) does not stall the
//     other users of the stream.
//
// README.md beside this file explains the choices.
package s2s
