package remote

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

func sampleTask() *task {
	return &task{ID: "r/n/2", Run: "r", Node: "n", Capability: "llm", Func: "summarise", Reply: "cemaf.reply.c1",
		Attempt: 2, TimeoutNs: 1500, Writes: []string{"out", "tmp"},
		Inputs: []entry{{Key: "a", Kind: valueInline, Data: []byte("hello")}, {Key: "b", Kind: valueBlob, Blob: "in/r/n/2/b", Size: 1 << 21},
			{Key: "c", Kind: valueAbsent}, {Key: "e", Kind: valueInline, Data: []byte{}}}}
}

func sampleResult() *result {
	return &result{TaskID: "r/n/2", Run: "r", Node: "n", Worker: "w1", Status: statusFailed, Deliveries: 3,
		Message: "model: out of memory", Flags: flagPermanent,
		Limit:   &limit.Error{Kind: limit.Memory, Current: 900, Limit: 512, Unit: "MB"},
		Outputs: []entry{{Key: "out", Kind: valueInline, Data: []byte("x")}, {Key: "tmp", Kind: valueAbsent}}}
}

func TestCodecRoundTrip(t *testing.T) {
	tk := sampleTask()
	got, err := decodeTask(tk.encode())
	require.NoError(t, err)
	require.Equal(t, tk, got)
	require.LessOrEqual(t, len(tk.encode()), tk.encodedSize())

	r := sampleResult()
	gr, err := decodeResult(r.encode())
	require.NoError(t, err)
	require.Equal(t, r, gr)
	require.LessOrEqual(t, len(r.encode()), r.encodedSize())
}

func TestDecodeRejectsBadMessages(t *testing.T) {
	good := sampleTask().encode()
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "field magic"},
		{"other magic", []byte("CMR1"), "field magic"},
		{"truncated", good[:len(good)-3], "inputs"},
		{"trailing", append(append([]byte{}, good...), 0), "trailing"},
		{"huge length", append([]byte(taskMagic), 0xff, 0xff, 0xff, 0xff, 0x0f), "field id"},
		{"no id", (&task{Node: "n", Func: "f"}).encode(), "field id: empty"},
		{"bad kind", func() []byte {
			tk := sampleTask()
			tk.Inputs = []entry{{Key: "a", Kind: 7}}
			return tk.encode()
		}(), "unknown kind 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeTask(tt.b)
			require.ErrorIs(t, err, ErrMalformed)
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err := decodeResult(sampleTask().encode())
	require.ErrorIs(t, err, ErrMalformed)
}

func FuzzDecode(f *testing.F) {
	f.Add(sampleTask().encode())
	f.Add(sampleResult().encode())
	f.Add([]byte(taskMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tk, err := decodeTask(b); err == nil {
			again, err := decodeTask(tk.encode())
			if err != nil {
				t.Fatalf("re-decode a decoded task: %v", err)
			}
			if again.ID != tk.ID || len(again.Inputs) != len(tk.Inputs) {
				t.Fatal("task changed through a round trip")
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if r, err := decodeResult(b); err == nil {
			if _, err := decodeResult(r.encode()); err != nil {
				t.Fatalf("re-decode a decoded result: %v", err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
	})
}

func TestPlaceValues(t *testing.T) {
	// Budget 1000-512 = 488 bytes for a 100-byte base.
	out, err := placeValues([]int64{300, -1, 50, 200}, 100, 1000, false)
	require.NoError(t, err)
	require.Equal(t, []int{0}, out) // the largest goes, the rest fits
	out, err = placeValues([]int64{10, 20}, 100, 1000, false)
	require.NoError(t, err)
	require.Empty(t, out)
	out, err = placeValues([]int64{300, 250}, 100, 1000, true)
	var le *limit.Error
	require.ErrorAs(t, err, &le)
	require.Equal(t, []int{0}, out)
	require.Equal(t, 300.0, le.Current)
	require.Equal(t, 488.0, le.Limit)
}

func TestSpecAndLayoutValidation(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"capability", (&Spec{Capability: "l.m"}).validate("n"), `node "n": Spec.Capability = "l.m"`},
		{"empty capability", (&Spec{}).validate("n"), "Spec.Capability"},
		{"dup read", (&Spec{Capability: "llm", Reads: []string{"a", "a"}}).validate("n"), `Spec.Reads lists "a" twice`},
		{"empty write", (&Spec{Capability: "llm", Writes: []string{""}}).validate("n"), "Spec.Writes[0]"},
		{"prefix", func() error { _, err := Layout{Prefix: "A.B"}.withDefaults(); return err }(), "Layout.Prefix"},
		{"ack wait", func() error { _, err := Layout{AckWait: -1}.withDefaults(); return err }(), "Layout.AckWait = -1ns"},
		{"max deliver", func() error { _, err := Layout{MaxDeliver: 5000}.withDefaults(); return err }(), "Layout.MaxDeliver = 5000"},
		{"duplicates", func() error { _, err := Layout{Duplicates: 48 * 3600e9, ResultTTL: 3600e9}.withDefaults(); return err }(), "Layout.Duplicates"},
		{"api timeout", func() error { _, err := Layout{APITimeout: -1}.withDefaults(); return err }(), "Layout.APITimeout = -1ns: must be ≥ 0 (0 = 15s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.ErrorContains(t, tt.err, tt.want) })
	}
	l, err := Layout{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, Layout{Prefix: "cemaf", AckWait: DefaultAckWait, MaxDeliver: DefaultMaxDeliver, MaxAckPending: DefaultMaxAckPending,
		ResultTTL: DefaultResultTTL, StaleAfter: DefaultStaleAfter, Duplicates: DefaultDuplicates, APITimeout: DefaultAPITimeout, Replicas: 1}, l)

	var r Registry
	require.ErrorContains(t, r.Register("llm", "", nil), "name")
	require.ErrorContains(t, r.Register("llm", "f", nil), "nil function")
	require.NoError(t, r.Register("llm", "f", func(context.Context, dag.State) error { return nil }))
	require.ErrorContains(t, r.Register("llm", "f", func(context.Context, dag.State) error { return nil }), "already registered")
	require.Equal(t, []string{"llm"}, r.Capabilities())
}
