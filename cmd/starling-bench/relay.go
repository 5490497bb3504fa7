package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The relay: the floor under every figure (issue 18). `starling-bench
// relay` is a server process that parses nothing: it accepts TCP
// connections, reads a fixed-size first frame in plaintext, and then
// either
//
//   - plays a login's exchange by its byte counts alone (mode 'L'): the
//     frame carries the counts, recorded from a real login
//     (result.Exchange); for each plaintext turn it reads the client's
//     bytes and answers with as many as the server sent, then makes a full
//     TLS handshake (server side, the same certificate as the servers),
//     then does the same for each turn inside TLS, and closes; or
//   - pairs the connection with the other one that sent the same token
//     (mode 'P'), makes a TLS handshake with each, and copies what
//     either sends to the other, decrypting and encrypting as a server
//     does, until either closes.
//
// So its CPU per login or per message is what the syscalls, TCP and
// crypto of the same bytes and round trips cost on this machine, and a
// server's figure divided by it is the cost of its parsing, routing and
// storage on top. --relay makes the login and messages scenarios drive it.

const (
	relayMagic     = "SBRELAY1"
	relayFrameSize = 256
	relayModeLogin = 'L'
	relayModePair  = 'P'
	// maxTurns is how many turns a frame holds, plaintext and TLS.
	maxTurns = (relayFrameSize - 32) / 8
)

// turn is one round trip of a login: bytes the client wrote, then bytes
// the server wrote back before the client wrote again.
type turn struct{ C, S int }

// exchange is a login's byte counts, application data only: the turns in
// plaintext (before STARTTLS's handshake) and those inside TLS.
type exchange struct {
	mu         sync.Mutex
	plain, tls []turn
	inTLS      bool
}

func (x *exchange) wrote(n int, inTLS bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := x.turns(inTLS)
	if n <= 0 || t == nil {
		return
	}
	if len(*t) == 0 || (*t)[len(*t)-1].S > 0 {
		*t = append(*t, turn{})
	}
	(*t)[len(*t)-1].C += n
}

func (x *exchange) read(n int, inTLS bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := x.turns(inTLS)
	if n <= 0 || t == nil {
		return
	}
	if len(*t) == 0 {
		*t = append(*t, turn{})
	}
	(*t)[len(*t)-1].S += n
}

// turns is the list bytes in that phase go to; nil for plaintext bytes
// once TLS has started (the handshake's own bytes are not counted).
func (x *exchange) turns(inTLS bool) *[]turn {
	switch {
	case inTLS:
		x.inTLS = true
		return &x.tls
	case x.inTLS:
		return nil
	}
	return &x.plain
}

// String is the exchange as --script takes it: C/S pairs separated by
// commas, the plaintext turns, "|", the TLS turns.
func (x *exchange) String() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return formatTurns(x.plain) + "|" + formatTurns(x.tls)
}

func formatTurns(ts []turn) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.Itoa(t.C) + "/" + strconv.Itoa(t.S)
	}
	return strings.Join(parts, ",")
}

// parseScript reads what String writes.
func parseScript(s string) (plain, inTLS []turn, err error) {
	p, t, ok := strings.Cut(s, "|")
	if !ok {
		return nil, nil, fmt.Errorf("--script %q: want PLAIN|TLS, each C/S,C/S,…", s)
	}
	parse := func(s string) ([]turn, error) {
		var out []turn
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		for _, f := range strings.Split(s, ",") {
			cs, ss, ok := strings.Cut(strings.TrimSpace(f), "/")
			c, err1 := strconv.Atoi(cs)
			n, err2 := strconv.Atoi(ss)
			if !ok || err1 != nil || err2 != nil || c < 0 || n < 0 || c > 1<<24 || n > 1<<24 {
				return nil, fmt.Errorf("--script: bad turn %q (want CLIENT/SERVER byte counts)", f)
			}
			out = append(out, turn{c, n})
		}
		return out, nil
	}
	if plain, err = parse(p); err != nil {
		return nil, nil, err
	}
	if inTLS, err = parse(t); err != nil {
		return nil, nil, err
	}
	if len(inTLS) == 0 {
		return nil, nil, errors.New("--script: no turns inside TLS")
	}
	if len(plain)+len(inTLS) > maxTurns {
		return nil, nil, fmt.Errorf("--script: %d turns, at most %d", len(plain)+len(inTLS), maxTurns)
	}
	return plain, inTLS, nil
}

