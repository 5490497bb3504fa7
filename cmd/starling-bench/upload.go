package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The upload scenario (XEP-0363 HTTP file upload): --n clients log in
// over XMPP; the first discovers the upload service (the server's
// disco#items, the first item whose disco#info has the feature
// urn:xmpp:http:upload:0, and its max-file-size, which must allow
// --size). Then, as a client sharing a file does, each client uploads
// --count files of --size bytes: a slot request (<request filename size
// content-type/>, an IQ to the service), then an HTTP PUT of the bytes
// to the slot's PUT URL with exactly the headers its <put> lists (and
// Content-Type and Content-Length). Once every client has uploaded its
// files, each downloads those of the next client (client i those of
// i+1 mod n, as the recipient of a shared file does) from their GET URLs
// and checks every byte against what was uploaded, and the size. Before
// the measurement each client uploads and downloads one file of its own
// (of --size, at most 1 MiB), not measured: the HTTPS connections are
// open and kept alive.
//
// Every file is different: its first 64 bytes name the run, the client
// and the file, the rest is random data of the run, so a download of the
// wrong file fails as surely as a corrupted one. The uploads and the
// downloads are measured apart: files/s, MiB/s, latency (upload: slot
// request and PUT; download: GET to the last byte checked) and the
// server's CPU per MiB moved.
//
// HTTPS is checked as the XMPP connections are (--insecure, --ca); the
// certificate is checked for the URL's host. Whatever host a URL names,
// the connection goes to --addr's host (or --url's) on the URL's port:
// the bench only ever talks to the server under test, and the URLs may
// name hosts (upload.DOMAIN) that nothing resolves.

const (
	nsUpload      = "urn:xmpp:http:upload:0"
	nsDiscoItems  = "http://jabber.org/protocol/disco#items"
	uploadType    = "application/octet-stream"
	uploadHdrLen  = 64
	uploadBufSize = 64 << 10
)

// Upload is what the upload scenario adds to the result: the service,
// the files, and the uploads and the downloads measured apart (the
// result's own rate, latency and server CPU are the uploads').
type Upload struct {
	Service     string `json:"service"`
	MaxFileSize int64  `json:"max_file_size,omitempty"` // from its disco#info; 0: not announced
	Size        int64  `json:"size"`
	Clients     int    `json:"clients"`

	Uploads           int64   `json:"uploads"`
	UploadS           float64 `json:"upload_s"`
	UploadsPerS       float64 `json:"uploads_per_s"`
	UploadMiBPerS     float64 `json:"upload_mib_per_s"`
	UploadP50Ms       float64 `json:"upload_p50_ms,omitempty"`
	UploadP99Ms       float64 `json:"upload_p99_ms,omitempty"`
	SlotP50Ms         float64 `json:"slot_p50_ms,omitempty"` // the slot requests alone
	SlotP99Ms         float64 `json:"slot_p99_ms,omitempty"`
	UploadCPUS        float64 `json:"upload_server_cpu_s,omitempty"`
	UploadCPUUsPerMiB float64 `json:"upload_server_cpu_us_per_mib,omitempty"`

	Downloads           int64   `json:"downloads"`
	DownloadS           float64 `json:"download_s"`
	DownloadsPerS       float64 `json:"downloads_per_s"`
	DownloadMiBPerS     float64 `json:"download_mib_per_s"`
	DownloadP50Ms       float64 `json:"download_p50_ms,omitempty"`
	DownloadP99Ms       float64 `json:"download_p99_ms,omitempty"`
	DownloadCPUS        float64 `json:"download_server_cpu_s,omitempty"`
	DownloadCPUUsPerMiB float64 `json:"download_server_cpu_us_per_mib,omitempty"`

	// Verified counts the measured downloads of the right size and
	// content; every one must be.
	Verified int64  `json:"verified"`
	Proto    string `json:"http_proto,omitempty"` // as the server answered
}

