// Command goopenai makes a streamed and a plain chat-completions call with
// github.com/sashabaranov/go-openai.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	openai "github.com/sashabaranov/go-openai"
	"github.com/sashabaranov/go-openai/jsonschema"
)

func main() {
	cfg := openai.DefaultConfig("x")
	cfg.BaseURL = os.Args[1]
	c := openai.NewClientWithConfig(cfg)
	req := openai.ChatCompletionRequest{
		Model:         "m",
		Messages:      []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}},
		Tools:         []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "t", Parameters: jsonschema.Definition{Type: jsonschema.Object}}}},
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
	}
	s, err := c.CreateChatCompletionStream(context.Background(), req)
	if err == nil {
		for {
			r, err := s.Recv()
			if errors.Is(err, io.EOF) || err != nil {
				break
			}
			fmt.Println(r.Choices)
		}
		s.Close()
	}
	r, err := c.CreateChatCompletion(context.Background(), req)
	fmt.Println(r, err)
}
