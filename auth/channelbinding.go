package auth

import (
	"crypto"
	_ "crypto/sha256" // hashes for tls-server-end-point
	_ "crypto/sha512"
	"crypto/tls"
	"crypto/x509"
)

// Channel-binding type names (XEP-0440, RFC 9266 §2, RFC 5929 §4).
const (
	TLSExporter       = "tls-exporter"
	TLSServerEndPoint = "tls-server-end-point"
)

// exporterLabel is the TLS exporter label of tls-exporter (RFC 9266 §2).
const exporterLabel = "EXPORTER-Channel-Binding"

// ChannelBinding holds the channel-binding data of one TLS connection; a nil
// field means that type is unavailable.
type ChannelBinding struct {
	Exporter []byte // RFC 9266 tls-exporter: only on TLS 1.3
	EndPoint []byte // RFC 5929 §4 tls-server-end-point
}

// ChannelBindingFromTLS derives the channel bindings from the server side of
// a completed handshake; leaf is the certificate the server presented (nil
// if unknown). tls-exporter is offered only on TLS 1.3 (RFC 9266 §3);
// tls-server-end-point hashes leaf.Raw per RFC 5929 §4.1.
func ChannelBindingFromTLS(cs tls.ConnectionState, leaf *x509.Certificate) ChannelBinding {
	var cb ChannelBinding
	if !cs.HandshakeComplete {
		return cb
	}
	if cs.Version == tls.VersionTLS13 {
		if ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32); err == nil && len(ekm) == 32 {
			cb.Exporter = ekm
		}
	}
	if leaf != nil && len(leaf.Raw) > 0 {
		cb.EndPoint = endPointHash(leaf)
	}
	return cb
}

// endPointHash hashes the certificate with the hash of its signature
// algorithm, SHA-256 when that is MD5 or SHA-1 (RFC 5929 §4.1). Ed25519,
// which RFC 5929 leaves undefined, uses SHA-512 as OpenSSL's
// X509_digest_sig does, so that OpenSSL-based clients agree. It returns nil
// for algorithms without a defined hash.
func endPointHash(cert *x509.Certificate) []byte {
	var h crypto.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		h = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512, x509.PureEd25519:
		h = crypto.SHA512
	default:
		return nil
	}
	d := h.New()
	d.Write(cert.Raw)
	return d.Sum(nil)
}

// Types returns the XEP-0440 names of the available channel-binding types,
// tls-exporter first.
func (cb ChannelBinding) Types() []string {
	var t []string
	if cb.Exporter != nil {
		t = append(t, TLSExporter)
	}
	if cb.EndPoint != nil {
		t = append(t, TLSServerEndPoint)
	}
	return t
}

// data returns the channel-binding data of a type, nil if unavailable.
func (cb ChannelBinding) data(typ string) []byte {
	switch typ {
	case TLSExporter:
		return cb.Exporter
	case TLSServerEndPoint:
		return cb.EndPoint
	}
	return nil
}

func (cb ChannelBinding) any() bool { return cb.Exporter != nil || cb.EndPoint != nil }