// uploadFile is one file: its first bytes, the rest being the run's
// random data, and its slot.
type uploadFile struct {
	size     int64
	head     []byte
	put, get string
	headers  http.Header
}

// uploadRun is the state shared by the clients.
type uploadRun struct {
	cfg   *config
	nonce string
	base  []byte // --size bytes of random data; each file's tail
	host  string // where every HTTP connection goes
	svc   string
	proto atomic.Pointer[string]
}

// uploader is one client: its XMPP session, its HTTP client and the IQ
// it waits for.
type uploader struct {
	run  *uploadRun
	idx  int
	s    *session
	http *http.Client

	mu     sync.Mutex
	id     string      // the IQ in flight; "" when none
	answer chan []byte // its answer
	seq    int

	files []uploadFile
}

// runUpload runs the upload scenario.
func runUpload(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	up := &Upload{Size: cfg.size, Clients: cfg.n}
	r.Upload = up
	run, err := newUploadRun(cfg)
	if err != nil {
		return r, err
	}
	ups := make([]*uploader, cfg.n)
	for i := range ups {
		ups[i] = &uploader{run: run, idx: i, http: run.httpClient()}
	}
	sess, _ := openSessions(ctx, cfg, r, cfg.n, func(i int) string { return cfg.account(i + 1) }, func(int) string { return "upload" },
		func(i int, s *session) func([]byte) bool { ups[i].s = s; return ups[i].handle })
	defer closeAll(sess, 5*time.Second)
	for _, s := range sess {
		if s == nil {
			return r, r.err()
		}
	}
	for _, u := range ups {
		defer u.http.CloseIdleConnections()
	}

	svc, maxSize, err := ups[0].discover()
	if err != nil {
		r.fail(fmt.Errorf("discovering the upload service: %w", err))
		return r, r.err()
	}
	run.svc, up.Service, up.MaxFileSize = svc, svc, maxSize
	if maxSize > 0 && cfg.size > maxSize {
		r.fail(fmt.Errorf("--size %d is above the service's max-file-size %d", cfg.size, maxSize))
		return r, r.err()
	}

	// The warm-up: one file each, up and down, not measured.
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		r.fail(err)
		mu.Unlock()
	}
	parallel(ctx, cfg.n, cfg.n, func(i int) error {
		f, _, _, err := ups[i].upload(ctx, -1, min(cfg.size, 1<<20))
		if err == nil {
			_, err = ups[i].download(ctx, f)
		}
		if err != nil {
			fail(fmt.Errorf("warm-up, client %d: %w", i, err))
		}
		return err
	})
	if r.Errors > 0 {
		return r, r.err()
	}

	// The uploads.
	var uploaded atomic.Int64
	upLat := make([][]int64, cfg.n)
	slotLat := make([][]int64, cfg.n)
	stop := progress(cfg, func() string { return fmt.Sprintf("uploaded: %d/%d", uploaded.Load(), cfg.n*cfg.count) })
	a := sample(cfg.pid)
	parallel(ctx, cfg.n, cfg.n, func(i int) error {
		u := ups[i]
		for k := range cfg.count {
			f, slot, d, err := u.upload(ctx, k, cfg.size)
			if err != nil {
				fail(fmt.Errorf("upload %d of client %d: %w", k, i, err))
				return err
			}
			u.files = append(u.files, f)
			upLat[i] = append(upLat[i], int64(d))
			slotLat[i] = append(slotLat[i], int64(slot))
			uploaded.Add(1)
		}
		return nil
	})
	b := sample(cfg.pid)
	stop()
	r.measured(a, b, uploaded.Load())
	r.latencies(flatten(upLat))
	up.Uploads, up.UploadS, up.UploadsPerS = r.Ops, r.ElapsedS, r.RatePerS
	up.UploadP50Ms, up.UploadP99Ms = r.LatP50Ms, r.LatP99Ms
	up.SlotP50Ms, up.SlotP99Ms = percentiles(flatten(slotLat))
	up.UploadMiBPerS, up.UploadCPUS, up.UploadCPUUsPerMiB = throughput(r.Ops, cfg.size, r.ElapsedS, r.ServerCPUS)
	if r.Errors > 0 {
		return r, r.err()
	}

	// The downloads: client i fetches the files of client i+1.
	var downloaded, verified atomic.Int64
	downLat := make([][]int64, cfg.n)
	stop = progress(cfg, func() string { return fmt.Sprintf("downloaded: %d/%d", downloaded.Load(), cfg.n*cfg.count) })
	a = sample(cfg.pid)
	parallel(ctx, cfg.n, cfg.n, func(i int) error {
		from := ups[(i+1)%cfg.n]
		for k, f := range from.files {
			d, err := ups[i].download(ctx, f)
			downloaded.Add(1)
			if err != nil {
				fail(fmt.Errorf("download by client %d of file %d of client %d: %w", i, k, from.idx, err))
				return err
			}
			verified.Add(1)
			downLat[i] = append(downLat[i], int64(d))
		}
		return nil
	})
	b = sample(cfg.pid)
	stop()
	dl := newResult(cfg)
	dl.measured(a, b, downloaded.Load())
	up.Downloads, up.DownloadS, up.DownloadsPerS = dl.Ops, dl.ElapsedS, dl.RatePerS
	up.DownloadP50Ms, up.DownloadP99Ms = percentiles(flatten(downLat))
	up.DownloadMiBPerS, up.DownloadCPUS, up.DownloadCPUUsPerMiB = throughput(dl.Ops, cfg.size, dl.ElapsedS, dl.ServerCPUS)
	up.Verified = verified.Load()
	if p := run.proto.Load(); p != nil {
		up.Proto = *p
	}
	if early := ended(sess); early != "" {
		r.fail(fmt.Errorf("a session ended during the run: %s", early))
	}
	return r, r.err()
}

