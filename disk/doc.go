// Package disk keeps an agent from flooding or filling its storage: a
// token-bucket Throttler for read and write rates, throttled readers,
// writers and atomic file writes, and an I/O priority hint. (How full the
// disk may get is a ladder of package throttle: the Sampler reads the file
// system that holds the storage directory, and the Breaker pauses work.)
//
// # Model
//
// A Throttler holds two token buckets from golang.org/x/time/rate, one for
// writes and one for reads, shared by everything it wraps. Throttler.Writer
// and Throttler.Reader wrap an io.Writer or io.Reader for one operation
// under a context; Throttler.WriteFile and Throttler.WriteAtomic write a
// file atomically (temporary file in the same directory, fsync, rename,
// fsync of the directory) through the write bucket; WaitWrite and WaitRead
// serve callers that do their own I/O. A request larger than the bucket is
// split into bucket-sized pieces, each written after its tokens arrive (a
// rate.Limiter cannot wait for more than its burst at once). A rate of 0 is
// unlimited: the wrappers then call straight through, with no wait and no
// allocation. SetWriteMBps and SetReadMBps change a rate while it is in
// use; waits in progress are recomputed at the new rate.
//
// SetIOPriority lowers the process's Linux I/O scheduling class (best
// effort at a level, or idle) with ioprio_set(2): the counterpart of picking
// an I/O scheduler, without touching the device's settings.
//
// # Units
//
// Rates are in MB/s with 1 MB = 1,000,000 bytes (BytesPerMB), the unit SD
// card and eMMC speeds are quoted in. Sizes and counts of bytes are int64
// bytes (the package builds for 32-bit ARM).
//
// # Goroutines and lifetimes
//
// Nothing in this package starts a goroutine or needs closing. Waits happen
// on the caller's goroutine and end when the caller's ctx ends, returning
// ctx's error (or its cause); a wait that cannot finish before ctx's
// deadline fails at once with an error matching context.DeadlineExceeded
// and a *limit.Error of kind disk_io. A Throttler is safe for concurrent
// use; the wrappers are as safe as what they wrap.
//
// # Caveats
//
//   - The buckets count bytes handed to the kernel, not bytes reaching the
//     device: the page cache absorbs bursts and writes back later, so the
//     device sees a smoother but delayed flow. WriteAtomic's fsync makes
//     the file's bytes reach the device before it returns.
//   - The wrappers hide io.ReaderFrom/io.WriterTo of what they wrap, so
//     io.Copy through them does not use copy_file_range or sendfile.
//   - After an idle period a full bucket (100 ms of the rate by default)
//     passes at once.
//   - I/O priorities are per thread on Linux and are honoured only by some
//     I/O schedulers (BFQ fully; mq-deadline by class; none not at all).
//     Elsewhere SetIOPriority does nothing.
package disk
