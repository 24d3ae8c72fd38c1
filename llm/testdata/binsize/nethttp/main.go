// Command nethttp makes a streamed and a plain chat-completions call with
// net/http and encoding/json alone.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func main() {
	url := os.Args[1] + "/v1/chat/completions"
	for _, stream := range []bool{true, false} {
		body, _ := json.Marshal(map[string]any{"model": "m", "stream": stream, "messages": []message{{"user", "hi"}},
			"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "t", "parameters": map[string]any{"type": "object"}}}}})
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var v struct {
				Choices []struct {
					Delta   message `json:"delta"`
					Message message `json:"message"`
				} `json:"choices"`
			}
			line, _ := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
			_ = json.Unmarshal(line, &v)
			fmt.Println(v)
		}
		resp.Body.Close()
	}
}
