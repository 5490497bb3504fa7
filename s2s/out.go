package s2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/starling-xmpp/starling/s2s/resolve"
	"github.com/starling-xmpp/starling/stream"
)

// outInfo is what an outgoing negotiation established.
type outInfo struct {
	method   string // "EXTERNAL" or "dialback"
	maxBytes int    // the peer's XEP-0478 max-bytes
	bidi     bool   // the stream carries the peer's stanzas too (XEP-0288)
}

// outStream is an outgoing stream being negotiated.
type outStream struct {
	f  *Federation
	p  pair
	c  *conn
	id string // the peer's stream id, of the latest header
	fs features
	// opened: the peer sent a stream header (for the bounce condition).
	opened bool
	bidi   bool // bidirectional stream asked for (XEP-0288)
	// stop ends the negotiation's bound (a deadline set on the
	// connection when the context ends); false if it has fired.
	stop func() bool
}

// open resolves and connects to p.remote and negotiates the stream up to
// the features after TLS (RFC 6120 §4.3, §5): everything both an
// authenticating stream and a dialback verification need.
func (f *Federation) open(ctx context.Context, p pair) (*outStream, error) {
	s := f.settings()
	// A direct TLS target (XEP-0368) counts as reached once TLS is up;
	// if it fails the next target is tried.
	handshake := func(nc net.Conn, t resolve.Target) (net.Conn, error) {
		if !t.DirectTLS {
			return nc, nil
		}
		tc := tls.Client(nc, f.clientTLS(p, true))
		nc.SetDeadline(time.Now().Add(s.ConnectTimeout.Duration))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS failed: %w", err)
		}
		nc.SetDeadline(time.Time{})
		return tc, nil
	}
	nc, _, err := f.res.DialWith(ctx, p.remote, s.ConnectTimeout.Duration, handshake)
	if err != nil {
		return nil, &failure{reason: err.Error()}
	}
	o := &outStream{f: f, p: p, c: newConn(nc, f.limits())}
	if tc, ok := nc.(*tls.Conn); ok {
		o.c.useTLS(tc)
	}
	// The whole negotiation, the caller's part too, is bounded: the
	// context ends it.
	o.stop = context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	if err := o.restart(); err != nil {
		nc.Close()
		return nil, o.wrap(ctx, err)
	}
	if !o.c.secure {
		switch {
		case o.fs.startTLS:
			if err := o.startTLS(); err != nil {
				nc.Close()
				return nil, o.wrap(ctx, err)
			}
		case f.mustEncrypt(p.remote):
			o.c.fail(&stream.Error{Condition: stream.PolicyViolation, Text: "TLS is required"})
			return nil, failf(true, "%s does not offer TLS, which is required", p.remote)
		}
	}
	if o.c.secure {
		if err := f.verify(o.c, p.remote); err != nil && s.RequireValidCertificates {
			o.c.fail(&stream.Error{Condition: stream.PolicyViolation, Text: "certificate not valid for " + p.remote})
			return nil, failf(true, "%v", err)
		}
	}
	return o, nil
}

// wrap turns an error of the negotiation into a failure, a deadline into
// a timeout.
func (o *outStream) wrap(ctx context.Context, err error) error {
	var fe *failure
	if errors.As(err, &fe) {
		return fe
	}
	if ctx.Err() != nil {
		return failf(o.opened, "%s did not complete the stream negotiation in time", o.p.remote)
	}
	return failf(o.opened, "%s: %v", o.p.remote, err)
}