// countingConn counts what goes through it into an exchange, as
// plaintext or TLS application data.
type countingConn struct {
	net.Conn
	x     *exchange
	inTLS bool
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.x.read(n, c.inTLS)
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.x.wrote(n, c.inTLS)
	return n, err
}

// relayFrame is the first frame a client sends the relay.
type relayFrame struct {
	mode       byte
	token      [16]byte // mode 'P': the pair's
	plain, tls []turn   // mode 'L'
}

func (f *relayFrame) marshal() []byte {
	b := make([]byte, relayFrameSize)
	copy(b, relayMagic)
	b[8], b[9], b[10] = f.mode, byte(len(f.plain)), byte(len(f.tls))
	copy(b[11:27], f.token[:])
	o := 32
	for _, t := range append(append([]turn(nil), f.plain...), f.tls...) {
		binary.BigEndian.PutUint32(b[o:], uint32(t.C))
		binary.BigEndian.PutUint32(b[o+4:], uint32(t.S))
		o += 8
	}
	return b
}

func parseRelayFrame(b []byte) (*relayFrame, error) {
	if len(b) != relayFrameSize || string(b[:8]) != relayMagic {
		return nil, errors.New("not a starling-bench relay frame")
	}
	f := &relayFrame{mode: b[8]}
	np, nt := int(b[9]), int(b[10])
	if np+nt > maxTurns || (f.mode != relayModeLogin && f.mode != relayModePair) {
		return nil, errors.New("bad relay frame")
	}
	copy(f.token[:], b[11:27])
	o := 32
	for i := range np + nt {
		t := turn{int(binary.BigEndian.Uint32(b[o:])), int(binary.BigEndian.Uint32(b[o+4:]))}
		if i < np {
			f.plain = append(f.plain, t)
		} else {
			f.tls = append(f.tls, t)
		}
		o += 8
	}
	return f, nil
}

// filler is what the relay and its clients write: the bytes do not
// matter, their number does.
var filler = bytes.Repeat([]byte{' '}, 64<<10)

