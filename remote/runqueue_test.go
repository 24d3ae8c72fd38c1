package remote_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/remote"
)

// TestRunQueue: one service submits runs, another takes and runs them; the
// submitter gets each outcome once; a full queue refuses with a limit error.
func TestRunQueue(t *testing.T) {
	h := startHub(t, hubOpts())
	front, err := remote.OpenRunQueue(context.Background(), connect(t, h.ClientURL()), remote.RunQueueOptions{Layout: testLayout(), MaxQueued: 3})
	require.NoError(t, err)
	back, err := remote.OpenRunQueue(context.Background(), connect(t, h.ClientURL()), remote.RunQueueOptions{Layout: testLayout(), MaxQueued: 3})
	require.NoError(t, err)

	ctx := context.Background()
	require.NoError(t, front.Submit(ctx, "answer", "r1", []byte("hello")))
	require.NoError(t, front.Submit(ctx, "answer", "r2", []byte("fail")))
	require.NoError(t, front.Submit(ctx, "answer", "r2", []byte("fail"))) // same ID: stored once
	require.NoError(t, front.Submit(ctx, "answer", "r3", []byte("x")))
	err = front.Submit(ctx, "answer", "r4", []byte("y"))
	var le *limit.Error
	require.ErrorAs(t, err, &le)
	require.Equal(t, limit.Queue, le.Kind)
	depth, err := front.Depth(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, depth)

	done := make(chan error, 1)
	go func() {
		for range 3 {
			req, err := back.Take(ctx, "answer")
			if err != nil {
				done <- err
				return
			}
			var runErr error
			if string(req.Input) == "fail" {
				runErr = errors.New("model refused")
			}
			if err := req.Done(ctx, []byte(strings.ToUpper(string(req.Input))), runErr); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	out, err := front.Result(ctx, "r1")
	require.NoError(t, err)
	require.Equal(t, "HELLO", string(out))
	_, err = front.Result(ctx, "r2")
	var rf *remote.RunFailedError
	require.ErrorAs(t, err, &rf)
	require.Equal(t, "model refused", rf.Message)
	out, err = front.Result(ctx, "r3")
	require.NoError(t, err)
	require.Equal(t, "X", string(out))
	require.NoError(t, <-done)
	depth, err = front.Depth(ctx)
	require.NoError(t, err)
	require.Zero(t, depth)
}
