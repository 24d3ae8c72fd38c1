package llmstub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cemaf-go/cemaf/internal/llmstub"
	"github.com/cemaf-go/cemaf/llm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, h http.Handler) *llm.Client {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	c, err := llm.New(ts.URL, llm.Options{Profile: llm.Profile{Model: "tiny"}, MaxAttempts: 1})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// A plain request gets one JSON answer, as before streaming and tools.
func TestPlainAnswer(t *testing.T) {
	h := &llmstub.Handler{}
	ts := httptest.NewServer(h)
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m1","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var body struct {
		Model   string `json:"model"`
		Choices []struct {
			FinishReason string            `json:"finish_reason"`
			Message      map[string]string `json:"message"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, "m1", body.Model)
	require.Len(t, body.Choices, 1)
	assert.Equal(t, "stop", body.Choices[0].FinishReason)
	assert.Equal(t, map[string]string{"role": "assistant", "content": "A stand-in answer from m1."}, body.Choices[0].Message)
	assert.Equal(t, map[string]int{"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}, body.Usage)
	assert.EqualValues(t, 1, h.Calls())
}

func TestStreamsWordByWord(t *testing.T) {
	c := client(t, &llmstub.Handler{Answer: "one two three"})
	var pieces []string
	resp, err := c.Chat(context.Background(), llm.Request{Messages: []llm.Message{llm.User("count")},
		OnToken: func(tok llm.Token) { pieces = append(pieces, tok.Text) }})
	require.NoError(t, err)
	assert.Equal(t, []string{"one ", "two ", "three"}, pieces)
	assert.Equal(t, "one two three", resp.Message.Content)
	assert.Equal(t, "stop", resp.FinishReason)
	assert.True(t, resp.Record.Streamed)
	assert.Equal(t, 18, resp.Record.Usage.TotalTokens)
	assert.False(t, resp.Record.Usage.Estimated, "the stream's last event carries the usage")
}

func TestAsksForTheToolThenRepeatsItsResult(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "streamed"}[stream], func(t *testing.T) {
			h := &llmstub.Handler{ToolArguments: `{"city":"Oslo"}`}
			c := client(t, h)
			type args struct {
				City string `json:"city"`
			}
			var got []string
			weather, err := llm.NewTool("weather", "The weather in a city.", func(_ context.Context, a args) (string, error) {
				got = append(got, a.City)
				return "sunny in " + a.City, nil
			})
			require.NoError(t, err)
			req := llm.Request{Messages: []llm.Message{llm.User("weather?")}}
			if stream {
				req.OnToken = func(llm.Token) {}
			}
			res, err := c.RunTools(context.Background(), req, []llm.Tool{weather}, llm.LoopOptions{})
			require.NoError(t, err)
			assert.Equal(t, []string{"Oslo"}, got, "the tool ran once with the stub's arguments")
			assert.Equal(t, "The tool weather said: sunny in Oslo", res.Answer)
			assert.Len(t, res.Records, 2, "a call asking for the tool, then the answer")
			assert.EqualValues(t, 2, h.Calls())
		})
	}
}
