package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
// are deleted by the attempt that put them. Forget fails, deleting
// nothing, when it cannot list or delete the run's records; it carries on
// past a value it cannot delete and returns those errors joined, with the
// counts of what it did delete. It costs two requests to the server (the
// listing and the purge), one per result and four per value: about 0.8 ms
// on a loopback connection for a run of one remote node (BENCHMARKS.md).
func (c *Coordinator) Forget(ctx context.Context, run string) (ForgetStats, error) {
	var st ForgetStats
	if run == "" {
		return st, errors.New("remote: Forget: empty run ID")
	}
	var errs []error
	// The run's records, of the three kinds, in one request (a listing
	// of the bucket's keys would make a consumer on the server).
	prefix := "$KV." + c.res.lay.resultsName() + "."
	filter := prefix + "*." + enc(run) + ".>"
	info, err := c.res.resStream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return st, fmt.Errorf("remote: forget run %s: list its records in %s: %w", run, c.res.lay.resultsName(), err)
	}
	if len(info.State.Subjects) == 0 {
		return st, nil
	}
	var blobs []entry
	for subj := range info.State.Subjects {
		k := strings.TrimPrefix(subj, prefix)
		if !strings.HasPrefix(k, "ok.") {
			continue
		}
		e, err := c.res.results.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or forgotten meanwhile
		}
		if err != nil {
			return st, fmt.Errorf("remote: forget run %s: read %s: %w", run, k, err)
		}
		if r, err := decodeResult(e.Value()); err == nil {
			for _, o := range r.Outputs {
				if o.Kind == valueBlob {
					blobs = append(blobs, o)
				}
			}
		}
	}
	// The records first, in one purge that leaves no marker (a marker
	// would keep its file-store block on the server's disk until
	// ResultTTL): a value deleted under a result that stays would fail
	// the node of a resumed run.
	if err := c.res.resStream.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
		return st, fmt.Errorf("remote: forget run %s: delete its records from %s: %w", run, c.res.lay.resultsName(), err)
	}
	st.Records = len(info.State.Subjects)
	for _, o := range blobs {
		for i := range blobParts(o.Size) {
			name := partName(o.Blob, i)
			err := c.res.deleteObject(ctx, name)
			switch {
			case err == nil:
				st.Values++
				st.Bytes += partSize(o.Size, i)
			case !errors.Is(err, jetstream.ErrObjectNotFound):
				errs = append(errs, fmt.Errorf("delete %q from object store %s: %w", name, c.res.lay.blobsName(), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("remote: forget run %s: %w", run, err)
	}
	return st, nil
}
