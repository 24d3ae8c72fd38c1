// Command llm makes a streamed call with a tool loop and a plain
// chat-completions call with package llm.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cemaf-go/cemaf/llm"
)

func main() {
	c, err := llm.New(os.Args[1], llm.Options{Profile: llm.Profile{Model: "m"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	type args struct {
		City string `json:"city"`
	}
	tool, _ := llm.NewTool("t", "", func(ctx context.Context, a args) (string, error) { return a.City, nil })
	req := llm.Request{Messages: []llm.Message{llm.User("hi")}, OnToken: func(t llm.Token) { fmt.Print(t.Text) }}
	res, err := c.RunTools(context.Background(), req, []llm.Tool{tool}, llm.LoopOptions{})
	fmt.Println(res.Answer, err)
	resp, err := c.Chat(context.Background(), llm.Request{Messages: []llm.Message{llm.User("hi")}})
	fmt.Println(resp, err)
}
