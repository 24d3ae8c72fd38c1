package otel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	cemafotel "github.com/cemaf-go/cemaf/otel"
)

// tracingTransport starts a client span for each request from the
// request's context, as an instrumented HTTP client does.
type tracingTransport struct{ tracer trace.Tracer }

func (t tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), "HTTP "+req.Method, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	return http.DefaultTransport.RoundTrip(req.WithContext(ctx))
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestSpansPerRunAndNode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	client := &http.Client{Transport: tracingTransport{tracer: tp.Tracer("test-http")}}

	e, err := executor.New(executor.Options{Tracer: cemafotel.New(cemafotel.Options{TracerProvider: tp, Mode: func() string { return "high_temp" }})})
	require.NoError(t, err)
	var nodeSpan trace.SpanContext
	tries := 0
	g, err := dag.New(
		dag.Node{ID: "fetch", Class: dag.IO, Run: func(ctx context.Context, _ dag.State) error {
			nodeSpan = trace.SpanContextFromContext(ctx)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			return resp.Body.Close()
		}},
		dag.Node{ID: "answer", DependsOn: []string{"fetch"}, Retry: &dag.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}, Run: func(context.Context, dag.State) error {
			if tries++; tries == 1 {
				return errors.New("model busy")
			}
			return nil
		}},
	)
	require.NoError(t, err)
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r1"})
	require.NoError(t, err)

	spans := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = append(spans[s.Name()], s)
	}
	require.Len(t, spans["cemaf.run"], 1)
	run := spans["cemaf.run"][0]
	assert.Equal(t, "r1", attr(run, "cemaf.run.id").AsString())
	assert.EqualValues(t, 2, attr(run, "cemaf.run.nodes").AsInt64())
	assert.Equal(t, "succeeded", attr(run, "cemaf.run.status").AsString())
	assert.Equal(t, "high_temp", attr(run, "cemaf.mode").AsString())
	assert.Equal(t, codes.Unset, run.Status().Code)

	require.Len(t, spans["cemaf.node fetch"], 1)
	fetch := spans["cemaf.node fetch"][0]
	assert.Equal(t, run.SpanContext().SpanID(), fetch.Parent().SpanID(), "node spans are children of the run's")
	assert.Equal(t, run.SpanContext().TraceID(), fetch.SpanContext().TraceID())
	assert.Equal(t, fetch.SpanContext(), nodeSpan, "the node's context carries its span")
	assert.Equal(t, "fetch", attr(fetch, "cemaf.node.id").AsString())
	assert.EqualValues(t, 1, attr(fetch, "cemaf.node.attempt").AsInt64())
	assert.Equal(t, "io", attr(fetch, "cemaf.node.class").AsString())
	assert.Equal(t, "high_temp", attr(fetch, "cemaf.mode").AsString())
	assert.Equal(t, 0.0, attr(fetch, "cemaf.node.paused_seconds").AsFloat64())
	assert.Equal(t, "succeeded", attr(fetch, "cemaf.node.status").AsString())

	require.Len(t, spans["HTTP GET"], 1)
	assert.Equal(t, fetch.SpanContext().SpanID(), spans["HTTP GET"][0].Parent().SpanID(), "an HTTP call inside the node is its child")

	answers := spans["cemaf.node answer"]
	require.Len(t, answers, 2, "one span per attempt")
	assert.EqualValues(t, 1, attr(answers[0], "cemaf.node.attempt").AsInt64())
	assert.Equal(t, "pending", attr(answers[0], "cemaf.node.status").AsString(), "the failed attempt will be retried")
	assert.Equal(t, codes.Error, answers[0].Status().Code)
	assert.Equal(t, "model busy", answers[0].Status().Description)
	assert.EqualValues(t, 2, attr(answers[1], "cemaf.node.attempt").AsInt64())
	assert.Equal(t, codes.Unset, answers[1].Status().Code)
	for _, a := range answers {
		assert.Equal(t, run.SpanContext().SpanID(), a.Parent().SpanID())
	}
}

func TestFailedRunSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	e, err := executor.New(executor.Options{Tracer: cemafotel.New(cemafotel.Options{TracerProvider: tp})})
	require.NoError(t, err)
	g, err := dag.New(dag.Node{ID: "a", Run: func(context.Context, dag.State) error { return errors.New("disk full") }})
	require.NoError(t, err)
	_, err = e.Run(context.Background(), g, dag.NewMemoryState())
	require.Error(t, err)
	var run sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "cemaf.run" {
			run = s
		}
	}
	require.NotNil(t, run)
	assert.Equal(t, codes.Error, run.Status().Code)
	assert.Equal(t, "failed", attr(run, "cemaf.run.status").AsString())
	assert.Equal(t, attribute.Value{}, attr(run, "cemaf.mode"), "no mode without Options.Mode")
}
