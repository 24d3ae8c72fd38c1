package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/paging"
)

// The index lifecycle of serve: the corpus index is built on the first
// request that needs it (concurrent requests share one build) into a pager
// of its own, shared read-only by every run, and released with the LLM
// client's connections after the idle timeout, when no run is in flight
// or queued.

// builtIndex is the corpus index in a paged State.
type builtIndex struct {
	users  int // runs using it (guarded by server.mu)
	pager  *paging.Pager
	unreg  func()
	built  time.Time
	chunks int
	docs   int
}

func (s *server) indexDir() string { return filepath.Join(s.opts.storage, "serve", "index") }

// ensureIndex returns the built index, building it once if needed;
// concurrent callers share one build. The caller must releaseIndex it: an
// index in use is not unloaded.
func (s *server) ensureIndex(ctx context.Context) (*builtIndex, error) {
	for {
		s.mu.Lock()
		if s.index != nil {
			idx := s.index
			idx.users++
			s.mu.Unlock()
			return idx, nil
		}
		if s.building != nil {
			ch := s.building
			s.mu.Unlock()
			select {
			case <-ch:
				s.mu.Lock()
				err := s.buildErr
				s.mu.Unlock()
				if err != nil {
					return nil, err
				}
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.building = ch
		s.mu.Unlock()
		idx, err := s.buildIndex(ctx)
		s.mu.Lock()
		s.index, s.buildErr, s.building = idx, err, nil
		if idx != nil {
			idx.users++
		}
		s.mu.Unlock()
		close(ch)
		if err != nil {
			return nil, err
		}
		return idx, nil
	}
}

func (s *server) buildIndex(ctx context.Context) (*builtIndex, error) {
	start := time.Now()
	pager, err := factories.CreateContextPager(s.cfg, nil, paging.Options{StoragePath: s.indexDir(), Logger: s.logger})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.indexLimit > 0 {
		pager.SetMemoryLimit(s.indexLimit)
	}
	s.mu.Unlock()
	spec := agentSpec{Corpus: s.opts.corpus, Shards: s.opts.shards, ChunkSize: s.opts.chunkSize, MaxDocBytes: maxDocBytes}
	nodes, _ := indexNodes(spec)
	g, err := dag.New(nodes...)
	if err == nil {
		_, err = s.rt.Executor.RunWith(ctx, g, pager, executor.RunOptions{ID: "index-" + executor.NewRunID(start)})
	}
	if err != nil {
		pager.Close()
		return nil, err
	}
	idx := &builtIndex{pager: pager, built: time.Now(), unreg: s.rt.Guard.Reclaimer.Register(pager, 0)}
	if cs, err := dag.GetJSON[chunkStats](pager, keyChunks); err == nil {
		idx.chunks = cs.Chunks
	}
	if docs, err := dag.GetJSON[[]docMeta](pager, keyDocs); err == nil {
		for _, d := range docs {
			if d.Skipped == "" {
				idx.docs++
			} else {
				s.logger.Warn("pi-agent serve: skipped a file of the corpus", "file", d.Name, "reason", d.Skipped)
			}
		}
	}
	s.logger.Info("pi-agent serve: index built", "docs", idx.docs, "chunks", idx.chunks, "took", time.Since(start))
	return idx, nil
}

// releaseIndex ends a run's use of idx.
func (s *server) releaseIndex(idx *builtIndex) {
	s.mu.Lock()
	idx.users--
	s.mu.Unlock()
}

// setIndexLimit makes the index pager follow the memory limit the adaptive
// executor gave the runtime's pager (and remembers it for the next build).
func (s *server) setIndexLimit(int64) {
	limit := s.rt.Pager.MemoryLimit()
	configured := int64(s.cfg.PagerMemoryLimitMB * (1 << 20))
	s.mu.Lock()
	idx := s.index
	s.indexLimit = 0
	if limit < configured {
		s.indexLimit = limit
	}
	s.mu.Unlock()
	if idx != nil {
		if err := idx.pager.SetMemoryLimit(limit); err != nil {
			s.logger.Warn("pi-agent serve: the index pager refused its new memory limit", "limit_bytes", limit, "error", err)
		}
	}
}

// janitor unloads the heavy resources after the idle timeout.
func (s *server) janitor(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(max(s.opts.idleTimeout/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.unloadIfIdle(now)
		}
	}
}

// unloadIfIdle releases the index and the LLM client's connections when no
// run is in flight and the last one ended at least the idle timeout ago.
func (s *server) unloadIfIdle(now time.Time) bool {
	last := s.lastUsed.Load()
	if s.inFlight.Load() > 0 || s.queued.Load() > 0 || last == 0 || now.Sub(time.Unix(0, last)) < s.opts.idleTimeout {
		return false
	}
	return s.unload("idle")
}

// unload releases the index, unless a run uses it, and the LLM client's
// connections.
func (s *server) unload(why string) bool {
	s.mu.Lock()
	idx, llm := s.index, s.llm
	if idx != nil && idx.users > 0 {
		s.mu.Unlock()
		return false
	}
	if llm != nil {
		s.llmDropped = s.llmDropped.Add(llm.Stats())
	}
	s.index, s.llm = nil, nil
	s.mu.Unlock()
	if llm != nil {
		llm.CloseIdleConnections()
	}
	if idx == nil {
		return llm != nil
	}
	idx.unreg()
	if err := idx.pager.Close(); err != nil {
		s.logger.Warn("pi-agent serve: closing the index pager", "error", err)
	}
	os.RemoveAll(s.indexDir())
	// Give the memory back to the device now, not at the next GC cycle.
	debug.FreeOSMemory()
	s.logger.Info("pi-agent serve: unloaded the index and LLM connections", "reason", why)
	return true
}
