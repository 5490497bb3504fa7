package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
)

// slotLifetime is how long a slot's PUT URL may be used.
const slotLifetime = 5 * time.Minute

// maxNameBytes bounds a file name, as file systems do.
const maxNameBytes = 255

// Service is the upload service of one host. Set its fields, then add it
// to the router (router.AddService).
type Service struct {
	Domain string // upload.example.org
	Host   string // whose users may upload
	Router router.Router
	Store  storage.Uploads
	Files  *Files
	// Options are the module's options in force.
	Options func() *Options
	// BaseURL is "https://host:port" (or the configured url) under which
	// Path is served.
	BaseURL func() string
	Log     *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	// mu serializes the quota check and the reservation of a slot, so
	// that concurrent requests do not both fit in the same remaining
	// quota.
	mu sync.Mutex
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// HandleService implements router.Service.
func (s *Service) HandleService(ctx context.Context, st *stanza.Stanza) {
	if st.Kind != stanza.IQ {
		if st.Kind == stanza.Message && st.Type != "error" && st.Type != "headline" {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
		return
	}
	if !st.IsRequest() {
		return
	}
	if st.To.Localpart() != "" || st.To.Resourcepart() != "" {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
	name, payload, _ := st.Payload()
	switch {
	case st.Type == "get" && name.Space == nsDiscoInfo && name.Local == "query" && stanza.Attr(payload, "node") == "":
		s.result(ctx, st, s.info())
	case st.Type == "get" && name.Space == nsDiscoItems && name.Local == "query" && stanza.Attr(payload, "node") == "":
		s.result(ctx, st, []byte("<query xmlns='"+nsDiscoItems+"'/>"))
	case st.Type == "get" && name.Space == nsPing && name.Local == "ping":
		s.result(ctx, st, nil)
	case st.Type == "get" && name.Space == NS && name.Local == "request":
		slot, err := s.request(ctx, st, payload)
		if err != nil {
			s.fail(ctx, st, err)
			return
		}
		s.result(ctx, st, slot)
	default:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
}

// info is the service's disco#info (§3): the identity, the feature and
// the limit in a XEP-0128 form.
func (s *Service) info() []byte {
	return []byte("<query xmlns='" + nsDiscoInfo + "'>" +
		"<identity category='store' type='file' name='HTTP File Upload'/>" +
		"<feature var='" + nsDiscoInfo + "'/><feature var='" + NS + "'/><feature var='" + nsPing + "'/>" +
		"<x xmlns='jabber:x:data' type='result'>" +
		"<field var='FORM_TYPE' type='hidden'><value>" + NS + "</value></field>" +
		"<field var='max-file-size'><value>" + strconv.FormatInt(s.Options().MaxFileSize, 10) + "</value></field>" +
		"</x></query>")
}

// request answers a slot request (§4) with the slot, or the error §5
// says.
func (s *Service) request(ctx context.Context, st *stanza.Stanza, payload []byte) ([]byte, *stanza.Error) {
	from := st.From
	if from.Domainpart() != s.Host || from.Localpart() == "" {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed,
			Text: "only users of " + s.Host + " may upload files here"}
	}
	filename := stanza.Attr(payload, "filename")
	if err := checkName(filename); err != nil {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: err.Error()}
	}
	size, err := strconv.ParseInt(stanza.Attr(payload, "size"), 10, 64)
	if err != nil || size < 0 {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "size must be the file's size in bytes"}
	}
	contentType := stanza.Attr(payload, "content-type")
	if contentType != "" {
		if _, _, err := mime.ParseMediaType(contentType); err != nil || !utf8.ValidString(contentType) || strings.ContainsAny(contentType, "\r\n") {
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "content-type is not a media type"}
		}
	}
	opts := s.Options()
	if size > opts.MaxFileSize {
		limit := strconv.FormatInt(opts.MaxFileSize, 10)
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: "file too large: the limit is " + limit + " bytes",
			App:  []byte("<file-too-large xmlns='" + NS + "'><max-file-size>" + limit + "</max-file-size></file-too-large>")}
	}
	base := s.BaseURL()
	if base == "" {
		return nil, &stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable, Text: "the upload listener is not running"}
	}
	now := s.now()
	u := storage.Upload{
		ID: newID(), Host: s.Host, Username: from.Localpart(),
		Name: filename, Size: size, ContentType: contentType, Created: now,
	}
	// The stored files' bytes, then those of the slots handed out and
	// not used yet (Files.reserve), against the quotas, under s.mu.
	s.mu.Lock()
	defer s.mu.Unlock()
	total, recent, err := s.Store.UploadUsage(ctx, u.Host, u.Username, now.Add(-24*time.Hour))
	if err != nil {
		s.Log.Error("reading upload usage", "jid", from.Bare().String(), "err", err)
		return nil, &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	var refusal *stanza.Error
	expires := now.Add(slotLifetime)
	reserved := s.Files.reserve(u, expires, now, func(pending int64) bool {
		total, recent := total+pending, recent+pending
		switch {
		case opts.Quota > 0 && total+size > opts.Quota:
			refusal = &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
				Text: fmt.Sprintf("quota reached: your files take %d of %d bytes; old files expire", total, opts.Quota)}
		case opts.DailyQuota > 0 && recent+size > opts.DailyQuota:
			// The window slides: within a day the volume is free again.
			retry := now.Add(24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
			refusal = &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
				Text: fmt.Sprintf("daily quota reached: %d of %d bytes uploaded in the last 24 hours", recent, opts.DailyQuota),
				App:  []byte("<retry xmlns='" + NS + "' stamp='" + retry + "'/>")}
		}
		return refusal == nil
	})
	if !reserved {
		if refusal == nil {
			refusal = &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
				Text: fmt.Sprintf("too many uploads in progress: at most %d slots at once", maxPending)}
		}
		return nil, refusal
	}
	get := base + Path + u.ID + "/" + url.PathEscape(filename)
	put := get + "?token=" + s.Files.sign(u, expires)
	var b bytes.Buffer
	b.WriteString("<slot xmlns='" + NS + "'><put url='")
	stanza.EscapeAttr(&b, put)
	b.WriteString("'/><get url='")
	stanza.EscapeAttr(&b, get)
	b.WriteString("'/></slot>")
	return b.Bytes(), nil
}

