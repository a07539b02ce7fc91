package command

import (
	"context"
	"errors"
	"time"
)

// Blob is a stored file: attachment bytes, or a raw inbound message.
type Blob struct {
	ID, SHA256, ContentType string
	Size                    int64
	Data                    []byte
}

// ErrBlobNotFound: no such blob in the tenant.
var ErrBlobNotFound = errors.New("blob not found")

// BlobStore keeps file bytes per tenant. The default is Postgres
// (adapters/pgstore); an object store can take its place behind this
// interface.
type BlobStore interface {
	PutBlob(ctx context.Context, tenant, contentType string, data []byte, now time.Time) (Blob, error)
	Blob(ctx context.Context, tenant, id string) (Blob, error)
}
