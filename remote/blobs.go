package remote

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

// blobPartBytes is the most one object of the object store holds: a larger
// value is stored as several objects (blobParts), each written before the
// next is read. The object store publishes an object's chunks without
// waiting for the server (up to 4,000 in flight), and a JetStream server
// refuses messages ("too many requests") once a stream's queue holds
// 128 MiB it has not yet written: parts keep what one value has in flight
// far below that, whatever its size.
const blobPartBytes = 16 << 20

// blobParts is how many objects a value of size bytes is stored in.
func blobParts(size int64) int {
	if size <= blobPartBytes {
		return 1
	}
	return int((size + blobPartBytes - 1) / blobPartBytes)
}

// partSize is the length of part i of a value of size bytes.
func partSize(size int64, i int) int64 {
	if i < blobParts(size)-1 {
		return blobPartBytes
	}
	return size - int64(i)*blobPartBytes
}

// partName is the name of part i of the blob name: the blob's own name for
// the first part. Blob names begin with "in/" or "out/", so a part's never
// equals another blob's.
func partName(name string, i int) string {
	if i == 0 {
		return name
	}
	return "part/" + strconv.Itoa(i) + "/" + name
}

// putBlob stores the value of key in s in the object store under name, in
// parts of blobPartBytes, reading it incrementally when s can (a pager does
// not materialise it). It returns the value's size and the names of the
// objects it wrote, for deleteBlobs; on error it deletes them itself.
func (r *resources) putBlob(ctx context.Context, name string, s dag.State, key string) (int64, []string, error) {
	rd, err := dag.NewValueReader(s, key)
	if err != nil {
		return 0, nil, err
	}
	br := bufio.NewReaderSize(rd, 32<<10)
	chunk := uint32(min(128<<10, r.maxPayload-msgHeadroom))
	var names []string
	var size int64
	for i := 0; ; i++ {
		part := partName(name, i)
		info, err := r.blobs.Put(ctx, jetstream.ObjectMeta{Name: part, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}},
			io.LimitReader(br, blobPartBytes))
		if err != nil {
			// The failed part too: a Put whose context ended while it
			// waited for acknowledgements may have stored its chunks and
			// its description.
			r.deleteBlobs(append(names, part))
			return 0, nil, fmt.Errorf("store in object store %s as %q: %w", r.lay.blobsName(), part, err)
		}
		names = append(names, part)
		size += int64(info.Size)
		if info.Size < blobPartBytes {
			return size, names, nil
		}
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			return size, names, nil
		} else if err != nil {
			r.deleteBlobs(names)
			return 0, nil, fmt.Errorf("store in object store %s as %q: read %q: %w", r.lay.blobsName(), name, key, err)
		}
	}
}

// deleteObject deletes the object name, then the marker that says so. The
// object store keeps a deleted object's marker until ResultTTL, and a
// file-store block of the server stays on disk while it holds one live
// message: each marker would keep the block it was written to, with the
// deleted chunks of every object in it (about 12 MiB of disk per run of the
// pi-agent over a 30 MB corpus). Without its marker the object reads as
// missing all the same (jetstream.ErrObjectNotFound).
func (r *resources) deleteObject(ctx context.Context, name string) error {
	if err := r.blobs.Delete(ctx, name); err != nil {
		return err
	}
	meta := "$O." + r.lay.blobsName() + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
	if err := r.blobStream.Purge(ctx, jetstream.WithPurgeSubject(meta)); err != nil {
		return fmt.Errorf("remove the delete marker of %q: %w", name, err)
	}
	return nil
}

// partsReader reads a blob of size bytes part after part, opening each
// when the one before has been read; a part of the wrong length is an
// error that names it.
type partsReader struct {
	ctx  context.Context // the reader's calls are within it: see openBlob
	r    *resources
	name string
	size int64
	i    int                    // the part being read
	cur  jetstream.ObjectResult // part i, nil before it is opened
	n    int64                  // bytes read of part i
}

func (p *partsReader) want(i int) int64 { return partSize(p.size, i) }

func (p *partsReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if p.i >= blobParts(p.size) {
			return 0, io.EOF
		}
		if p.cur == nil {
			obj, err := p.r.blobs.Get(p.ctx, partName(p.name, p.i))
			if err != nil {
				return 0, fmt.Errorf("read %q from object store %s: %w", partName(p.name, p.i), p.r.lay.blobsName(), err)
			}
			p.cur, p.n = obj, 0
		}
		n, err := p.cur.Read(b[:min(int64(len(b)), p.want(p.i)-p.n+1)])
		p.n += int64(n)
		if p.n > p.want(p.i) || (errors.Is(err, io.EOF) && p.n != p.want(p.i)) {
			return 0, fmt.Errorf("read %q from object store %s: more or fewer bytes than the %d of a value of %d",
				partName(p.name, p.i), p.r.lay.blobsName(), p.want(p.i), p.size)
		}
		if errors.Is(err, io.EOF) {
			p.cur.Close()
			p.cur = nil
			p.i++
			err = nil
		}
		if n > 0 || err != nil {
			if err != nil {
				err = fmt.Errorf("read %q from object store %s: %w", partName(p.name, p.i), p.r.lay.blobsName(), err)
			}
			return n, err
		}
	}
}

func (p *partsReader) Close() error {
	if p.cur != nil {
		p.cur.Close()
		p.cur = nil
	}
	return nil
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
		return fmt.Errorf("spool %q: %w", name, err)
	}
	return nil
}

// openBlob opens the blob name, of size bytes, to read it: size is checked
// against maxBytes first. ctx bounds the reads; the caller closes it.
func (r *resources) openBlob(ctx context.Context, name string, size, maxBytes int64) (io.ReadCloser, error) {
	if err := r.checkBlobSize(name, size, maxBytes); err != nil {
		return nil, err
	}
	return &partsReader{ctx: ctx, r: r, name: name, size: size}, nil
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
	if _, err := io.Copy(w, obj); err != nil {
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
	obj, err := r.openBlob(ctx, name, size, maxBytes)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	v := make([]byte, size)
	if _, err := io.ReadFull(obj, v); err != nil {
		return nil, err
	}
	// The end, or the error of a part longer than its share.
	if _, err := obj.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		return nil, err
	}
	return v, nil
}