// checkName refuses a file name that is empty, too long, not UTF-8, has a
// path separator, a control character or a bidirectional control, or is
// "." or "..".
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("filename is missing")
	case len(name) > maxNameBytes:
		return fmt.Errorf("filename is longer than %d bytes", maxNameBytes)
	case !utf8.ValidString(name):
		return errors.New("filename is not UTF-8")
	case name == "." || name == "..":
		return errors.New("filename must name a file")
	case strings.ContainsAny(name, `/\`):
		return errors.New("filename must not contain a path separator")
	case strings.ContainsFunc(name, unicode.IsControl):
		return errors.New("filename must not contain control characters")
	case strings.ContainsFunc(name, isBidiControl):
		return errors.New("filename must not contain bidirectional controls")
	}
	return nil
}

// isBidiControl reports the embedding, override and isolate controls,
// with which "gpj.exe" shows as "exe.jpg" (Unicode TR 36 §2.1).
func isBidiControl(r rune) bool {
	return '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
}

// idLen is the length of a slot ID: 18 random bytes in base64url.
const idLen = 24

// newID returns a new slot ID: 144 random bits, so that a GET URL cannot
// be guessed.
func newID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validID reports whether id has the form of a slot ID, so that it can
// name a file.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// fail answers st with e from the service (router.Bounce: never an error
// to an error).
func (s *Service) fail(ctx context.Context, st *stanza.Stanza, e *stanza.Error) {
	s.Router.Bounce(ctx, st, e)
}

func (s *Service) result(ctx context.Context, st *stanza.Stanza, payload []byte) {
	s.Router.Reply(ctx, st, stanza.Result(st, st.To, payload))
}
