package disk

import (
	"context"
	"io"
)

// Writer returns an io.Writer that writes to w at no more than the write
// rate. Each Write waits for tokens before passing a piece (at most one
// bucket) to w, so a large Write is split into several w.Write calls. When
// the rate is unlimited, Write calls w.Write directly: no wait, no
// allocation, no split.
//
// ctx bounds the waits, not w itself: when ctx ends, a waiting Write returns
// the bytes written so far and ctx's error (its cause, if set), and a Write
// whose bytes cannot pass before ctx's deadline fails before writing
// anything, with an error matching context.DeadlineExceeded and a
// *limit.Error of kind disk_io. The Writer is meant for one operation (it
// holds ctx); it is as safe for concurrent use as w is.
func (t *Throttler) Writer(ctx context.Context, w io.Writer) io.Writer {
	return &writer{ctx: ctx, w: w, b: t.write}
}

// Reader returns an io.Reader that reads from r at no more than the read
// rate. Each Read asks r for at most one bucket of bytes and then waits for
// the tokens of what it got, so the rate is paid for bytes actually read.
// When the rate is unlimited, Read calls r.Read directly.
//
// When ctx ends during the wait, Read returns the bytes it has read (they
// are valid) together with ctx's error; a Read started after ctx ended
// returns 0 and ctx's error. The Reader is meant for one operation; it is as
// safe for concurrent use as r is.
func (t *Throttler) Reader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r, b: t.read}
}

type writer struct {
	ctx context.Context
	w   io.Writer
	b   *bucket
}

func (tw *writer) Write(p []byte) (int, error) {
	if tw.b.unlimited() {
		return tw.w.Write(p)
	}
	return tw.b.write(tw.ctx, tw.w, p)
}

// write passes p to w piece by piece, each piece after its tokens.
func (b *bucket) write(ctx context.Context, w io.Writer, p []byte) (int, error) {
	if err := b.fits(ctx, int64(len(p))); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		k, err := b.take(ctx, int64(len(p)))
		if err != nil {
			return written, err
		}
		n, err := w.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		if n < int(k) {
			return written, io.ErrShortWrite
		}
		p = p[k:]
	}
	return written, nil
}

type reader struct {
	ctx context.Context
	r   io.Reader
	b   *bucket
}

func (tr *reader) Read(p []byte) (int, error) {
	if tr.b.unlimited() {
		return tr.r.Read(p)
	}
	if tr.ctx.Err() != nil {
		return 0, context.Cause(tr.ctx)
	}
	if burst := tr.b.lim.Burst(); len(p) > burst {
		p = p[:burst]
	}
	n, err := tr.r.Read(p)
	if n > 0 {
		if werr := tr.b.pay(tr.ctx, int64(n)); werr != nil {
			return n, werr
		}
	}
	return n, err
}
