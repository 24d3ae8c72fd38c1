package remote

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

// putBlob stores the value of key in s in the object store under name,
// reading it incrementally when s can (a pager does not materialise it),
// and returns its size.
func (r *resources) putBlob(ctx context.Context, name string, s dag.State, key string) (int64, error) {
	rd, err := dag.NewValueReader(s, key)
	if err != nil {
		return 0, err
	}
	chunk := uint32(min(128<<10, r.maxPayload-msgHeadroom))
	info, err := r.blobs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}}, rd)
	if err != nil {
		return 0, fmt.Errorf("store in object store %s as %q: %w", r.lay.blobsName(), name, err)
	}
	return int64(info.Size), nil
}

// getBlob reads a value from the object store, refusing one larger than
// maxBytes.
func (r *resources) getBlob(ctx context.Context, name string, size, maxBytes int64) ([]byte, error) {
	if size > maxBytes {
		return nil, &limit.Error{Kind: limit.MessageSize, Subject: name, Current: float64(size), Limit: float64(maxBytes), Unit: "bytes",
			Detail: "MaxValueBytes"}
	}
	v, err := r.blobs.GetBytes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read %q from object store %s: %w", name, r.lay.blobsName(), err)
	}
	if int64(len(v)) != size {
		return nil, fmt.Errorf("read %q from object store %s: %d bytes, want %d", name, r.lay.blobsName(), len(v), size)
	}
	return v, nil
}
