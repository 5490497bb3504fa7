package storage

import (
	"context"
	"time"
)

// Upload is one file uploaded by HTTP file upload (XEP-0363 §4, §6),
// recorded once the file is complete, so that the account's quota and
// daily volume are sums; the file itself lives outside the database,
// under the ID.
type Upload struct {
	// ID is the slot's random identifier, unique across hosts: the
	// file's directory and the first segment of its URL path.
	ID string
	// Host and Username are the account that asked for the slot.
	Host, Username string
	// Name is the file name the client gave, as given.
	Name string
	// Size is the size announced in the request, in bytes.
	Size int64
	// ContentType is the content type announced ("" when none was).
	ContentType string
	// Created is when the slot was handed out (the file came within
	// minutes); stores keep milliseconds.
	Created time.Time
}

// Uploads stores the slots of HTTP file upload. DeleteAccount removes an
// account's (the files on disk are the module's to remove).
type Uploads interface {
	// AddUpload records u; ErrConflict if its ID exists, ErrNotFound if
	// there is no such account.
	AddUpload(ctx context.Context, u Upload) error
	// Upload returns the slot with id; ErrNotFound if there is none.
	Upload(ctx context.Context, id string) (Upload, error)
	// UploadUsage returns the bytes of the account's slots in all
	// (total) and those created at or after since (recent): its quota
	// and its daily volume.
	UploadUsage(ctx context.Context, host, username string, since time.Time) (total, recent int64, err error)
	// UploadsBefore returns at most limit slots created before t, oldest
	// first: those expired.
	UploadsBefore(ctx context.Context, t time.Time, limit int) ([]Upload, error)
	// DeleteUpload removes the slot with id; ErrNotFound if there is none.
	DeleteUpload(ctx context.Context, id string) error
}
