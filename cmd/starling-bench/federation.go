package main

import (
	"context"
	"fmt"
	"time"
)

// runFederation measures messages between two federating servers: --n
// senders logged in to server A (--addr, --domain) each write to its
// receiver logged in to server B (--peer-addr, --peer-domain), so that
// every message crosses a server-to-server stream. Sender i is account
// PREFIX(i+1) on A, its receiver the account of the same name on B. As in
// messages, each message is numbered, at most --window are in flight per
// sender, and each receiver checks off every message exactly once.
//
// Before the measurement every sender writes one unnumbered warm-up
// message, and the run waits until each receiver has had its own: the
// first stanza for a domain waits for the servers to negotiate their
// streams (TLS, SASL EXTERNAL or dialback, XEP-0220's check back to A),
// which is a setup cost, not the per-message cost this measures.
// Server CPU is measured on both sides: --pid for A, --peer-pid for B.
func runFederation(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	r.Delivery = &Delivery{Window: cfg.window, Batch: cfg.batch}
	n := cfg.n
	// Peers 0…n-1 are the senders, n…2n-1 their receivers.
	x := newTraffic(cfg, 2*n, func(i int) bool { return i >= n })
	senders, receivers := x.peers[:n], x.peers[n:]
	for i := range n {
		senders[i].partner, receivers[i].partner = receivers[i], senders[i]
	}
	x.wantWarm, x.warmed = int64(n), make(chan struct{})

	// The receivers first, so that every one is online and available on
	// B before the first message reaches it (its roster answer has
	// arrived, so B has processed its initial presence). The senders'
	// readers count what is bounced to them.
	recv, _ := openSessions(ctx, cfg.peer(), r, n,
		func(i int) string { return cfg.account(i + 1) },
		func(int) string { return "bench" },
		func(i int, _ *session) func([]byte) bool { return x.receive(receivers[i]) })
	defer closeAll(recv, 5*time.Second)
	for i, s := range recv {
		if s == nil {
			return r, r.err()
		}
		receivers[i].s = s
	}
	send, _ := openSessions(ctx, cfg, r, n,
		func(i int) string { return cfg.account(i + 1) },
		func(int) string { return "bench" },
		func(i int, _ *session) func([]byte) bool { return x.receive(senders[i]) })
	defer closeAll(send, 5*time.Second)
	for i, s := range send {
		if s == nil {
			return r, r.err()
		}
		senders[i].s = s
	}

	t0 := time.Now()
	if err := x.warmUp(ctx, senders); err != nil {
		r.fail(err)
		return r, r.err()
	}
	r.WarmupS = time.Since(t0).Seconds()

	stop := progress(cfg, func() string { return fmt.Sprintf("delivered: %d", x.delivered.Load()) })
	a, pa := sample(cfg.pid), sample(cfg.peerPID)
	sent, stalls, sendErr := x.run(ctx, senders)
	b, pb := sample(cfg.pid), sample(cfg.peerPID)
	stop()
	early := ended(recv)
	if early == "" {
		early = ended(send)
	}
	// Close the streams and let the readers drain whatever the servers
	// still send, so a late duplicate is counted.
	closeAll(send, 5*time.Second)
	closeAll(recv, 5*time.Second)
	lat := x.tally(r, sent)
	r.measured(a, b, r.Delivered)
	r.peerMeasured(pa, pb, r.Delivered)
	r.latencies(lat)
	r.verdict(sendErr, stalls, early)
	return r, r.err()
}

// warmUp has each sender write one unnumbered message to its receiver and
// waits until every receiver has had its own, for at most --timeout; a
// message bounced meanwhile fails it at once.
func (x *traffic) warmUp(ctx context.Context, senders []*peer) error {
	for _, p := range senders {
		if err := p.s.send("<message type='chat' to='" + xmlEscape(p.partner.s.jid) + "' id='warm'><body>" + warmBody + "</body></message>"); err != nil {
			return fmt.Errorf("warm-up: %s: %w", p.s.jid, err)
		}
	}
	t := time.NewTimer(x.cfg.timeout)
	defer t.Stop()
	select {
	case <-x.warmed:
		return nil
	case <-x.bounced:
		return fmt.Errorf("warm-up: a message was bounced: %s", *x.firstBounce.Load())
	case <-t.C:
		return fmt.Errorf("warm-up: %d of %d receivers had their message within --timeout (%v)", x.warm.Load(), len(senders), x.cfg.timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