func writeN(w io.Writer, n int) error {
	for n > 0 {
		k := min(n, len(filler))
		if _, err := w.Write(filler[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func readN(r io.Reader, buf []byte, n int) error {
	for n > 0 {
		k, err := io.ReadFull(r, buf[:min(n, len(buf))])
		n -= k
		if err != nil {
			return err
		}
	}
	return nil
}

// playTurns is one side of turns: the client writes each turn's C bytes
// and reads its S bytes; the relay reads C and writes S. after, if not
// nil, runs after turn i.
func playTurns(rw io.ReadWriter, ts []turn, client bool, after func(i int)) error {
	buf := make([]byte, 16<<10)
	for i, t := range ts {
		var err error
		if client {
			if err = writeN(rw, t.C); err == nil {
				err = readN(rw, buf, t.S)
			}
		} else {
			if err = readN(rw, buf, t.C); err == nil {
				err = writeN(rw, t.S)
			}
		}
		if err != nil {
			return fmt.Errorf("turn %d: %w", i+1, err)
		}
		if after != nil {
			after(i)
		}
	}
	return nil
}

// --- the relay server ---

// relayServer serves relay connections on a listener.
type relayServer struct {
	tls     *tls.Config
	timeout time.Duration
	mu      sync.Mutex
	waiting map[[16]byte]chan net.Conn // mode 'P': the first of a pair, waiting
	errs    io.Writer
}

func newRelayServer(cert tls.Certificate, errs io.Writer) *relayServer {
	return &relayServer{
		// Session tickets are on (Go's default), with one key for every
		// connection, so a client that resumes does.
		tls:     &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		timeout: time.Minute,
		waiting: map[[16]byte]chan net.Conn{},
		errs:    errs,
	}
}

func (s *relayServer) serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go s.handle(c)
	}
}

func (s *relayServer) handle(c net.Conn) {
	frame := make([]byte, relayFrameSize)
	c.SetDeadline(time.Now().Add(s.timeout))
	if _, err := io.ReadFull(c, frame); err != nil {
		c.Close()
		return
	}
	f, err := parseRelayFrame(frame)
	if err != nil {
		fmt.Fprintln(s.errs, "relay:", err)
		c.Close()
		return
	}
	switch f.mode {
	case relayModeLogin:
		defer c.Close()
		if err := playTurns(c, f.plain, false, nil); err != nil {
			return
		}
		tc := tls.Server(c, s.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		if err := playTurns(tc, f.tls, false, nil); err != nil {
			return
		}
		tc.Close() // close_notify, then FIN, as a server closing its stream
	case relayModePair:
		tc := tls.Server(c, s.tls)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
		c.SetDeadline(time.Time{})
		s.pair(f.token, tc)
	}
}

// pair waits for the other connection with token (or hands c to it, if
// it is waiting), then copies between the two until either ends.
func (s *relayServer) pair(token [16]byte, c net.Conn) {
	s.mu.Lock()
	ch, ok := s.waiting[token]
	if ok {
		delete(s.waiting, token)
		s.mu.Unlock()
		ch <- c
		return // the waiting side copies both ways
	}
	ch = make(chan net.Conn, 1)
	s.waiting[token] = ch
	s.mu.Unlock()
	var other net.Conn
	select {
	case other = <-ch:
	case <-time.After(s.timeout):
		s.mu.Lock()
		if s.waiting[token] == ch {
			delete(s.waiting, token)
		}
		s.mu.Unlock()
		select {
		case other = <-ch: // it came after all
		default:
			c.Close()
			return
		}
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(other, c)
	go cp(c, other)
	<-done
	c.Close()
	other.Close()
	<-done
}

// runRelay is `starling-bench relay`: it listens until interrupted.
func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("starling-bench relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:5222", "`host:port` to listen on")
	certFile := fs.String("cert", "", "PEM `file` of the certificate chain to serve (the servers' own)")
	keyFile := fs.String("key", "", "PEM `file` of its private key")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: starling-bench relay --listen HOST:PORT --cert FILE --key FILE")
		fmt.Fprintln(stderr, "\nA bare TLS relay that parses nothing, the floor for --relay scenarios (login, messages).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *certFile == "" || *keyFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintln(stderr, "starling-bench relay:", err)
		return 1
	}
	raiseFileLimit()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "starling-bench relay:", err)
		return 1
	}
	fmt.Fprintf(stdout, "relay listening on %s (pid %d)\n", ln.Addr(), os.Getpid())
	if err := newRelayServer(cert, stderr).serve(ctx, ln); err != nil {
		fmt.Fprintln(stderr, "starling-bench relay:", err)
		return 1
	}
	return 0
}

// --- the relay's clients ---

// relayDial connects to the relay at --addr and sends frame, followed by
// first (the first plaintext turn's bytes, in the same write).
func relayDial(ctx context.Context, cfg *config, f *relayFrame, first int) (net.Conn, error) {
	d := net.Dialer{Timeout: cfg.timeout}
	if cfg.source != nil {
		d.LocalAddr = &net.TCPAddr{IP: cfg.source()}
	}
	nc, err := d.DialContext(ctx, "tcp", cfg.addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(cfg.timeout))
	b := append(f.marshal(), filler[:first]...)
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return nil, err
	}
	return nc, nil
}

