package paging_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
)

// Wrap an existing State: its entries move into the pager, which keeps at
// most MemoryLimitMB of them in RAM and spills the rest to disk.
func ExampleWrap() {
	dir, _ := os.MkdirTemp("", "pages")
	defer os.RemoveAll(dir)

	state := dag.NewMemoryState()
	state.Put("system_prompt", []byte("You are a helpful agent on a Raspberry Pi."))
	state.Put("old_memory", []byte(strings.Repeat("yesterday's notes ", 1000)))

	pager, err := paging.Wrap(state, paging.Options{
		MemoryLimitMB: 1,
		StoragePath:   dir,
		PinKeys:       []string{"system_prompt"}, // never paged out
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pager.Close()

	v, _ := pager.Get("system_prompt")
	fmt.Println(string(v))
	fmt.Println("left in the wrapped state:", len(state.Keys()))
	fmt.Println("keys in the pager:", pager.Keys())
	// Output:
	// You are a helpful agent on a Raspberry Pi.
	// left in the wrapped state: 0
	// keys in the pager: [old_memory system_prompt]
}

// Stream a value larger than the memory budget in and out page by page.
func ExamplePager_Create() {
	pager, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 1}) // temporary storage
	if err != nil {
		log.Fatal(err)
	}
	defer pager.Close()

	w, _ := pager.Create("document")
	for i := range 50_000 {
		fmt.Fprintf(w, "line %05d of a long tool result\n", i) // 1.6 MB in all
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	r, _ := dag.NewValueReader(pager, "document")
	n, _ := io.Copy(io.Discard, r)
	size, _ := pager.SizeOf("document")
	fmt.Println(n, size, pager.ResidentBytes() <= pager.MemoryLimit())
	// Output: 1650000 1650000 true
}

// In durable mode, Checkpoint makes every completed Put survive a crash.
func ExamplePager_Checkpoint() {
	dir, _ := os.MkdirTemp("", "pages")
	defer os.RemoveAll(dir)
	opts := paging.Options{StoragePath: dir, Mode: paging.ModeDurable}

	pager, err := paging.Wrap(nil, opts)
	if err != nil {
		log.Fatal(err)
	}
	pager.Put("step-1", []byte("done"))
	if err := pager.Checkpoint(); err != nil {
		log.Fatal(err)
	}
	pager.Close()

	pager, err = paging.Wrap(nil, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer pager.Close()
	v, _ := pager.Get("step-1")
	fmt.Println(string(v))
	// Output: done
}

// Stats reports where the pages are and how well the cache works.
func ExamplePager_Stats() {
	pager, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 1, PageSizeMB: 1.0 / 16})
	if err != nil {
		log.Fatal(err)
	}
	defer pager.Close()
	for i := range 40 {
		pager.Put(fmt.Sprintf("chunk-%02d", i), []byte(strings.Repeat(fmt.Sprintf("chunk %d ", i), 5000)))
	}
	pager.Get("chunk-39") // recent: in RAM
	pager.Get("chunk-00") // old: paged in from disk

	s := pager.Stats()
	fmt.Println("keys:", s.Keys, "hits:", s.Hits, "misses:", s.Misses)
	fmt.Println("within budget:", s.BytesInMemory <= s.MemoryLimitBytes, "compressed:", s.CompressionRatio > 10)
	// Output:
	// keys: 40 hits: 1 misses: 1
	// within budget: true compressed: true
}

// The pager gives memory back when a memory guard asks for it.
func ExamplePager_Evict() {
	pager, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer pager.Close()
	for i := range 8 {
		pager.Put(fmt.Sprintf("k%d", i), make([]byte, 256<<10))
	}
	freed, err := pager.Evict(1 << 20)
	fmt.Println(freed >= 1<<20, err, pager.ResidentBytes())
	// Output: true <nil> 1048576
}

// Read values into one reused buffer: no allocation per read, and the
// pager recycles the buffers of the pages it evicts.
func ExamplePager_AppendValue() {
	pager, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer pager.Close()

	for i := range 3 {
		pager.Put(fmt.Sprintf("turn/%d", i), []byte(strings.Repeat("tool output ", 100*(i+1))))
	}
	var buf []byte
	for i := range 3 {
		buf, err = pager.AppendValue(buf[:0], fmt.Sprintf("turn/%d", i))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(buf), "bytes")
	}
	// Output:
	// 1200 bytes
	// 2400 bytes
	// 3600 bytes
}