// throughput is MiB/s, server CPU seconds and µs per MiB of n files of
// size bytes moved in elapsed seconds with cpu seconds of server CPU.
func throughput(n, size int64, elapsed, cpu float64) (mibPerS, cpuS, cpuUsPerMiB float64) {
	mib := float64(n*size) / (1 << 20)
	if elapsed > 0 {
		mibPerS = mib / elapsed
	}
	if mib > 0 {
		cpuUsPerMiB = cpu * 1e6 / mib
	}
	return mibPerS, cpu, cpuUsPerMiB
}

func flatten(xs [][]int64) []int64 {
	var out []int64
	for _, x := range xs {
		out = append(out, x...)
	}
	return out
}

// percentiles are the p50 and p99 of ns in milliseconds (sorted in place).
func percentiles(ns []int64) (p50, p99 float64) {
	var r result
	r.latencies(ns)
	return r.LatP50Ms, r.LatP99Ms
}

func newUploadRun(cfg *config) (*uploadRun, error) {
	nonce := make([]byte, 4)
	rand.Read(nonce)
	var seed [32]byte
	rand.Read(seed[:])
	base := make([]byte, cfg.size)
	mrand.NewChaCha8(seed).Read(base)
	addr := cfg.addr
	if cfg.url != "" {
		u, err := url.Parse(cfg.url)
		if err != nil {
			return nil, err
		}
		addr = u.Host
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr // a --url without a port
	}
	return &uploadRun{cfg: cfg, nonce: hex.EncodeToString(nonce), base: base, host: host}, nil
}

