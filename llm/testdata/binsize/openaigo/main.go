// Command openaigo makes a streamed and a plain chat-completions call with
// github.com/openai/openai-go/v3.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	c := openai.NewClient(option.WithBaseURL(os.Args[1]), option.WithAPIKey("x"), option.WithMaxRetries(2))
	params := openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name: "t", Parameters: openai.FunctionParameters{"type": "object"},
		})},
	}
	s := c.Chat.Completions.NewStreaming(context.Background(), params)
	acc := openai.ChatCompletionAccumulator{}
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	r, err := c.Chat.Completions.New(context.Background(), params)
	fmt.Println(acc.Usage, r, err)
}
