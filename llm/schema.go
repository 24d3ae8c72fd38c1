package llm

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Schema returns the JSON schema of the arguments object that struct type
// T (or *T) describes, for a tool's ToolSpec.Parameters. Properties follow
// the fields' order and their encoding/json names (json tags: "-" skips a
// field, omitempty and omitzero make it optional, as does a pointer type;
// embedded structs are flattened); every object has additionalProperties
// false. A `description:"..."` tag describes a field; an `enum:"a,b,c"` tag
// lists the values a string field accepts.
//
// Supported types: string, bool, integers (unsigned ones get minimum 0),
// floats, time.Time (a date-time string) and other encoding.TextMarshalers
// (strings), structs, pointers to these, slices and arrays of them, and
// maps with string keys. Anything else (interfaces, []byte, channels,
// funcs, complex numbers, json.Marshalers, recursive types, the ",string"
// option) is refused with an error naming the field: give such a tool its
// schema by hand.
func Schema[T any]() (json.RawMessage, error) {
	s, _, err := schemaOf(reflect.TypeFor[T]())
	return s, err
}

// schemaOf returns the schema of struct type t and its required top-level
// properties.
func schemaOf(t reflect.Type) (json.RawMessage, []string, error) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("llm: schema of %v: the arguments type must be a struct", t)
	}
	g := schemaGen{open: map[reflect.Type]bool{}}
	required, err := g.object(t, t.String())
	if err != nil {
		return nil, nil, err
	}
	return json.RawMessage(g.b.Bytes()), required, nil
}

type schemaGen struct {
	b    bytes.Buffer
	open map[reflect.Type]bool // structs being described: a cycle is refused
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	timeType      = reflect.TypeFor[time.Time]()
)

// field is one property of an object.
type field struct {
	name     string
	typ      reflect.Type
	required bool
	desc     string
	enum     []string
}

// object writes the schema of struct t; path names it in errors.
func (g *schemaGen) object(t reflect.Type, path string) ([]string, error) {
	if g.open[t] {
		return nil, fmt.Errorf("llm: schema: %s: recursive type %v is not supported", path, t)
	}
	g.open[t] = true
	defer delete(g.open, t)
	fields, err := structFields(t, path)
	if err != nil {
		return nil, err
	}
	g.b.WriteString(`{"type":"object","properties":{`)
	var required []string
	for i, f := range fields {
		if i > 0 {
			g.b.WriteByte(',')
		}
		g.str(f.name)
		g.b.WriteByte(':')
		if err := g.typ(f.typ, path+"."+f.name, f.desc, f.enum); err != nil {
			return nil, err
		}
		if f.required {
			required = append(required, f.name)
		}
	}
	g.b.WriteString(`}`)
	if len(required) > 0 {
		g.b.WriteString(`,"required":[`)
		for i, r := range required {
			if i > 0 {
				g.b.WriteByte(',')
			}
			g.str(r)
		}
		g.b.WriteByte(']')
	}
	g.b.WriteString(`,"additionalProperties":false}`)
	return required, nil
}

// structFields lists the JSON properties of struct t as encoding/json
// sees them, embedded structs flattened.
func structFields(t reflect.Type, path string) ([]field, error) {
	var out []field
	seen := map[string]bool{}
	var walk func(t reflect.Type, index []int) error
	walk = func(t reflect.Type, index []int) error {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(index[:len(index):len(index)], i)
			ft := sf.Type
			if sf.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					if err := walk(et, idx); err != nil {
						return err
					}
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			f := field{name: name, typ: ft, required: ft.Kind() != reflect.Pointer, desc: sf.Tag.Get("description")}
			for o := range strings.SplitSeq(opts, ",") {
				switch o {
				case "omitempty", "omitzero":
					f.required = false
				case "string":
					return fmt.Errorf("llm: schema: %s.%s: the \",string\" option is not supported", path, name)
				}
			}
			if e, ok := sf.Tag.Lookup("enum"); ok {
				base := ft
				if base.Kind() == reflect.Pointer {
					base = base.Elem()
				}
				if base.Kind() != reflect.String || e == "" {
					return fmt.Errorf("llm: schema: %s.%s: an enum tag needs a string field and at least one value", path, name)
				}
				f.enum = strings.Split(e, ",")
			}
			if seen[name] {
				return fmt.Errorf("llm: schema: %s: two fields are named %q", path, name)
			}
			seen[name] = true
			out = append(out, f)
		}
		return nil
	}
	return out, walk(t, nil)
}

// typ writes the schema of a property of type t.
func (g *schemaGen) typ(t reflect.Type, path, desc string, enum []string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	open := func(typ string) {
		g.b.WriteString(`{"type":`)
		g.str(typ)
		if desc != "" {
			g.b.WriteString(`,"description":`)
			g.str(desc)
		}
	}
	switch {
	case t == timeType:
		open("string")
		g.b.WriteString(`,"format":"date-time"}`)
		return nil
	case t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler):
		open("string")
		g.b.WriteByte('}')
		return nil
	case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler):
		return fmt.Errorf("llm: schema: %s: type %v has its own JSON encoding: give the tool its schema", path, t)
	}
	switch t.Kind() {
	case reflect.String:
		open("string")
		if len(enum) > 0 {
			g.b.WriteString(`,"enum":[`)
			for i, e := range enum {
				if i > 0 {
					g.b.WriteByte(',')
				}
				g.str(e)
			}
			g.b.WriteByte(']')
		}
	case reflect.Bool:
		open("boolean")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		open("integer")
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		open("integer")
		g.b.WriteString(`,"minimum":0`)
	case reflect.Float32, reflect.Float64:
		open("number")
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return fmt.Errorf("llm: schema: %s: byte slices and arrays (base64 in JSON) are not supported", path)
		}
		open("array")
		g.b.WriteString(`,"items":`)
		if err := g.typ(t.Elem(), path+"[]", "", nil); err != nil {
			return err
		}
		if t.Kind() == reflect.Array {
			fmt.Fprintf(&g.b, `,"minItems":%d,"maxItems":%d`, t.Len(), t.Len())
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("llm: schema: %s: map keys must be strings, not %v", path, t.Key())
		}
		open("object")
		g.b.WriteString(`,"additionalProperties":`)
		if err := g.typ(t.Elem(), path+"[key]", "", nil); err != nil {
			return err
		}
	case reflect.Struct:
		// Nested objects carry their description after the fact.
		start := g.b.Len()
		if _, err := g.object(t, path); err != nil {
			return err
		}
		if desc != "" {
			obj := g.b.Bytes()[start:]
			var d bytes.Buffer
			d.WriteString(`{"description":`)
			quote(&d, desc)
			d.WriteByte(',')
			d.Write(obj[1:])
			g.b.Truncate(start)
			g.b.Write(d.Bytes())
		}
		return nil
	default:
		return fmt.Errorf("llm: schema: %s: type %v (%v) is not supported", path, t, t.Kind())
	}
	g.b.WriteByte('}')
	return nil
}

func (g *schemaGen) str(s string) { quote(&g.b, s) }

func quote(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always encodes
	b.Write(q)
}
