package dag_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
)

func TestClass(t *testing.T) {
	var zero dag.Node
	assert.Equal(t, dag.CPU, zero.Class, "CPU is the default")
	tests := []struct {
		in   string
		want dag.Class
		ok   bool
	}{
		{"cpu", dag.CPU, true}, {"io", dag.IO, true}, {" IO ", dag.IO, true}, {"Cpu", dag.CPU, true},
		{"", 0, false}, {"gpu", 0, false}, {"1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := dag.ParseClass(tt.in)
			if !tt.ok {
				require.ErrorIs(t, err, dag.ErrInvalidSetting)
				assert.ErrorContains(t, err, `"`+tt.in+`"`)
				assert.ErrorContains(t, err, `want "cpu" or "io"`)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, "cpu", dag.CPU.String())
	assert.Equal(t, "io", dag.IO.String())
	assert.Equal(t, "class(7)", dag.Class(7).String())

	b, err := json.Marshal(map[string]dag.Class{"fetch": dag.IO, "parse": dag.CPU})
	require.NoError(t, err)
	assert.JSONEq(t, `{"fetch":"io","parse":"cpu"}`, string(b))
	var back map[string]dag.Class
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, dag.IO, back["fetch"])
	assert.Error(t, json.Unmarshal([]byte(`{"x":"gpu"}`), &back))
	_, err = json.Marshal(dag.Class(9))
	assert.ErrorIs(t, err, dag.ErrInvalidSetting)

	_, err = dag.New(dag.Node{ID: "a", Run: noop, Class: 5})
	require.ErrorIs(t, err, dag.ErrInvalidSetting)
	assert.ErrorContains(t, err, `node "a": Class = class(5): must be dag.CPU or dag.IO`)
}

func FuzzParseClass(f *testing.F) {
	for _, s := range []string{"cpu", "io", " IO\t", "gpu", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := dag.ParseClass(s)
		if err != nil {
			return
		}
		again, err := dag.ParseClass(c.String())
		if err != nil || again != c {
			t.Fatalf("%q parsed as %v, which does not round-trip: %v %v", s, c, again, err)
		}
	})
}
