package factories_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/throttle"
)

// steady is a SampleSource reporting a healthy device.
type steady struct{}

func (steady) Sample(now time.Time) (*throttle.Sample, error) {
	return &throttle.Sample{Time: now, CPUPercent: 20, MemoryUsedPercent: 30, MemoryTotalBytes: 4 << 30, ProcessAnonBytes: 50 << 20, ProcessRSSBytes: 60 << 20}, nil
}

func pi4Config(t *testing.T) factories.ResourceConfig {
	t.Helper()
	sysfs, err := filepath.Abs("../thermal/testdata/pi4")
	require.NoError(t, err)
	cfg, _, err := factories.Load(factories.LoadOptions{
		Environ: []string{
			"CEMAF_RESOURCE_SYSFS_ROOT=" + sysfs,
			"CEMAF_RESOURCE_PAGER_STORAGE_PATH=" + filepath.Join(t.TempDir(), "pages"),
			"CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB=4",
			"CEMAF_RESOURCE_CHECK_INTERVAL_SECONDS=0.05",
		},
		Host: pi4,
	})
	require.NoError(t, err)
	return cfg
}

func TestRuntimeRunsAPagedGraph(t *testing.T) {
	cfg := pi4Config(t)
	rt, err := factories.NewRuntime(cfg, factories.RuntimeOptions{
		Guard:          factories.GuardOptions{SampleSource: steady{}},
		CheckpointPath: filepath.Join(t.TempDir(), "runs.db"),
	})
	require.NoError(t, err)
	defer rt.Close()

	require.NotNil(t, rt.Guard.Thermal, "the Pi 4 fixture has a cpu-thermal zone")
	temp, ok := rt.Guard.Thermal.ReadTemperatureC()
	require.True(t, ok)
	assert.InDelta(t, 50, temp, 30)
	require.NoError(t, rt.Guard.Check(), "a healthy, cool device")

	// 64 values of 256 KiB through a 4 MB pager.
	var nodes []dag.Node
	for i := range 64 {
		nodes = append(nodes, dag.Node{ID: "write-" + strconv.Itoa(i), Run: func(_ context.Context, s dag.State) error {
			v := make([]byte, 256<<10)
			for k := range v {
				v[k] = byte(i + k%7)
			}
			return s.Put("doc/"+strconv.Itoa(i), v)
		}})
	}
	var deps []string
	for i := range 64 {
		deps = append(deps, "write-"+strconv.Itoa(i))
	}
	nodes = append(nodes, dag.Node{ID: "sum", DependsOn: deps, Run: func(_ context.Context, s dag.State) error {
		total := 0
		for i := range 64 {
			v, err := s.Get("doc/" + strconv.Itoa(i))
			if err != nil {
				return err
			}
			total += int(v[1])
		}
		return dag.PutJSON(s, "sum", total)
	}})
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	res, err := rt.Executor.RunWith(context.Background(), g, rt.State(), executor.RunOptions{ID: "paged"})
	require.NoError(t, err)
	assert.Equal(t, 65, res.Count(executor.Succeeded))
	sum, err := dag.GetJSON[int](rt.State(), "sum")
	require.NoError(t, err)
	want := 0
	for i := range 64 {
		want += int(byte(i + 1))
	}
	assert.Equal(t, want, sum)
	st := rt.Pager.Stats()
	assert.LessOrEqual(t, st.BytesInMemory, int64(4<<20))
	assert.Positive(t, st.PagesOnDisk, "most of the 16 MiB was paged out")
	rec, err := rt.Checkpoints.Run("paged")
	require.NoError(t, err)
	assert.True(t, rec.Finished())
	assert.Equal(t, executor.Limits{CPU: 2, IO: 256}, rt.Base.Limits(), "host-derived classes of a 4-core board")
	require.NoError(t, rt.Close())
	require.NoError(t, rt.Close(), "Close is idempotent")
}

type blocker struct {
	mu     sync.Mutex
	closed bool
	opened chan struct{}
}

func (b *blocker) Check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("custom guard: quota exhausted")
	}
	return nil
}

func (b *blocker) Wait(ctx context.Context) error {
	b.mu.Lock()
	closed, ch := b.closed, b.opened
	b.mu.Unlock()
	if !closed {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestGuardOptionsAddGuards(t *testing.T) {
	cfg := pi4Config(t)
	custom := &blocker{closed: true, opened: make(chan struct{})}
	g, err := factories.CreateResourceGuard(cfg, factories.GuardOptions{
		SampleSource: steady{},
		Guards:       map[string]throttle.Guard{"quota": custom},
	})
	require.NoError(t, err)
	defer g.Close()
	err = g.Check()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "quota exhausted")
	var ce *throttle.CompositeError
	require.ErrorAs(t, err, &ce)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.Error(t, g.Wait(ctx), "the replaced member blocks the composite")
	custom.mu.Lock()
	custom.closed = false
	close(custom.opened)
	custom.mu.Unlock()
	assert.NoError(t, g.Check())
}

func TestRuntimeFailsCleanlyOnBadSensorPath(t *testing.T) {
	cfg := pi4Config(t)
	cfg.ThermalSensorPath = "/nonexistent/thermal_zone9/temp"
	_, err := factories.NewRuntime(cfg, factories.RuntimeOptions{Guard: factories.GuardOptions{SampleSource: steady{}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/nonexistent/thermal_zone9/temp")
}

func TestRuntimeRefusesWhatItSets(t *testing.T) {
	cfg := pi4Config(t)
	_, err := factories.NewRuntime(cfg, factories.RuntimeOptions{
		Executor: executor.Options{Limits: executor.Limits{CPU: 3}, Gate: &blocker{opened: make(chan struct{})}},
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RuntimeOptions.Executor.Limits is set, but the runtime sets it: set CEMAF_RESOURCE_CPU_PARALLEL")
	assert.Contains(t, err.Error(), "RuntimeOptions.Executor.Gate is set, but the runtime sets it: add it to RuntimeOptions.Guard.Guards")
}

// The disk ladder watches the file system that holds the storage, not the
// temporary directory: one path per file system.
func TestStorageFileSystemsAreWatched(t *testing.T) {
	cfg := pi4Config(t)
	store := t.TempDir()
	g, err := factories.CreateResourceGuard(cfg, factories.GuardOptions{StorageDirs: []string{filepath.Join(store, "not-yet", "pages"), store, "/proc"}})
	require.NoError(t, err)
	defer g.Close()
	assert.Equal(t, []string{store, "/proc"}, g.DiskPaths, "a missing directory stands for its parent; one path per file system")
	smp := g.Monitor.Snapshot().Sample
	_, ok := smp.Disk(store)
	assert.True(t, ok, "the storage file system is sampled: %+v", smp.Disks)
}
