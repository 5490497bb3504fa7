package sqlstore

// The uploads aggregate (storage.Uploads): the slots HTTP file upload
// handed out (XEP-0363), which count against each account's quota.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("uploads", `DELETE FROM uploads WHERE host = ? AND username = ?`)
}

const uploadColumns = `id, host, username, name, size, content_type, created`

func (s *Store) scanUpload(row interface{ Scan(...any) error }) (storage.Upload, error) {
	var u storage.Upload
	err := row.Scan(&u.ID, &u.Host, &u.Username, &u.Name, &u.Size, &u.ContentType,
		s.d.ScanTime(&u.Created, time.Millisecond))
	return u, err
}

// AddUpload implements storage.Uploads: the accounts foreign key tells a
// missing account.
func (s *Store) AddUpload(ctx context.Context, u storage.Upload) error {
	_, err := s.writer().exec(ctx, `INSERT INTO uploads (`+uploadColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Host, u.Username, u.Name, u.Size, u.ContentType, s.d.Time(u.Created, time.Millisecond))
	switch {
	case err == nil:
		return nil
	case s.d.IsConflict(err):
		err = storage.ErrConflict
	default:
		err = s.notFoundIfNoAccount(err)
	}
	return fmt.Errorf("add upload %s of %s@%s: %w", u.ID, u.Username, u.Host, err)
}

// Upload implements storage.Uploads.
func (s *Store) Upload(ctx context.Context, id string) (storage.Upload, error) {
	u, err := s.scanUpload(s.reader().queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Upload{}, fmt.Errorf("upload %s: %w", id, err)
	}
	return u, nil
}

// UploadUsage implements storage.Uploads: both sums in one statement,
// over the account's rows of uploads_account.
func (s *Store) UploadUsage(ctx context.Context, host, username string, since time.Time) (total, recent int64, err error) {
	err = s.reader().queryRow(ctx,
		`SELECT CAST(coalesce(sum(size), 0) AS bigint),
			CAST(coalesce(sum(CASE WHEN created >= ? THEN size ELSE 0 END), 0) AS bigint)
		FROM uploads WHERE host = ? AND username = ?`,
		s.d.Time(since, time.Millisecond), host, username).Scan(&total, &recent)
	if err != nil {
		return 0, 0, fmt.Errorf("upload usage of %s@%s: %w", username, host, err)
	}
	return total, recent, nil
}

// UploadsBefore implements storage.Uploads, from the front of
// uploads_created; none for a limit <= 0.
func (s *Store) UploadsBefore(ctx context.Context, t time.Time, limit int) ([]storage.Upload, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.reader().query(ctx,
		`SELECT `+uploadColumns+` FROM uploads WHERE created < ? ORDER BY created, id LIMIT ?`,
		s.d.Time(t, time.Millisecond), limit)
	ups, err := collect(rows, err, func(r Rows) (storage.Upload, error) { return s.scanUpload(r) })
	if err != nil {
		return nil, fmt.Errorf("uploads before %v: %w", t, err)
	}
	return ups, nil
}

// DeleteUpload implements storage.Uploads.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	n, err := s.writer().exec(ctx, `DELETE FROM uploads WHERE id = ?`, id)
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete upload %s: %w", id, err)
	}
	return nil
}