// restart sends a stream header and reads the peer's header and features
// (RFC 6120 §4.3.3).
func (o *outStream) restart() error {
	if err := o.c.write(header(o.p.local, o.p.remote, "")); err != nil {
		return err
	}
	h, err := o.c.r.ReadHeader()
	if err != nil {
		return err
	}
	o.opened = true
	switch {
	case h.NS != nsServer:
		o.c.fail(&stream.Error{Condition: stream.InvalidNamespace})
		return failf(true, "%s answered with the content namespace %q, not %s", o.p.remote, h.NS, nsServer)
	case h.ID == "":
		// Dialback keys are bound to the stream id (XEP-0220 §2.1.1).
		o.c.fail(&stream.Error{Condition: stream.InvalidXML, Text: "missing stream id"})
		return failf(true, "%s sent no stream id", o.p.remote)
	}
	o.id = h.ID
	el, err := o.c.r.Next()
	if err != nil {
		return err
	}
	if err := streamError(el); err != nil {
		return failf(true, "%s: %v", o.p.remote, err)
	}
	if el.Name.Space != stream.NS || el.Name.Local != "features" {
		o.c.fail(&stream.Error{Condition: stream.UnsupportedStanzaType})
		return failf(true, "%s sent <%s/> instead of its stream features", o.p.remote, el.Name.Local)
	}
	o.fs = parseFeatures(el.Raw)
	return nil
}

// streamError returns a <stream:error/> as an error.
func streamError(el *stream.Element) error {
	if el.Name.Space == stream.NS && el.Name.Local == "error" {
		return errors.New("stream error " + streamErrorText(el.Raw))
	}
	return nil
}

// startTLS negotiates STARTTLS (RFC 6120 §5.4) and restarts the stream.
func (o *outStream) startTLS() error {
	if err := o.c.writeString("<starttls xmlns='" + nsTLS + "'/>"); err != nil {
		return err
	}
	el, err := o.c.r.Next()
	if err != nil {
		return err
	}
	if el.Name.Space != nsTLS || el.Name.Local != "proceed" {
		return failf(true, "%s refused STARTTLS", o.p.remote)
	}
	if err := o.c.upgrade(tls.Client(o.c.nc, o.f.clientTLS(o.p, false))); err != nil {
		return failf(true, "TLS with %s failed: %v", o.p.remote, err)
	}
	return o.restart()
}

// connectOut sets up the authenticated outgoing stream of p: SASL
// EXTERNAL when offered (XEP-0178 §3), else, or when it fails, dialback
// (XEP-0220 §2.1; falling back is what XEP-0178 §4 now describes).
func (f *Federation) connectOut(p pair) (*conn, outInfo, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.settings().NegotiationTimeout.Duration)
	defer cancel()
	o, err := f.open(ctx, p)
	if err != nil {
		return nil, outInfo{}, err
	}
	info, err := o.authenticate()
	if !o.stop() || err != nil {
		if err == nil {
			err = errors.New("negotiation timed out")
		}
		o.c.close() // RFC 6120 §4.4: the stream ends with its close tag
		return nil, outInfo{}, o.wrap(ctx, err)
	}
	o.c.nc.SetDeadline(time.Time{})
	return o.c, info, nil
}

func (o *outStream) authenticate() (outInfo, error) {
	info, err := o.authenticateAs()
	info.bidi = o.bidi
	return info, err
}

func (o *outStream) authenticateAs() (outInfo, error) {
	// XEP-0288 §2.2: asked for before authentication, on a stream whose
	// peer proved its domain by its certificate, so that its stanzas
	// may come back this way.
	if o.fs.bidi && o.c.secure && o.c.certErr == nil && o.f.settings().Bidi {
		if err := o.c.writeString("<bidi xmlns='" + nsBidi + "'/>"); err != nil {
			return outInfo{}, err
		}
		o.bidi = true
	}
	var saslErr string
	if o.fs.external {
		ok, cond, err := o.external()
		if err != nil {
			return outInfo{}, err
		}
		if ok {
			// RFC 6120 §6.4.6: the stream restarts after success.
			if err := o.restart(); err != nil {
				return outInfo{}, err
			}
			return outInfo{method: "EXTERNAL", maxBytes: o.fs.maxBytes}, nil
		}
		saslErr = cond
	}
	if !o.fs.dialback {
		if saslErr != "" {
			return outInfo{}, failf(true, "%s refused our certificate (SASL EXTERNAL: %s) and offers no dialback", o.p.remote, saslErr)
		}
		return outInfo{}, failf(true, "%s offers neither SASL EXTERNAL (it does not accept our certificate for %s) nor dialback", o.p.remote, o.p.local)
	}
	if o.f.settings().RequireValidCertificates {
		return outInfo{}, failf(true, "%s does not accept our certificate for %s (SASL EXTERNAL not offered), and dialback is off (require_valid_certificates)", o.p.remote, o.p.local)
	}
	if err := o.dialback(); err != nil {
		return outInfo{}, err
	}
	return outInfo{method: "dialback", maxBytes: o.fs.maxBytes}, nil
}

