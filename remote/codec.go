package remote

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cemaf-go/cemaf/limit"
)

// The wire format of tasks and results is a small binary encoding: a
// four-byte magic, then fields in a fixed order, each string or byte slice
// as a uvarint length followed by its bytes. Values travel as raw bytes (no
// base64), so a 1 KiB value costs 1 KiB plus a few bytes.

const (
	taskMagic   = "CMT1"
	resultMagic = "CMR1"

	// maxField bounds the IDs, keys and messages inside a message; values
	// are bounded by the message itself.
	maxField = 64 << 10
	// maxEntries bounds the number of keys a task or result carries.
	maxEntries = 4096
)

// Kinds of a carried value.
const (
	valueInline byte = iota // the bytes are in the message
	valueBlob               // the bytes are in the object store, under Blob
	valueAbsent             // inputs: declared but not in the State; outputs: deleted
)

// entry is one State key carried by a task (an input) or a result (an
// output).
type entry struct {
	Key  string
	Kind byte
	Data []byte // valueInline
	Blob string // valueBlob: object name
	Size int64  // valueBlob: value length in bytes
}

// task is what a coordinator publishes for one attempt of a remote node.
type task struct {
	ID         string // run/node/attempt: also the message ID for de-duplication
	Run        string
	Node       string
	Capability string
	Func       string
	Reply      string   // subject the worker sends the result to
	Attempt    int      // the executor's attempt, from 1
	TimeoutNs  int64    // time left to the attempt when published; 0 = none
	Writes     []string // the keys the node may write
	Inputs     []entry  // one per declared read
}

// Result statuses.
const (
	statusOK byte = iota
	statusFailed
)

// Failure flags.
const (
	flagPermanent byte = 1 << iota
	flagPanic
	flagDelivery    // no worker answered within MaxDeliver deliveries
	flagUnknownFunc // the worker has no function under the task's name
	flagTimeout     // the task's deadline passed on the worker
)

// result is what a worker records (and sends back) for a task.
type result struct {
	TaskID     string
	Run        string
	Node       string
	Worker     string
	Status     byte
	Deliveries int
	Message    string       // failure: the error text
	Flags      byte         // failure flags
	Limit      *limit.Error // failure: a limit error the function returned
	Outputs    []entry
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendEntries(b []byte, es []entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(es)))
	for i := range es {
		e := &es[i]
		b = appendString(b, e.Key)
		b = append(b, e.Kind)
		switch e.Kind {
		case valueInline:
			b = appendBytes(b, e.Data)
		case valueBlob:
			b = appendString(b, e.Blob)
			b = binary.AppendUvarint(b, uint64(e.Size))
		}
	}
	return b
}

// size returns an upper bound of the encoded length of es.
func entriesSize(es []entry) int {
	n := binary.MaxVarintLen64
	for i := range es {
		e := &es[i]
		n += 2*binary.MaxVarintLen64 + 1 + len(e.Key) + len(e.Data) + len(e.Blob)
	}
	return n
}

func (t *task) encodedSize() int {
	n := len(taskMagic) + 8*binary.MaxVarintLen64 + len(t.ID) + len(t.Run) + len(t.Node) +
		len(t.Capability) + len(t.Func) + len(t.Reply) + entriesSize(t.Inputs)
	for _, w := range t.Writes {
		n += binary.MaxVarintLen64 + len(w)
	}
	return n
}

func (t *task) encode() []byte {
	b := make([]byte, 0, t.encodedSize())
	b = append(b, taskMagic...)
	for _, s := range []string{t.ID, t.Run, t.Node, t.Capability, t.Func, t.Reply} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(t.Attempt))
	b = binary.AppendVarint(b, t.TimeoutNs)
	b = binary.AppendUvarint(b, uint64(len(t.Writes)))
	for _, w := range t.Writes {
		b = appendString(b, w)
	}
	return appendEntries(b, t.Inputs)
}

func (r *result) encodedSize() int {
	return len(resultMagic) + 10*binary.MaxVarintLen64 + len(r.TaskID) + len(r.Run) + len(r.Node) +
		len(r.Worker) + len(r.Message) + 256 + entriesSize(r.Outputs)
}

func (r *result) encode() []byte {
	b := make([]byte, 0, r.encodedSize())
	b = append(b, resultMagic...)
	for _, s := range []string{r.TaskID, r.Run, r.Node, r.Worker} {
		b = appendString(b, s)
	}
	b = append(b, r.Status)
	b = binary.AppendUvarint(b, uint64(r.Deliveries))
	b = appendString(b, r.Message)
	b = append(b, r.Flags)
	var lim []byte
	if r.Limit != nil {
		lim, _ = json.Marshal(r.Limit) // a struct of strings and floats: cannot fail
	}
	b = appendBytes(b, lim)
	return appendEntries(b, r.Outputs)
}

