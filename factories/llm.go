package factories

import (
	"github.com/cemaf-go/cemaf/llm"
	"github.com/cemaf-go/cemaf/metrics"
)

// Mode returns the device mode in force, the adaptive executor's
// ("normal", "high_temp", "low_memory", "low_disk", "cpu_contention"), in
// the form llm.Options.Mode reads at the start of every call, so that an
// LLM client's model, answer length and concurrency follow the device:
//
//	llm.Options{Mode: rt.Mode, Profiles: map[string]llm.Profile{"high_temp": small}}
//
// It is safe for concurrent use and does not block (one lock of the
// adaptive executor).
func (rt *Runtime) Mode() string { return string(rt.Executor.CurrentMode()) }

// NewLLMClient returns an LLM client of the endpoint at baseURL (see
// llm.New) wired to the runtime, unless opts sets these itself: the device
// mode chooses each call's profile (Options.Mode = rt.Mode), every attempt
// waits while the resource guard holds work back (Options.Guard) and runs
// under the CPU throttler (Options.Throttler). Declare the endpoint in
// GuardOptions.HelperEndpoints when its server runs on this device, so that
// the CPU it uses counts as the agent's own.
//
// The client starts no goroutine; close its idle connections with
// CloseIdleConnections when done. Its calls reach the run metrics through
// ObserveLLM.
func (rt *Runtime) NewLLMClient(baseURL string, opts llm.Options) (*llm.Client, error) {
	if opts.Mode == nil {
		opts.Mode = rt.Mode
	}
	if opts.Guard == nil && rt.Guard != nil {
		opts.Guard = rt.Guard
	}
	if opts.Throttler == nil && rt.CPU != nil {
		opts.Throttler = rt.CPU
	}
	return llm.New(baseURL, opts)
}

// ObserveLLM adds LLM calls to the run metrics (Runtime.Metrics): calls by
// model and result, tokens in and out, latency. Pass the Record of each
// Chat, or a tool loop's Records:
//
//	resp, err := client.Chat(ctx, req)
//	rt.ObserveLLM(resp.Record)
//	res, err := client.RunTools(ctx, req, tools, llm.LoopOptions{})
//	rt.ObserveLLM(res.Records...)
//
// Records of failed calls count as errors. It is safe for concurrent use;
// each record costs one lock of the metrics.
func (rt *Runtime) ObserveLLM(records ...llm.Record) {
	if rt.Metrics == nil {
		return
	}
	for _, r := range records {
		_ = rt.Metrics.ObserveLLMCall(LLMCall(r)) // LLMCall's values are in range
	}
}

// LLMCall converts an LLM call's record to the form the metrics take
// (metrics.LLMSink): the model asked for (a profile's, so the label values
// stay few), the tokens, the latency and whether it failed. Negative counts
// and durations, which a server's bad usage report or a stepped test clock
// could give, become 0.
func LLMCall(r llm.Record) metrics.LLMCall {
	return metrics.LLMCall{
		Model:            r.Model,
		PromptTokens:     max(0, r.Usage.PromptTokens),
		CompletionTokens: max(0, r.Usage.CompletionTokens),
		Latency:          max(0, r.Latency),
		Failed:           r.Err != "",
	}
}
