package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// Human in the loop: with --clarify (serve: "clarify": true), a question
// that no passage of the corpus matches is not answered "nothing matches":
// the answer node asks for another wording (executor.Interrupt) and the run
// ends waiting for input, checkpointed. The process may exit; pi-agent run
// --resume ID --input TEXT (serve: POST /v1/runs/{id}/input) gives the new
// wording, and the answer node retrieves the passages for it and answers.
// A wording that matches nothing either is asked about again.

// clarify returns the retrieval to answer: r when it has passages; else,
// with an answer given (executor.InputFrom), the retrieval for that
// wording; else the node's Interrupt.
func (spec agentSpec) clarify(ctx context.Context, s dag.State, r retrieval) (retrieval, error) {
	if len(r.Hits) > 0 {
		return r, nil
	}
	input, ok := executor.InputFrom(ctx)
	input = strings.TrimSpace(input)
	if !ok || input == "" {
		return r, executor.Interrupt(ctx, fmt.Sprintf("No passage of the corpus matches %q. Ask it in other words.", r.Question))
	}
	if err := dag.PutJSON(s, keyQuestion, input); err != nil {
		return r, err
	}
	if err := spec.retrieve(ctx, s); err != nil {
		return r, err
	}
	r, err := dag.GetJSON[retrieval](s, keyRetrieval)
	if err != nil {
		return r, err
	}
	if len(r.Hits) == 0 {
		return r, executor.Interrupt(ctx, fmt.Sprintf("No passage of the corpus matches %q either. Ask it in other words.", input))
	}
	return r, nil
}