// ErrMalformed is wrapped by the errors that report a task or result
// message that cannot be decoded.
var ErrMalformed = errors.New("malformed message")

// decoder reads the fields of a message, remembering the first error.
type decoder struct {
	b    []byte
	what string // "task" or "result", for messages
	err  error
}

func (d *decoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("remote: %s: field %s: %s: %w", d.what, field, why, ErrMalformed)
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(field, "bad or truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(field, "bad or truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(field, "truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// raw returns the next length-prefixed bytes, aliasing the message.
func (d *decoder) raw(field string, max int) []byte {
	n := d.uvarint(field)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(field, fmt.Sprintf("length %d exceeds the %d bytes left", n, len(d.b)))
		return nil
	}
	if max > 0 && n > uint64(max) {
		d.fail(field, fmt.Sprintf("length %d exceeds the limit of %d bytes", n, max))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str(field string) string { return string(d.raw(field, maxField)) }

func (d *decoder) count(field string) int {
	n := d.uvarint(field)
	if n > maxEntries {
		d.fail(field, fmt.Sprintf("count %d exceeds the limit of %d", n, maxEntries))
		return 0
	}
	return int(n)
}

func (d *decoder) entries(field string) []entry {
	n := d.count(field)
	if n == 0 {
		return nil
	}
	es := make([]entry, 0, min(n, len(d.b)/2+1))
	for i := 0; i < n && d.err == nil; i++ {
		var e entry
		e.Key = d.str(field + ".key")
		if d.err == nil && e.Key == "" {
			d.fail(field+".key", "empty key")
		}
		e.Kind = d.byte1(field + ".kind")
		switch e.Kind {
		case valueInline:
			e.Data = d.raw(field+".data", 0)
		case valueBlob:
			e.Blob = d.str(field + ".blob")
			sz := d.uvarint(field + ".size")
			if sz > 1<<62 {
				d.fail(field+".size", "out of range")
			}
			e.Size = int64(sz)
		case valueAbsent:
		default:
			d.fail(field+".kind", fmt.Sprintf("unknown kind %d (want 0, 1 or 2)", e.Kind))
		}
		es = append(es, e)
	}
	return es
}

func (d *decoder) magic(want string) {
	if len(d.b) < len(want) || string(d.b[:len(want)]) != want {
		d.fail("magic", fmt.Sprintf("not a %s message (want %q)", d.what, want))
		return
	}
	d.b = d.b[len(want):]
}

func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("end", fmt.Sprintf("%d unexpected trailing bytes", len(d.b)))
	}
}

// decodeTask decodes a task message. The returned task aliases b. The error
// wraps ErrMalformed and names the field.
func decodeTask(b []byte) (*task, error) {
	d := &decoder{b: b, what: "task"}
	d.magic(taskMagic)
	t := &task{}
	t.ID = d.str("id")
	t.Run = d.str("run")
	t.Node = d.str("node")
	t.Capability = d.str("capability")
	t.Func = d.str("func")
	t.Reply = d.str("reply")
	att := d.uvarint("attempt")
	if att > 1<<31 {
		d.fail("attempt", "out of range")
	}
	t.Attempt = int(att)
	t.TimeoutNs = d.varint("timeout")
	if t.TimeoutNs < 0 {
		d.fail("timeout", "negative")
	}
	n := d.count("writes")
	for i := 0; i < n && d.err == nil; i++ {
		t.Writes = append(t.Writes, d.str("writes"))
	}
	t.Inputs = d.entries("inputs")
	d.end()
	if d.err == nil {
		switch {
		case t.ID == "":
			d.fail("id", "empty")
		case t.Node == "":
			d.fail("node", "empty")
		case t.Func == "":
			d.fail("func", "empty")
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

// decodeResult decodes a result message. The returned result aliases b.
func decodeResult(b []byte) (*result, error) {
	d := &decoder{b: b, what: "result"}
	d.magic(resultMagic)
	r := &result{}
	r.TaskID = d.str("task")
	r.Run = d.str("run")
	r.Node = d.str("node")
	r.Worker = d.str("worker")
	r.Status = d.byte1("status")
	if d.err == nil && r.Status > statusFailed {
		d.fail("status", fmt.Sprintf("unknown status %d", r.Status))
	}
	dl := d.uvarint("deliveries")
	if dl > 1<<31 {
		d.fail("deliveries", "out of range")
	}
	r.Deliveries = int(dl)
	r.Message = d.str("message")
	r.Flags = d.byte1("flags")
	if lim := d.raw("limit", maxField); len(lim) > 0 && d.err == nil {
		r.Limit = new(limit.Error)
		if err := json.Unmarshal(lim, r.Limit); err != nil {
			d.fail("limit", err.Error())
		}
	}
	r.Outputs = d.entries("outputs")
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}
