package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/starling-xmpp/starling/storage"
)

const testPassword = "pencil"

// testKeys are the keys of testPassword, derived once.
var testKeys = sync.OnceValue(func() map[storage.Hash]storage.SCRAMKeys {
	k, err := DeriveKeys(testPassword, DefaultIterations)
	if err != nil {
		panic(err)
	}
	return k
})

var errStorageDown = errors.New("storage: connection refused")

// testLookup knows "user" (all families), "only1" (SHA-1 keys only),
// "nokeys" (an empty map) and "broken" (a storage outage).
func testLookup(ctx context.Context, username string) (map[storage.Hash]storage.SCRAMKeys, error) {
	switch username {
	case "user":
		return testKeys(), nil
	case "only1":
		return map[storage.Hash]storage.SCRAMKeys{storage.SHA1: testKeys()[storage.SHA1]}, nil
	case "nokeys":
		return nil, nil
	case "broken":
		return nil, fmt.Errorf("lookup: %w", errStorageDown)
	}
	return nil, fmt.Errorf("lookup %q: %w", username, storage.ErrNotFound)
}

// failureOf returns err as a *Failure, failing the test otherwise.
func failureOf(t testing.TB, err error) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *Failure", err, err)
	}
	return f
}

// testCert is a self-signed ECDSA P-256 certificate (signature
// ECDSAWithSHA256, so tls-server-end-point hashes with SHA-256).
var testCert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.org"},
		DNSNames:     []string{"example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
})

// tlsPair runs a real TLS handshake of the given version over net.Pipe and
// returns the server's channel bindings and the client's connection state.
func tlsPair(t testing.TB, version uint16) (ChannelBinding, tls.ConnectionState) {
	t.Helper()
	cert := testCert()
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	srv := tls.Server(c1, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   version, MaxVersion: version,
	})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	cli := tls.Client(c2, &tls.Config{
		RootCAs: pool, ServerName: "example.org",
		MinVersion: version, MaxVersion: version,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(ctx) }()
	if err := cli.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	scs, ccs := srv.ConnectionState(), cli.ConnectionState()
	if scs.Version != version {
		t.Fatalf("negotiated %x, want %x", scs.Version, version)
	}
	return ChannelBindingFromTLS(scs, cert.Leaf), ccs
}

// runMellium drives srv with a mellium.im/sasl client until the exchange
// ends. It returns the server's error, or the client's if it rejects the
// server (for example a wrong v=).
func runMellium(t testing.TB, srv *Server, mech sasl.Mechanism, user, pass, authzid string, opts ...sasl.Option) error {
	t.Helper()
	opts = append(opts, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(pass), []byte(authzid)
	}))
	c := sasl.NewClient(mech, opts...)
	_, resp, err := c.Step(nil)
	if err != nil {
		t.Fatalf("client start: %v", err)
	}
	ctx := context.Background()
	for range 5 {
		out, done, err := srv.Step(ctx, resp)
		if err != nil {
			return err
		}
		if done {
			if len(out) > 0 {
				if _, _, err := c.Step(out); err != nil {
					return fmt.Errorf("client rejected server-final: %w", err)
				}
			}
			return nil
		}
		if _, resp, err = c.Step(out); err != nil {
			return fmt.Errorf("client step: %w", err)
		}
	}
	t.Fatal("exchange did not finish")
	return nil
}

// scramClient is an independent RFC 5802 client for what mellium lacks:
// SHA-512, tls-server-end-point, hand-made GS2 headers.
type scramClient struct {
	h        func() hash.Hash
	user     string // already saslname-encoded
	password string
	gs2      string // GS2 header, e.g. "n,," or "p=tls-exporter,,"
	cbData   []byte
	cnonce   string

	first     string // client-first-message-bare
	serverSig []byte

	// cached client-side keys, for the benchmark
	salted []byte
}

func (c *scramClient) clientFirst() []byte {
	if c.cnonce == "" {
		c.cnonce = newNonce()
	}
	c.first = "n=" + c.user + ",r=" + c.cnonce
	return []byte(c.gs2 + c.first)
}

// parseServerFirst returns r, s and i of a server-first message.
func parseServerFirst(sf string) (nonce string, salt []byte, iter int, err error) {
	parts := strings.Split(sf, ",")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "r=") || !strings.HasPrefix(parts[1], "s=") || !strings.HasPrefix(parts[2], "i=") {
		return "", nil, 0, fmt.Errorf("bad server-first %q", sf)
	}
	if salt, err = base64.StdEncoding.DecodeString(parts[1][2:]); err != nil {
		return "", nil, 0, err
	}
	if iter, err = strconv.Atoi(parts[2][2:]); err != nil {
		return "", nil, 0, err
	}
	return parts[0][2:], salt, iter, nil
}

// clientFinal answers a server-first message.
func (c *scramClient) clientFinal(serverFirst []byte) ([]byte, error) {
	nonce, salt, iter, err := parseServerFirst(string(serverFirst))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(nonce, c.cnonce) {
		return nil, errors.New("server nonce does not extend the client nonce")
	}
	if c.salted == nil {
		if c.salted, err = pbkdf2.Key(c.h, c.password, salt, iter, c.h().Size()); err != nil {
			return nil, err
		}
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) + ",r=" + nonce
	authMessage := []byte(c.first + "," + string(serverFirst) + "," + withoutProof)
	clientKey := hmacSum(c.h, c.salted, []byte("Client Key"))
	h := c.h()
	h.Write(clientKey)
	sig := hmacSum(c.h, h.Sum(nil), authMessage)
	proof := make([]byte, len(sig))
	subtle.XORBytes(proof, clientKey, sig)
	c.serverSig = hmacSum(c.h, hmacSum(c.h, c.salted, []byte("Server Key")), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (c *scramClient) checkServerFinal(sf []byte) error {
	if string(sf) != "v="+base64.StdEncoding.EncodeToString(c.serverSig) {
		return fmt.Errorf("server-final %q does not prove the server knows the key", sf)
	}
	return nil
}

// run performs a whole exchange with the client.
func (c *scramClient) run(srv *Server) error {
	ctx := context.Background()
	sf, done, err := srv.Step(ctx, c.clientFirst())
	if err != nil {
		return err
	}
	if done {
		return errors.New("done after client-first")
	}
	cf, err := c.clientFinal(sf)
	if err != nil {
		return err
	}
	out, done, err := srv.Step(ctx, cf)
	if err != nil {
		return err
	}
	if !done {
		return errors.New("not done after client-final")
	}
	return c.checkServerFinal(out)
}

// endPointOf computes tls-server-end-point from the client's view of the
// server certificate, independently of endPointHash (RFC 5929 §4.1; the
// test certificate is signed with ECDSA-SHA256).
func endPointOf(t testing.TB, cs tls.ConnectionState) []byte {
	t.Helper()
	leaf := cs.PeerCertificates[0]
	if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Fatalf("unexpected signature algorithm %v", leaf.SignatureAlgorithm)
	}
	sum := sha256.Sum256(leaf.Raw)
	return sum[:]
}
