package throttle

import (
	"context"
	"iter"
)

// Stream yields the items of seq, consulting g between items: before
// handing each item on, it calls g.Check and, when that fails, blocks in
// g.Wait. When the wait fails (ctx ended), Stream yields the zero T with
// the error once and stops. Use it to process a large input without
// outrunning memory:
//
//	for chunk, err := range throttle.Stream(ctx, memGuard, chunks) {
//		if err != nil {
//			return err
//		}
//		process(chunk)
//	}
//
// The check costs one Check call per item (an atomic load for the guards of
// this package).
func Stream[T any](ctx context.Context, g Guard, seq iter.Seq[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for v := range seq {
			if err := Admit(ctx, g); err != nil {
				var zero T
				yield(zero, err)
				return
			}
			if !yield(v, nil) {
				return
			}
		}
	}
}

// Admit is the fast path for a Guard: nil at once when g.Check passes,
// otherwise g.Wait(ctx).
func Admit(ctx context.Context, g Guard) error {
	if g.Check() == nil {
		return nil
	}
	return g.Wait(ctx)
}
