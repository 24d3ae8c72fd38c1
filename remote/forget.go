package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ForgetStats counts what Forget deleted.
type ForgetStats struct {
	Records int   // results, failure records and handed-back notes
	Values  int   // objects of the object store (a large value is one per 16 MiB)
	Bytes   int64 // the bytes of those objects
}

// Forget deletes what the fleet recorded for run: the results, failure
// records and hand-back notes of its remote nodes in the results bucket,
// and the large values those results point to in the object store.
// Without it they stay until Layout.ResultTTL (24 hours by default), and
// a device that runs often fills the hub's store with values it has
// already copied.
//
// Call it once RunWith has returned and the run will not be resumed (it
// succeeded, or it is given up): a resumed run would have reused the
// results Forget deletes, and runs its remote nodes again instead (their
// tasks are published afresh, even within Layout.Duplicates). A task of
// run still on a worker records its result afresh, which then stays
// until ResultTTL. Values that a task's inputs put in the object store
// are deleted by the attempt that put them. Forget carries on past a
// record or value it cannot delete and returns those errors joined, with
// the counts of what it did delete.
func (c *Coordinator) Forget(ctx context.Context, run string) (ForgetStats, error) {
	var st ForgetStats
	if run == "" {
		return st, errors.New("remote: Forget: empty run ID")
	}
	var errs []error
	for _, kind := range []string{"ok.", "fail.", "last."} {
		keys, err := c.listKeys(ctx, kind+enc(run)+".>")
		if err != nil {
			return st, fmt.Errorf("remote: forget run %s: %w", run, err)
		}
		for _, k := range keys {
			var blobs []entry
			if kind == "ok." {
				e, err := c.res.results.Get(ctx, k)
				if errors.Is(err, jetstream.ErrKeyNotFound) {
					continue // expired or forgotten meanwhile
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("read %s: %w", k, err))
					continue
				}
				if r, err := decodeResult(e.Value()); err == nil {
					for _, o := range r.Outputs {
						if o.Kind == valueBlob {
							blobs = append(blobs, o)
						}
					}
				}
			}
			// The record first: a value deleted under a result that
			// stays would fail the node of a resumed run.
			if err := c.res.deleteRecord(ctx, k); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", k, err))
				continue
			}
			st.Records++
			for _, o := range blobs {
				for i := range blobParts(o.Size) {
					name := partName(o.Blob, i)
					err := c.res.deleteObject(ctx, name)
					switch {
					case err == nil:
						st.Values++
						st.Bytes += min(o.Size-int64(i)*blobPartBytes, blobPartBytes)
					case !errors.Is(err, jetstream.ErrObjectNotFound):
						errs = append(errs, fmt.Errorf("delete %q from object store %s: %w", name, c.res.lay.blobsName(), err))
					}
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("remote: forget run %s: %w", run, err)
	}
	return st, nil
}

// deleteRecord removes key from the results bucket, leaving no marker: a
// purge marker of the bucket would stay until ResultTTL, about 150 bytes of
// the server's disk per record, and a missing key reads the same
// (jetstream.ErrKeyNotFound; a later Create of it succeeds).
func (r *resources) deleteRecord(ctx context.Context, key string) error {
	return r.resStream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+r.lay.resultsName()+"."+key))
}
