package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

var (
	errForbidden = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only your own archive can be queried"}
	errNoArchive = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	errStorage   = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
)

// query answers a query of namespace ns: the form (IQ get, §4.1.5) or
// the results (IQ set).
func (s *service) query(ns string) dispatch.Handler {
	return func(ctx context.Context, req dispatch.Request) ([]byte, error) {
		if req.ForServer() {
			return nil, errNoArchive
		}
		if !req.To.Equal(req.Stanza.From.Bare()) {
			return nil, errForbidden
		}
		if !req.Set() {
			return archive.FormFields(ns), nil
		}
		var el archive.QueryElement
		if err := xml.Unmarshal(req.Payload, &el); err != nil {
			return nil, errBadRequest
		}
		if el.Node != "" {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "an account's archive has no nodes"}
		}
		account := req.To
		host := account.Domainpart()
		stanzas, bytesLimit := s.limits()
		maxPage := min(s.opts(host).MaxPageSize, max(stanzas/2, 1))
		r, err := archive.ParseQuery(ns, &el, maxPage)
		if err != nil {
			return nil, err
		}
		if err := s.writer.Flush(ctx); err != nil {
			return nil, errStorage
		}
		q := r.Q
		q.Max = max(r.Max, 1)
		q.CountLimit = archive.CountLimit
		page, err := s.store.QueryArchive(ctx, host, account.Localpart(), q)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, archive.ErrItemUnknown
		case err != nil:
			s.log.Error("archive query failed", "jid", account.String(), "err", err)
			return nil, errStorage
		}
		if r.Max == 0 {
			page.Messages, page.Complete = nil, false
		}
		// What the session's queue takes at once: a page too big for it
		// is cut, at its start when paging backwards.
		msgs, cut := archive.Fit(page.Messages, bytesLimit/2, q.Last)
		if cut {
			page.Complete = false
		}
		if r.Flip {
			for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
				msgs[i], msgs[j] = msgs[j], msgs[i]
			}
		}
		to, accountStr := req.Stanza.From, account.String()
		toStr := to.String()
		results := func() {
			for _, m := range msgs {
				s.router.DeliverTo(to, archive.ResultMessage(ns, toStr, accountStr, el.QueryID, m))
			}
		}
		fin := archive.Fin(ns, el.QueryID, msgs, page)
		if ns == archive.NS0 {
			// 0.2–0.4: the IQ result first, then the results and <fin/>
			// in a message.
			req.AfterReply(func() {
				results()
				var b bytes.Buffer
				b.WriteString("<message to='")
				stanza.EscapeAttr(&b, toStr)
				b.WriteString("' from='")
				stanza.EscapeAttr(&b, accountStr)
				b.WriteString("'>")
				b.Write(fin)
				b.WriteString("</message>")
				s.router.DeliverTo(to, b.Bytes())
			})
			return nil, nil
		}
		results()
		return fin, nil
	}
}

// handlePrefs answers a preferences get or set (XEP-0441 §3; XEP-0313
// §6 before 0.7) with the preferences in force.
func (s *service) handlePrefs(ns string) dispatch.Handler {
	return func(ctx context.Context, req dispatch.Request) ([]byte, error) {
		if req.ForServer() {
			return nil, errNoArchive
		}
		if !req.To.Equal(req.Stanza.From.Bare()) {
			return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
		}
		account := req.To
		accountStr := account.String()
		host := account.Domainpart()
		if req.Set() {
			p, err := parsePrefs(req.Payload)
			if err != nil {
				return nil, err
			}
			doc := appendPrefs(nil, archive.NS2, p, "")
			if err := s.store.PutDocument(ctx, host, account.Localpart(), prefsKey, doc); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					return nil, errNoArchive
				}
				s.log.Error("storing archiving preferences failed", "jid", accountStr, "err", err)
				return nil, errStorage
			}
			s.prefs.put(accountStr, p)
			return appendPrefs(nil, ns, p, ""), nil
		}
		p, err := s.loadPrefs(ctx, account, accountStr)
		if err != nil {
			s.log.Error("reading archiving preferences failed", "jid", accountStr, "err", err)
			return nil, errStorage
		}
		return appendPrefs(nil, ns, p, s.opts(host).Default), nil
	}
}
