package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Tool is a Go function the model may call in a tool loop: its spec (name,
// description, JSON schema of its arguments) and the function.
type Tool struct {
	ToolSpec
	// Call runs the tool with the arguments' JSON text as the model wrote
	// it (possibly invalid) and returns the result the model reads. An
	// error, or a panic, is reported to the model as the result, unless
	// LoopOptions.FailOnToolError is set. Call honours ctx.
	Call func(ctx context.Context, args json.RawMessage) (string, error)
}

// NewTool returns a tool whose arguments are struct A, with the schema
// Schema[A] builds, and whose result is fn's: a string as it is, any other
// value as its JSON encoding. Arguments that are not a JSON object, lack a
// required property, have one A does not, or a value of the wrong type are
// reported to the model as an ErrInvalidArguments result without calling
// fn. It fails when name is not 1 to 64 letters, digits, '_' or '-', or
// Schema[A] fails.
func NewTool[A, R any](name, description string, fn func(ctx context.Context, args A) (R, error)) (Tool, error) {
	schema, required, err := schemaOf(reflect.TypeFor[A]())
	if err != nil {
		return Tool{}, fmt.Errorf("llm: tool %q: %w", name, err)
	}
	t := Tool{ToolSpec: ToolSpec{Name: name, Description: description, Parameters: schema}}
	t.Call = func(ctx context.Context, raw json.RawMessage) (string, error) {
		var args A
		if err := decodeArgs(raw, required, &args); err != nil {
			return "", err
		}
		r, err := fn(ctx, args)
		if err != nil {
			return "", err
		}
		if s, ok := any(r).(string); ok {
			return s, nil
		}
		b, err := json.Marshal(r)
		if err != nil {
			return "", fmt.Errorf("encoding the result: %w", err)
		}
		return string(b), nil
	}
	if err := t.validate(); err != nil {
		return Tool{}, err
	}
	return t, nil
}

// decodeArgs decodes the arguments object raw into v, strictly.
func decodeArgs(raw json.RawMessage, required []string, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		if err == nil {
			err = fmt.Errorf("null")
		}
		return fmt.Errorf("%w: not a JSON object: %v", ErrInvalidArguments, err)
	}
	var missing []string
	for _, r := range required {
		if _, ok := obj[r]; !ok {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing required %s", ErrInvalidArguments, strings.Join(missing, ", "))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArguments, err)
	}
	return nil
}

// validate checks a tool's name, schema and function.
func (t *Tool) validate() error {
	if !validToolName(t.Name) {
		return fmt.Errorf("llm: tool name %q: must be 1 to 64 letters, digits, '_' or '-'", t.Name)
	}
	if t.Call == nil {
		return fmt.Errorf("llm: tool %q: Call is nil", t.Name)
	}
	if len(t.Parameters) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(t.Parameters, &obj); err != nil || obj == nil {
			return fmt.Errorf("llm: tool %q: Parameters must be a JSON schema object: %s", t.Name, t.Parameters)
		}
	}
	return nil
}

func validToolName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
