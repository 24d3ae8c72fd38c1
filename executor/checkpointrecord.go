package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/cemaf-go/cemaf/dag"
)

// What a run records in the store: begin writes the run's record and its
// graph, commit adds groups of completions (and the State keys they
// changed), finish writes the outcome.

// graphRecord is the graph a run started with, kept to explain a refused
// resume (GraphChangedError).
type graphRecord struct {
	Nodes    []string    `json:"nodes"`
	Edges    [][2]string `json:"edges"`
	Branches []string    `json:"branches,omitempty"`
}

// doneRecord is the record of one completed node.
type doneRecord struct {
	Attempts int       `json:"attempts"`
	End      time.Time `json:"end"`
	// Chosen is a branch node's choice (executor.Choose), which a resume
	// honours instead of running the branch again.
	Chosen []string `json:"chosen,omitempty"`
}

// restored is what a resume brings back from the store.
type restored struct {
	done    map[string]doneRecord
	state   map[string][]byte
	deleted []string
	// accepted are the input changes this resume accepted (IgnoreInputs).
	accepted []InputChange
	// answers are the answers to waiting nodes: recorded ones, updated
	// with those given now.
	answers map[string]string
}

// beginArgs are the arguments of begin.
type beginArgs struct {
	id string
	g  *dag.Graph
	// durable: the State keeps its own values (DurableState).
	durable bool
	// resume: the run must exist (else the error matches ErrRunNotFound).
	resume bool
	// inputs and ignoreInputs: RunOptions.Inputs and IgnoreInputs.
	inputs       map[string]string
	ignoreInputs bool
	// answers: RunOptions.Answers.
	answers map[string]string
	now     time.Time
}

// begin records a new run, or loads an unfinished one with the same ID.
func (s *CheckpointStore) begin(a beginArgs) (*restored, error) {
	id, g, durable, now := a.id, a.g, a.durable, a.now
	fp := g.Fingerprint()
	var out *restored
	err := s.update(func(tx *bolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		b := runs.Bucket([]byte(id))
		if b == nil && a.resume {
			return ErrRunNotFound
		}
		if b == nil && len(a.answers) > 0 {
			return checkAnswers(id, a.answers, nil)
		}
		if b == nil {
			b, err := runs.CreateBucket([]byte(id))
			if err != nil {
				return err
			}
			rec := RunRecord{ID: id, Graph: fp, Nodes: g.Len(), Created: now, Updated: now, Status: "running", DurableState: durable}
			gr := graphRecord{Edges: g.Edges()}
			for i := range g.Len() {
				gr.Nodes = append(gr.Nodes, g.At(i).ID)
				if g.At(i).Branch {
					gr.Branches = append(gr.Branches, g.At(i).ID)
				}
			}
			for _, name := range [][]byte{bucketDone, bucketState, bucketDeleted} {
				if _, err := b.CreateBucket(name); err != nil {
					return err
				}
			}
			if err := putJSON(b, keyGraph, gr); err != nil {
				return err
			}
			if len(a.inputs) > 0 {
				if err := putJSON(b, keyInputs, inputsRecord{Inputs: a.inputs}); err != nil {
					return err
				}
			}
			return putJSON(b, keyInfo, rec)
		}
		rec, err := readInfo(b)
		if err != nil {
			return err
		}
		if rec.Finished() {
			return fmt.Errorf("%w at %s", ErrRunFinished, rec.Updated.Format(time.RFC3339))
		}
		if rec.DurableState && !durable {
			return errors.New("it kept its values in a durable State (a pager in durable mode); resume it with that State")
		}
		if rec.Graph != fp {
			var gr graphRecord
			if err := json.Unmarshal(b.Get(keyGraph), &gr); err != nil {
				return fmt.Errorf("%w: graph record of run %q: %v", ErrCheckpointCorrupt, id, err)
			}
			return diffGraphs(id, gr, g)
		}
		ir, err := readInputs(b)
		if err != nil {
			return err
		}
		changed := diffInputs(ir.Inputs, a.inputs)
		var accepted []InputChange
		switch {
		case len(changed) == 0:
		case !a.ignoreInputs:
			return &InputsChangedError{RunID: id, Changed: changed}
		case len(a.inputs) > 0:
			accepted = changed
			ir.Inputs, ir.Accepted = a.inputs, append(ir.Accepted, changed...)
			if err := putJSON(b, keyInputs, ir); err != nil {
				return err
			}
		}
		if err := checkAnswers(id, a.answers, rec.Questions); err != nil {
			return err
		}
		answers, err := readAnswers(b)
		if err != nil {
			return err
		}
		if len(a.answers) > 0 {
			if answers == nil {
				answers = map[string]string{}
			}
			maps.Copy(answers, a.answers)
			if err := putJSON(b, keyAnswers, answers); err != nil {
				return err
			}
		}
		out = &restored{done: map[string]doneRecord{}, state: map[string][]byte{}, accepted: accepted, answers: answers}
		done, state, deleted := b.Bucket(bucketDone), b.Bucket(bucketState), b.Bucket(bucketDeleted)
		if done == nil || state == nil || deleted == nil {
			return fmt.Errorf("%w: run %q lacks its buckets", ErrCheckpointCorrupt, id)
		}
		if err := done.ForEach(func(k, v []byte) error {
			var d doneRecord
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("%w: completion of node %q in run %q: %v", ErrCheckpointCorrupt, k, id, err)
			}
			i, ok := g.IndexOf(string(k))
			if !ok {
				return fmt.Errorf("%w: run %q records unknown node %q", ErrCheckpointCorrupt, id, k)
			}
			for _, c := range d.Chosen {
				j, ok := g.IndexOf(c)
				if !ok || !g.At(i).Branch || !slices.Contains(g.Dependents(i), int32(j)) {
					return fmt.Errorf("%w: run %q records that node %q chose %q, which is not a dependent of that branch", ErrCheckpointCorrupt, id, k, c)
				}
			}
			out.done[string(k)] = d
			return nil
		}); err != nil {
			return err
		}
		if err := state.ForEach(func(k, v []byte) error {
			out.state[string(k)] = slices.Clone(v)
			return nil
		}); err != nil {
			return err
		}
		if err := deleted.ForEach(func(k, _ []byte) error {
			out.deleted = append(out.deleted, string(k))
			return nil
		}); err != nil {
			return err
		}
		rec.Status, rec.Error, rec.Updated = "running", "", now
		return putJSON(b, keyInfo, rec)
	})
	if err != nil {
		if gce := (*GraphChangedError)(nil); errors.As(err, &gce) {
			return nil, err // a complete message of its own
		}
		if ice := (*InputsChangedError)(nil); errors.As(err, &ice) {
			return nil, err
		}
		if errors.Is(err, ErrRunNotFound) {
			return nil, s.runNotFound(id)
		}
		return nil, fmt.Errorf("executor: run %q: %w", id, err)
	}
	return out, nil
}