// httpClient is one client's HTTP client: HTTP/1.1 with keep-alive, the
// bench's TLS settings checked against the URL's host, every connection
// to run.host whatever the URL's host, no proxy, no compression.
func (run *uploadRun) httpClient() *http.Client {
	cfg := run.cfg
	tc := cfg.tlsConfig()
	tc.ServerName, tc.NextProtos = "", nil
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: tc,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			d := net.Dialer{Timeout: cfg.timeout}
			if cfg.source != nil {
				d.LocalAddr = &net.TCPAddr{IP: cfg.source()}
			}
			return d.DialContext(ctx, network, net.JoinHostPort(run.host, port))
		},
		TLSHandshakeTimeout:   cfg.timeout,
		ResponseHeaderTimeout: cfg.timeout,
		MaxIdleConnsPerHost:   4,
		DisableCompression:    true,
		WriteBufferSize:       uploadBufSize,
		ReadBufferSize:        uploadBufSize,
	}}
}

// handle takes the answer to the IQ in flight.
func (u *uploader) handle(el []byte) bool {
	if !is(el, "iq") {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	t := string(attr(el, "type"))
	if u.id == "" || string(attr(el, "id")) != u.id || t != "result" && t != "error" {
		return false
	}
	u.answer <- bytes.Clone(el)
	u.id = ""
	return true
}

// iq sends an IQ get with payload to to and returns its answer, an error
// answer as an error.
func (u *uploader) iq(to, payload string) ([]byte, error) {
	u.seq++
	id := "up" + strconv.Itoa(u.seq)
	answer := make(chan []byte, 1)
	u.mu.Lock()
	u.id, u.answer = id, answer
	u.mu.Unlock()
	if err := u.s.send("<iq type='get' id='" + id + "' to='" + xmlEscape(to) + "'>" + payload + "</iq>"); err != nil {
		return nil, err
	}
	t := time.NewTimer(u.run.cfg.timeout)
	defer t.Stop()
	select {
	case el := <-answer:
		if string(attr(el, "type")) != "result" {
			return nil, fmt.Errorf("%s", el)
		}
		return el, nil
	case <-u.s.done:
		return nil, fmt.Errorf("stream ended: %s", u.s.end)
	case <-t.C:
		u.mu.Lock()
		u.id = ""
		u.mu.Unlock()
		return nil, fmt.Errorf("no answer to %s within --timeout", payload)
	}
}

// The parts of the answers read here.
type (
	discoItems struct {
		Items []struct {
			JID string `xml:"jid,attr"`
		} `xml:"query>item"`
	}
	discoInfo struct {
		Features []struct {
			Var string `xml:"var,attr"`
		} `xml:"query>feature"`
		Forms []struct {
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Values []string `xml:"value"`
			} `xml:"field"`
		} `xml:"query>x"`
	}
	slotAnswer struct {
		Slot struct {
			Put struct {
				URL     string `xml:"url,attr"`
				Headers []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:",chardata"`
				} `xml:"header"`
			} `xml:"put"`
			Get struct {
				URL string `xml:"url,attr"`
			} `xml:"get"`
		} `xml:"urn:xmpp:http:upload:0 slot"`
	}
)

// discover returns the upload service among the server's disco#items
// and its max-file-size (0 if it announces none).
func (u *uploader) discover() (string, int64, error) {
	domain := u.run.cfg.domain
	el, err := u.iq(domain, "<query xmlns='"+nsDiscoItems+"'/>")
	if err != nil {
		return "", 0, fmt.Errorf("disco#items of %s: %w", domain, err)
	}
	var items discoItems
	if err := xml.Unmarshal(el, &items); err != nil {
		return "", 0, fmt.Errorf("disco#items of %s: %w", domain, err)
	}
	var seen []string
	for _, it := range items.Items {
		el, err := u.iq(it.JID, "<query xmlns='"+nsDisco+"'/>")
		if err != nil {
			seen = append(seen, it.JID+" (no disco#info)")
			continue
		}
		jid, max, ok, err := uploadService(it.JID, el)
		if err != nil {
			return "", 0, err
		}
		if ok {
			return jid, max, nil
		}
		seen = append(seen, it.JID)
	}
	return "", 0, fmt.Errorf("no item of %s has the feature %s (items: %s)", domain, nsUpload, strings.Join(seen, ", "))
}

// uploadService reads the disco#info answer el of jid: whether it has the
// upload feature, and the max-file-size of its upload form, if any.
func uploadService(jid string, el []byte) (string, int64, bool, error) {
	var info discoInfo
	if err := xml.Unmarshal(el, &info); err != nil {
		return "", 0, false, fmt.Errorf("disco#info of %s: %w", jid, err)
	}
	ok := false
	for _, f := range info.Features {
		ok = ok || f.Var == nsUpload
	}
	if !ok {
		return "", 0, false, nil
	}
	for _, form := range info.Forms {
		typ, max := "", ""
		for _, f := range form.Fields {
			if len(f.Values) == 0 {
				continue
			}
			switch f.Var {
			case "FORM_TYPE":
				typ = strings.TrimSpace(f.Values[0])
			case "max-file-size":
				max = strings.TrimSpace(f.Values[0])
			}
		}
		if typ == nsUpload && max != "" {
			n, err := strconv.ParseInt(max, 10, 64)
			if err != nil {
				return "", 0, false, fmt.Errorf("disco#info of %s: max-file-size %q", jid, max)
			}
			return jid, n, true, nil
		}
	}
	return jid, 0, true, nil
}

// parseSlot reads the slot answer el: the PUT URL and its headers, the
// GET URL.
func parseSlot(el []byte) (uploadFile, error) {
	var a slotAnswer
	if err := xml.Unmarshal(el, &a); err != nil {
		return uploadFile{}, fmt.Errorf("slot: %w", err)
	}
	f := uploadFile{put: a.Slot.Put.URL, get: a.Slot.Get.URL, headers: http.Header{}}
	for _, h := range a.Slot.Put.Headers {
		// XEP-0363 §5: newlines are to be removed from the values.
		v := strings.NewReplacer("\r", "", "\n", "").Replace(h.Value)
		f.headers.Add(h.Name, v)
	}
	for _, u := range []string{f.put, f.get} {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "https" && p.Scheme != "http" || p.Host == "" {
			return uploadFile{}, fmt.Errorf("slot: bad URL %q in %s", u, el)
		}
	}
	return f, nil
}

// upload requests a slot for file k (-1: the warm-up's) of size bytes and
// PUTs it; it returns the file, the slot request's latency and the whole
// upload's.
func (u *uploader) upload(ctx context.Context, k int, size int64) (uploadFile, time.Duration, time.Duration, error) {
	run := u.run
	name := fmt.Sprintf("bench-%s-%d-%d.bin", run.nonce, u.idx, k)
	head := make([]byte, min(uploadHdrLen, size))
	copy(head, run.base)
	copy(head, fmt.Sprintf("starling-bench %s client %d file %d\n", run.nonce, u.idx, k))

	t0 := time.Now()
	el, err := u.iq(run.svc, "<request xmlns='"+nsUpload+"' filename='"+xmlEscape(name)+"' size='"+strconv.FormatInt(size, 10)+
		"' content-type='"+uploadType+"'/>")
	if err != nil {
		return uploadFile{}, 0, 0, fmt.Errorf("slot request: %w", err)
	}
	slot := time.Since(t0)
	f, err := parseSlot(el)
	if err != nil {
		return uploadFile{}, 0, 0, err
	}
	f.head, f.size = head, size

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	guard := newStallGuard(run.cfg.timeout, cancel)
	defer guard.stop()
	body := func() io.ReadCloser {
		return io.NopCloser(&guardedReader{r: io.MultiReader(bytes.NewReader(head), bytes.NewReader(run.base[len(head):size])), g: guard})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.put, body())
	if err != nil {
		return uploadFile{}, 0, 0, err
	}
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	req.ContentLength = size
	for k, v := range f.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", uploadType)
	resp, err := u.http.Do(req)
	if err != nil {
		return uploadFile{}, 0, 0, fmt.Errorf("PUT %s: %w", f.put, guard.why(err))
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
		return uploadFile{}, 0, 0, fmt.Errorf("PUT %s: %s: %s", f.put, resp.Status, bytes.TrimSpace(msg))
	}
	run.proto.CompareAndSwap(nil, &resp.Proto)
	return f, slot, time.Since(t0), nil
}

// download GETs f and checks its size and every byte; it returns how long
// that took.
func (u *uploader) download(ctx context.Context, f uploadFile) (time.Duration, error) {
	run := u.run
	size := f.size
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	guard := newStallGuard(run.cfg.timeout, cancel)
	defer guard.stop()
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.get, nil)
	if err != nil {
		return 0, err
	}
	resp, err := u.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", f.get, guard.why(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", f.get, resp.Status, bytes.TrimSpace(msg))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != size {
		return 0, fmt.Errorf("GET %s: Content-Length %d, uploaded %d bytes", f.get, resp.ContentLength, size)
	}
	buf := make([]byte, uploadBufSize)
	var off int64
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			guard.progress()
			if off+int64(n) > size {
				return 0, fmt.Errorf("GET %s: more than the %d bytes uploaded", f.get, size)
			}
			if i := mismatch(f.head, run.base, off, buf[:n]); i >= 0 {
				return 0, fmt.Errorf("GET %s: byte %d differs from what was uploaded", f.get, off+int64(i))
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("GET %s: after %d bytes: %w", f.get, off, guard.why(err))
		}
	}
	if off != size {
		return 0, fmt.Errorf("GET %s: %d bytes, uploaded %d", f.get, off, size)
	}
	return time.Since(t0), nil
}

// mismatch compares p with the file whose first bytes are head and whose
// rest is base's, from offset off; it returns the index in p of the first
// byte that differs, or -1.
func mismatch(head, base []byte, off int64, p []byte) int {
	for i := 0; i < len(p); {
		at := off + int64(i)
		var want []byte
		if at < int64(len(head)) {
			want = head[at:]
		} else {
			want = base[at:]
		}
		n := min(len(want), len(p)-i)
		if !bytes.Equal(p[i:i+n], want[:n]) {
			for j := range n {
				if p[i+j] != want[j] {
					return i + j
				}
			}
		}
		i += n
	}
	return -1
}

// stallGuard cancels a transfer that makes no progress for a while (a
// whole transfer of 50 MiB may rightly take longer than --timeout).
type stallGuard struct {
	t       *time.Timer
	d       time.Duration
	stalled atomic.Bool
}

func newStallGuard(d time.Duration, cancel func()) *stallGuard {
	g := &stallGuard{d: d}
	g.t = time.AfterFunc(d, func() { g.stalled.Store(true); cancel() })
	return g
}

func (g *stallGuard) progress() { g.t.Reset(g.d) }
func (g *stallGuard) stop()     { g.t.Stop() }

// why names a stall as the reason of err.
func (g *stallGuard) why(err error) error {
	if g.stalled.Load() {
		return fmt.Errorf("no progress for --timeout (%v): %w", g.d, err)
	}
	return err
}

// guardedReader tells its guard of every read.
type guardedReader struct {
	r io.Reader
	g *stallGuard
}

func (r *guardedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.g.progress()
	}
	return n, err
}

// parseSize reads a size in bytes: a number, optionally followed by K,
// M, G (or KiB, MiB, GiB: the same, powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for suf, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if v, ok := strings.CutSuffix(t, suf+"iB"); ok {
			t, mult = v, m
			break
		}
		if v, ok := strings.CutSuffix(t, suf); ok {
			t, mult = v, m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 1 || n > (1<<40)/mult {
		return 0, errors.New("want a positive number of bytes, optionally with K, M or G (KiB, MiB, GiB)")
	}
	return n * mult, nil
}
