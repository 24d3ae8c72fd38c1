package llm_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/llm"
)

type Place struct {
	City    string `json:"city" description:"city name"`
	Country string `json:"country,omitempty"`
}

type searchArgs struct {
	Query   string         `json:"query" description:"what to look for"`
	Limit   uint8          `json:"limit,omitempty"`
	Score   float64        `json:"min_score"`
	Exact   *bool          `json:"exact"`
	Order   string         `json:"order" enum:"newest,oldest"`
	Tags    []string       `json:"tags,omitzero"`
	Near    Place          `json:"near" description:"where"`
	Stops   [2]Place       `json:"stops"`
	Labels  map[string]int `json:"labels,omitempty"`
	Since   time.Time      `json:"since"`
	Addr    netip.Addr     `json:"addr"`
	Ignored string         `json:"-"`
	//lint:ignore U1000 the schema must leave unexported fields out
	private int // unexported: not a property
	Plain   int
	Extra   map[string]Place `json:"extra,omitempty"`
}

type Base struct {
	ID string `json:"id"`
}

type withEmbedded struct {
	Base
	*Place
	Note string `json:"note"`
}

func TestSchema(t *testing.T) {
	s, err := llm.Schema[searchArgs]()
	require.NoError(t, err)
	place := `{"type":"object","properties":{"city":{"type":"string","description":"city name"},"country":{"type":"string"}},"required":["city"],"additionalProperties":false}`
	want := `{"type":"object","properties":{
		"query":{"type":"string","description":"what to look for"},
		"limit":{"type":"integer","minimum":0},
		"min_score":{"type":"number"},
		"exact":{"type":"boolean"},
		"order":{"type":"string","enum":["newest","oldest"]},
		"tags":{"type":"array","items":{"type":"string"}},
		"near":{"description":"where",` + place[1:] + `,
		"stops":{"type":"array","items":` + place + `,"minItems":2,"maxItems":2},
		"labels":{"type":"object","additionalProperties":{"type":"integer"}},
		"since":{"type":"string","format":"date-time"},
		"addr":{"type":"string"},
		"Plain":{"type":"integer"},
		"extra":{"type":"object","additionalProperties":` + place + `}},
		"required":["query","min_score","order","near","stops","since","addr","Plain"],
		"additionalProperties":false}`
	assert.JSONEq(t, want, string(s))
	assert.True(t, json.Valid(s))
	// Properties follow the fields' order (llama.cpp's grammar follows it).
	assert.Regexp(t, `^\{"type":"object","properties":\{"query":.*"limit":.*"min_score":`, string(s))

	s, err = llm.Schema[*withEmbedded]()
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"object","properties":{"id":{"type":"string"},"city":{"type":"string","description":"city name"},"country":{"type":"string"},"note":{"type":"string"}},"required":["id","city","note"],"additionalProperties":false}`, string(s))

	s, err = llm.Schema[struct{}]()
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"object","properties":{},"additionalProperties":false}`, string(s))
}

type node struct {
	Name     string `json:"name"`
	Children []node `json:"children"`
}

type First struct {
	X string `json:"Y"`
}

type Second struct {
	Y string
}

type clash struct {
	First
	Second
}

func TestSchemaRefusesUnsupportedTypes(t *testing.T) {
	tests := []struct {
		name string
		fn   func() (json.RawMessage, error)
		want string
	}{
		{"not a struct", llm.Schema[string], "the arguments type must be a struct"},
		{"interface", llm.Schema[struct{ V any }], "llm: schema: struct { V interface {} }.V: type interface {} (interface) is not supported"},
		{"bytes", llm.Schema[struct {
			Data []byte `json:"data"`
		}], ".data: byte slices and arrays (base64 in JSON) are not supported"},
		{"channel", llm.Schema[struct{ C chan int }], ".C: type chan int (chan) is not supported"},
		{"func", llm.Schema[struct{ F func() }], "(func) is not supported"},
		{"complex", llm.Schema[struct{ Z complex128 }], "(complex128) is not supported"},
		{"int keys", llm.Schema[struct{ M map[int]string }], ".M: map keys must be strings, not int"},
		{"json.Marshaler", llm.Schema[struct{ R json.RawMessage }], "has its own JSON encoding: give the tool its schema"},
		{"string option", llm.Schema[struct {
			N int `json:"n,string"`
		}], `.n: the ",string" option is not supported`},
		{"enum on int", llm.Schema[struct {
			N int `json:"n" enum:"1,2"`
		}], ".n: an enum tag needs a string field"},
		{"recursive", llm.Schema[node], "llm_test.node.children[]: recursive type llm_test.node is not supported"},
		{"duplicate names", llm.Schema[clash], `two fields are named "Y"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.fn()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := llm.NewTool("bad", "", func(context.Context, struct{ V any }) (string, error) { return "", nil })
	require.Error(t, err)
	assert.Contains(t, err.Error(), `llm: tool "bad": llm: schema`)
}

func TestNewToolResults(t *testing.T) {
	type in struct {
		N int `json:"n"`
	}
	type out struct {
		Double int `json:"double"`
	}
	tool, err := llm.NewTool("double", "Doubles n.", func(ctx context.Context, a in) (out, error) { return out{2 * a.N}, nil })
	require.NoError(t, err)
	res, err := tool.Call(context.Background(), json.RawMessage(`{"n":21}`))
	require.NoError(t, err)
	assert.Equal(t, `{"double":42}`, res)

	noArgs, err := llm.NewTool("now", "", func(ctx context.Context, _ struct{}) (string, error) { return "noon", nil })
	require.NoError(t, err)
	for _, args := range []string{"", "  ", "{}"} {
		res, err = noArgs.Call(context.Background(), json.RawMessage(args))
		require.NoError(t, err, args)
		assert.Equal(t, "noon", res)
	}
	_, err = noArgs.Call(context.Background(), json.RawMessage(`null`))
	assert.ErrorIs(t, err, llm.ErrInvalidArguments)

	_, err = llm.NewTool("", "", func(context.Context, struct{}) (string, error) { return "", nil })
	assert.ErrorContains(t, err, `tool name ""`)
}