// readInputs reads a run's inputs record; a run recorded without inputs
// (or by a version that did not record them) has none.
func readInputs(b *bolt.Bucket) (inputsRecord, error) {
	var ir inputsRecord
	raw := b.Get(keyInputs)
	if raw == nil {
		return ir, nil
	}
	if err := json.Unmarshal(raw, &ir); err != nil {
		return ir, fmt.Errorf("%w: inputs record: %v", ErrCheckpointCorrupt, err)
	}
	return ir, nil
}

// completionRecord is one node completion waiting to be committed.
type completionRecord struct {
	node     string
	attempts int
	end      time.Time
	changes  []change
	chosen   []string // a branch node's choice
}

type change struct {
	key     string
	value   []byte
	deleted bool
}

// commit makes a group of completions durable in one transaction.
func (s *CheckpointStore) commit(id string, batch []completionRecord, now time.Time) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns).Bucket([]byte(id))
		if b == nil {
			return fmt.Errorf("run %q vanished from the store", id)
		}
		done, state, deleted := b.Bucket(bucketDone), b.Bucket(bucketState), b.Bucket(bucketDeleted)
		added := 0
		for _, c := range batch {
			for _, ch := range c.changes {
				k := []byte(ch.key)
				if ch.deleted {
					if err := state.Delete(k); err != nil {
						return err
					}
					if err := deleted.Put(k, nil); err != nil {
						return err
					}
					continue
				}
				if err := deleted.Delete(k); err != nil {
					return err
				}
				if err := state.Put(k, ch.value); err != nil {
					return err
				}
			}
			if done.Get([]byte(c.node)) == nil {
				added++
			}
			if err := putJSON(done, []byte(c.node), doneRecord{Attempts: c.attempts, End: c.end, Chosen: c.chosen}); err != nil {
				return err
			}
		}
		rec, err := readInfo(b)
		if err != nil {
			return err
		}
		rec.Completed += added
		rec.Updated = now
		return putJSON(b, keyInfo, rec)
	})
}

// readAnswers reads a run's recorded answers (nil when there are none).
func readAnswers(b *bolt.Bucket) (map[string]string, error) {
	raw := b.Get(keyAnswers)
	if raw == nil {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: answers record: %v", ErrCheckpointCorrupt, err)
	}
	return m, nil
}

// finish records the end of a run: succeeded, failed, cancelled or
// waiting, with the questions of the nodes waiting for input (whose
// recorded answers, if any, have been used: they asked again).
func (s *CheckpointStore) finish(id, status string, runErr error, waiting []Question, now time.Time) error {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		rec, err := readInfo(b)
		if err != nil {
			return err
		}
		rec.Status, rec.Updated, rec.Questions = status, now, waiting
		rec.Error = ""
		if runErr != nil {
			rec.Error = runErr.Error()
		}
		if len(waiting) > 0 {
			answers, err := readAnswers(b)
			if err != nil {
				return err
			}
			if answers != nil {
				for _, q := range waiting {
					delete(answers, q.Node)
				}
				if err := putJSON(b, keyAnswers, answers); err != nil {
					return err
				}
			}
		}
		if status == "succeeded" {
			// A finished run is kept for inspection only: drop the values.
			for _, name := range [][]byte{bucketState, bucketDeleted} {
				if err := b.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
					return err
				}
			}
		}
		return putJSON(b, keyInfo, rec)
	})
	if err != nil {
		return err
	}
	_, err = s.GC(now)
	return err
}
