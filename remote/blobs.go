package remote

import (
	"context"
	"fmt"
	"io"

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

// spoolBlob stores the object name, of size bytes, as input key of st, in
// a file: it is never held whole in memory.
func (r *resources) spoolBlob(ctx context.Context, st *taskState, key, name string, size, maxBytes int64) error {
	obj, err := r.openBlob(ctx, name, size, maxBytes)
	if err != nil {
		return err
	}
	defer obj.Close()
	if err := st.spool(key, obj, size); err != nil {
		return fmt.Errorf("read %q from object store %s: %w", name, r.lay.blobsName(), err)
	}
	return nil
}

// openBlob opens the object name, of size bytes, to read it: size is
// checked against maxBytes first. The caller closes it.
func (r *resources) openBlob(ctx context.Context, name string, size, maxBytes int64) (jetstream.ObjectResult, error) {
	if err := r.checkBlobSize(name, size, maxBytes); err != nil {
		return nil, err
	}
	obj, err := r.blobs.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read %q from object store %s: %w", name, r.lay.blobsName(), err)
	}
	return obj, nil
}

// copyBlob writes the object name, of size bytes, as key's value in s: in
// parts when s takes a value so (dag.ValueCreator), else whole.
func (r *resources) copyBlob(ctx context.Context, s dag.State, key, name string, size, maxBytes int64) error {
	vc, ok := s.(dag.ValueCreator)
	if !ok {
		v, err := r.getBlob(ctx, name, size, maxBytes)
		if err != nil {
			return err
		}
		return s.Put(key, v)
	}
	obj, err := r.openBlob(ctx, name, size, maxBytes)
	if err != nil {
		return err
	}
	defer obj.Close()
	w, err := vc.CreateValue(key)
	if err != nil {
		return err
	}
	n, err := io.Copy(w, io.LimitReader(obj, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("read %q from object store %s: %d bytes, want %d", name, r.lay.blobsName(), n, size)
	}
	if err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

func (r *resources) checkBlobSize(name string, size, maxBytes int64) error {
	if size > maxBytes {
		return &limit.Error{Kind: limit.MessageSize, Subject: name, Current: float64(size), Limit: float64(maxBytes), Unit: "bytes",
			Detail: "MaxValueBytes"}
	}
	return nil
}

// getBlob reads a value from the object store, refusing one larger than
// maxBytes.
func (r *resources) getBlob(ctx context.Context, name string, size, maxBytes int64) ([]byte, error) {
	if err := r.checkBlobSize(name, size, maxBytes); err != nil {
		return nil, err
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