// relayLogin plays one login's exchange with the relay: the plaintext
// turns, a TLS handshake, the turns inside TLS, then reads until the relay
// closes. It returns the time to the end of the next-to-last TLS turn
// (a login's latency ends at the roster answer, before the stream's
// close, which is the last turn) and whether TLS resumed a session.
func relayLogin(ctx context.Context, cfg *config, plain, inTLS []turn) (time.Duration, bool, error) {
	t0 := time.Now()
	first := 0
	if len(plain) > 0 {
		first = plain[0].C
	}
	nc, err := relayDial(ctx, cfg, &relayFrame{mode: relayModeLogin, plain: plain, tls: inTLS}, first)
	if err != nil {
		return 0, false, err
	}
	defer nc.Close()
	if len(plain) > 0 {
		rest := append([]turn{{0, plain[0].S}}, plain[1:]...)
		if err := playTurns(nc, rest, true, nil); err != nil {
			return 0, false, fmt.Errorf("plaintext %w", err)
		}
	}
	tc := tls.Client(nc, cfg.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		return 0, false, fmt.Errorf("TLS handshake: %w", err)
	}
	var lat time.Duration
	if err := playTurns(tc, inTLS, true, func(i int) {
		if i == len(inTLS)-2 || len(inTLS) == 1 {
			lat = time.Since(t0)
		}
	}); err != nil {
		return 0, false, fmt.Errorf("TLS %w", err)
	}
	// Then to the relay's close, which must have sent nothing more.
	if extra, err := io.Copy(io.Discard, tc); err != nil || extra > 0 {
		return 0, false, fmt.Errorf("after the last turn, %d bytes more from the relay (%v)", extra, err)
	}
	return lat, tc.ConnectionState().DidResume, nil
}

// relayStreamHeader is what each side of a relayed pair sends first, as
// a client opening its stream does: the partner reads it as the
// server's stream header.
func relayStreamHeader(cfg *config) string {
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + cfg.domain + "' version='1.0'>"
}

// relayPairs opens --n pairs of connections through the relay, session
// 2k paired with 2k+1, each with the reader handler(i, s) builds, as
// openSessions does for sessions on a server. Session i's JID is the one
// its account would be bound to (resource "bench"), so that what the
// partner writes to it is byte for byte what it writes through a server.
func relayPairs(ctx context.Context, cfg *config, r *result, np int, handler func(i int, s *session) func([]byte) bool) []*session {
	sess := make([]*session, np)
	var mu sync.Mutex
	parallel(ctx, np/2, cfg.concurrency, func(k int) error {
		var f relayFrame
		f.mode = relayModePair
		rand.Read(f.token[:])
		var cs [2]*conn
		var err error
		for j := range 2 {
			var nc net.Conn
			if nc, err = relayDial(ctx, cfg, &f, 0); err != nil {
				break
			}
			tc := tls.Client(nc, cfg.tlsConfig())
			if err = tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				break
			}
			cs[j] = &conn{cfg: cfg, c: tc, raw: nc, sc: newScanner(tc), tls: tlsState(tc),
				jid: cfg.account(2*k+j+1) + "@" + cfg.domain + "/bench"}
		}
		for j := 0; err == nil && j < 2; j++ {
			err = cs[j].send(relayStreamHeader(cfg))
		}
		for j := 0; err == nil && j < 2; j++ {
			var kind int
			if _, kind, err = cs[j].sc.next(); err == nil && kind != kindHeader {
				err = errors.New("the partner's stream header did not come first")
			}
		}
		if err != nil {
			for _, c := range cs {
				if c != nil {
					c.c.Close()
				}
			}
			mu.Lock()
			r.fail(fmt.Errorf("pair %d: %w", k, err))
			mu.Unlock()
			return err
		}
		for j, c := range cs {
			i := 2*k + j
			c.c.SetDeadline(time.Time{})
			s := &session{conn: c, done: make(chan struct{}), rostered: make(chan struct{})}
			var h func([]byte) bool
			if handler != nil {
				h = handler(i, s)
			}
			go s.serve(h)
			sess[i] = s
		}
		return nil
	})
	return sess
}
