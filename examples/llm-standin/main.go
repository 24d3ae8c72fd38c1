// Command llm-standin is a stand-in for a local LLM server: it answers
// OpenAI-compatible chat-completion requests on 127.0.0.1 after keeping
// every core busy for a while, as llama.cpp's server or Ollama does while a
// model generates. Use it to see that cemaf does not pause an agent for the
// CPU its own LLM uses:
//
//	go run ./examples/llm-standin -addr 127.0.0.1:8081 -work 2s &
//	CEMAF_LLM_URL=http://127.0.0.1:8081 go run ./examples/pi-agent run --ephemeral
//
// -wait makes it wait instead of burning the CPU, for a baseline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cemaf-go/cemaf/internal/llmstub"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen `address`")
	work := flag.Duration("work", 2*time.Second, "time each request takes")
	wait := flag.Bool("wait", false, "wait instead of keeping every core busy")
	cores := flag.Int("cores", 0, "cores to keep busy (0: all)")
	flag.Parse()
	if *work <= 0 || *work > time.Hour {
		fmt.Fprintln(os.Stderr, "llm-standin: -work: want a duration in (0, 1h]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "llm-standin:", err)
		os.Exit(1)
	}
	h := &llmstub.Handler{Work: *work, Burn: !*wait, Cores: *cores}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "llm-standin: listening on http://%s (each request: %v %s)\n", ln.Addr(), *work, map[bool]string{true: "waiting", false: "burning every core"}[*wait])
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "llm-standin:", err)
		os.Exit(1)
	}
	stop()
	<-shut
}
