package sqlstore

// The documents aggregate (storage.Documents): small opaque XML documents
// per account under a key (vCard-temp, private XML storage).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("documents", `DELETE FROM documents WHERE host = ? AND username = ?`)
}

// Document implements storage.Documents.
func (s *Store) Document(ctx context.Context, host, username, key string) ([]byte, error) {
	var doc []byte
	err := s.reader().queryRow(ctx,
		`SELECT doc FROM documents WHERE host = ? AND username = ? AND key = ?`, host, username, key).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("document %q of %s@%s: %w", key, username, host, err)
	}
	if doc == nil {
		doc = []byte{}
	}
	return doc, nil
}

// PutDocument implements storage.Documents. It returns ErrNotFound if there
// is no such account.
func (s *Store) PutDocument(ctx context.Context, host, username, key string, doc []byte) error {
	if doc == nil {
		doc = []byte{}
	}
	_, err := s.writer().exec(ctx,
		`INSERT INTO documents (host, username, key, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (host, username, key) DO UPDATE SET doc = excluded.doc`,
		host, username, key, doc)
	if err = s.notFoundIfNoAccount(err); err != nil {
		return fmt.Errorf("put document %q of %s@%s: %w", key, username, host, err)
	}
	return nil
}

// DocumentKeys implements storage.Store.
func (s *Store) DocumentKeys(ctx context.Context, host, username, prefix string) ([]string, error) {
	rows, err := s.reader().query(ctx,
		`SELECT key FROM documents WHERE host = ? AND username = ?`, host, username)
	if err != nil {
		return nil, fmt.Errorf("document keys of %s@%s: %w", username, host, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("document keys of %s@%s: %w", username, host, err)
		}
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("document keys of %s@%s: %w", username, host, err)
	}
	slices.Sort(keys) // byte-wise, whatever the database's collation
	return keys, nil
}

// DeleteDocument implements storage.Documents.
func (s *Store) DeleteDocument(ctx context.Context, host, username, key string) error {
	_, err := s.writer().exec(ctx,
		`DELETE FROM documents WHERE host = ? AND username = ? AND key = ?`, host, username, key)
	if err != nil {
		return fmt.Errorf("delete document %q of %s@%s: %w", key, username, host, err)
	}
	return nil
}