// external authenticates with SASL EXTERNAL, the authorization identity
// being the local domain (XEP-0178 §3, RFC 6120 §6.4.2).
func (o *outStream) external() (ok bool, condition string, err error) {
	if err := o.c.writeString("<auth xmlns='" + nsSASL + "' mechanism='EXTERNAL'>" + b64(o.p.local) + "</auth>"); err != nil {
		return false, "", err
	}
	el, err := o.c.r.Next()
	if err != nil {
		return false, "", err
	}
	switch {
	case el.Name.Space == nsSASL && el.Name.Local == "success":
		return true, "", nil
	case el.Name.Space == nsSASL && el.Name.Local == "failure":
		cond := "failure"
		for c := range childrenOf(el) {
			cond = c
			break
		}
		return false, cond, nil
	}
	if err := streamError(el); err != nil {
		return false, "", failf(true, "%s: %v", o.p.remote, err)
	}
	return false, "", failf(true, "%s answered SASL EXTERNAL with <%s/>", o.p.remote, el.Name.Local)
}

// dialback asks the peer to verify our key with our authoritative server,
// that is us (XEP-0220 §2.1), and waits for its verdict.
func (o *outStream) dialback() error {
	key := dialbackKey(o.f.secret, o.p.remote, o.p.local, o.id)
	if err := o.c.write([]byte("<db:result xmlns:db='" + nsDialback + "' from='" + esc(o.p.local) + "' to='" + esc(o.p.remote) + "'>" + key + "</db:result>")); err != nil {
		return err
	}
	for {
		el, err := o.c.r.Next()
		if err != nil {
			return err
		}
		if err := streamError(el); err != nil {
			return failf(true, "%s: %v", o.p.remote, err)
		}
		if el.Name.Space != nsDialback || el.Name.Local != "result" || el.AttrValue("from") != o.p.remote || el.AttrValue("to") != o.p.local {
			continue
		}
		switch el.AttrValue("type") {
		case "valid":
			return nil
		case "invalid":
			fe := failf(true, "%s refused our dialback key", o.p.remote)
			fe.refused = true
			return fe
		default:
			return failf(true, "%s could not verify our dialback key: %s", o.p.remote, errorCondition(el.Raw))
		}
	}
}

// verifyKey asks the authoritative server of p.remote whether key is the
// one it gave for the stream id on a stream from it to p.local
// (XEP-0220 §2.2, <db:verify/>), on a stream of its own.
func (f *Federation) verifyKey(p pair, id, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.settings().NegotiationTimeout.Duration)
	defer cancel()
	o, err := f.open(ctx, p)
	if err != nil {
		return false, err
	}
	defer o.c.nc.Close()
	defer o.stop()
	if err := o.c.write([]byte("<db:verify xmlns:db='" + nsDialback + "' from='" + esc(p.local) + "' to='" + esc(p.remote) + "' id='" + esc(id) + "'>" + esc(key) + "</db:verify>")); err != nil {
		return false, o.wrap(ctx, err)
	}
	for {
		el, err := o.c.r.Next()
		if err != nil {
			return false, o.wrap(ctx, err)
		}
		if err := streamError(el); err != nil {
			return false, failf(true, "%s: %v", p.remote, err)
		}
		if el.Name.Space != nsDialback || el.Name.Local != "verify" || el.AttrValue("id") != id {
			continue
		}
		o.c.close()
		switch el.AttrValue("type") {
		case "valid":
			return true, nil
		case "invalid":
			return false, nil
		default:
			return false, failf(true, "%s could not verify: %s", p.remote, errorCondition(el.Raw))
		}
	}
}
