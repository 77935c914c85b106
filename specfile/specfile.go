// Package specfile reads image definitions from YAML or JSON spec files: a list under
// "image:" whose entries are one-key maps from a Modal method name (snake_case) to its
// parameters, named as in Modal. Each entry calls the same SDK method a Go program would, so
// a spec and its Go equivalent resolve to identical keys.
package specfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/strata-build/strata"
)

// File is a loaded spec file.
type File struct {
	// Image is the definition.
	Image strata.Image
	// Dir is the folder that the spec's relative local paths resolve against.
	Dir string
	// Digest is the sha256 of the bytes parsed, "sha256:<hex>".
	Digest string
}

// Resolve resolves the image with relative paths taken from the spec's folder.
func (f *File) Resolve(ctx context.Context, opts ...strata.ResolveOption) (*strata.Plan, error) {
	return f.Image.Resolve(ctx, append([]strata.ResolveOption{strata.WithDir(f.Dir)}, opts...)...)
}

// Load reads and parses the spec file at path; "-" is standard input, whose relative paths
// resolve against the working folder.
func Load(path string) (*File, error) {
	if path == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, err
		}
		dir, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		img, err := Parse(data)
		if err != nil {
			return nil, fmt.Errorf("standard input:%w", err)
		}
		return &File{Image: img, Dir: dir, Digest: digest(data)}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	img, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return &File{Image: img, Dir: filepath.Dir(abs), Digest: digest(data)}, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Parse parses spec text (YAML, or JSON). Errors start with the line number.
func Parse(data []byte) (strata.Image, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return strata.Image{}, fmt.Errorf("1: not valid YAML or JSON: %v", err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return strata.Image{}, fmt.Errorf("%d: a spec is a map with an \"image\" list, such as:\n  image:\n    - debian_slim: {python_version: \"3.13\"}", root.Line)
	}
	var list *yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "image" {
			return strata.Image{}, fmt.Errorf("%d: unknown top-level key %q: a spec has only \"image\"", k.Line, k.Value)
		}
		list = v
	}
	if list == nil {
		return strata.Image{}, fmt.Errorf("%d: no \"image\" list: add one whose first entry is a constructor, such as \"- debian_slim: {python_version: \\\"3.13\\\"}\"", root.Line)
	}
	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return strata.Image{}, fmt.Errorf("%d: \"image\" must be a non-empty list of steps", list.Line)
	}
	var img strata.Image
	for i, entry := range list.Content {
		where := fmt.Sprintf("image[%d]", i)
		if entry.Kind != yaml.MappingNode || len(entry.Content) != 2 {
			return strata.Image{}, fmt.Errorf("%d: %s: each step is a map with one key, the method name, such as \"- apt_install: {packages: [git]}\"", entry.Line, where)
		}
		key, params := entry.Content[0], entry.Content[1]
		m, ok := methods[key.Value]
		if !ok {
			return strata.Image{}, fmt.Errorf("%d: %s: unknown method %q; known methods: %s", key.Line, where, key.Value, methodNames())
		}
		if i == 0 && !m.ctor {
			return strata.Image{}, fmt.Errorf("%d: %s: the first step must be a constructor (%s), not %s", key.Line, where, ctorNames(), key.Value)
		}
		if i > 0 && m.ctor {
			return strata.Image{}, fmt.Errorf("%d: %s: %s is a constructor and can only be the first step", key.Line, where, key.Value)
		}
		opts := m.newOpts()
		if err := decodeStrict(params, opts, where+"."+key.Value); err != nil {
			return strata.Image{}, err
		}
		img = m.apply(img, opts)
	}
	return img, nil
}

// decodeStrict decodes a parameter map into the struct that out points to, refusing unknown
// parameters and naming the parameter whose value has the wrong type.
func decodeStrict(node *yaml.Node, out any, where string) error {
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return nil
	}
	fields := map[string]reflect.Value{}
	collectFields(reflect.ValueOf(out).Elem(), fields)
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("%d: %s: parameters must be a map, such as {%s: ...}; known parameters: %s", node.Line, where, firstField(fields), fieldNames(fields))
	}
	seen := map[string]bool{}
	for i := 0; i < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("%d: %s: unknown parameter %q; known parameters: %s", k.Line, where, k.Value, fieldNames(fields))
		}
		if seen[k.Value] {
			return fmt.Errorf("%d: %s: parameter %q is given twice", k.Line, where, k.Value)
		}
		seen[k.Value] = true
		// A single string where a list is wanted is a one-item list, as Modal accepts.
		if f.Kind() == reflect.Slice && v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
			v = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{v}, Line: v.Line}
		}
		if err := v.Decode(f.Addr().Interface()); err != nil || !scalarTypeOK(v, f) {
			return fmt.Errorf("%d: %s.%s: want %s, got %s", v.Line, where, k.Value, describe(f.Type()), got(v))
		}
		if err := checkItems(v, f, where+"."+k.Value); err != nil {
			return err
		}
	}
	return nil
}

// checkItems refuses items of a list or values of a map of strings that YAML would turn into
// strings although they are not: null would become "" (an env entry A: null is a mistake,
// and Modal refuses it too), true would become "true".
func checkItems(v *yaml.Node, f reflect.Value, where string) error {
	if f.Kind() != reflect.Map && f.Kind() != reflect.Slice {
		return nil
	}
	if f.Type().Elem().Kind() != reflect.String {
		return nil
	}
	step, first := 1, 0
	if v.Kind == yaml.MappingNode {
		step, first = 2, 1
	}
	for i := first; i < len(v.Content); i += step {
		item := v.Content[i]
		if item.Kind == yaml.ScalarNode && (item.Tag == "!!str" || item.Tag == "!!int" || item.Tag == "!!float") {
			continue
		}
		name := fmt.Sprintf("%s[%d]", where, i)
		if step == 2 {
			name = where + "." + v.Content[i-1].Value
		}
		return fmt.Errorf("%d: %s: want a string (write \"\" for an empty one, or leave the entry out), got %s", item.Line, name, got(item))
	}
	return nil
}

// scalarTypeOK refuses YAML's lenient conversions into strings of values that are not
// strings or numbers (true, null), which are almost always mistakes.
func scalarTypeOK(v *yaml.Node, f reflect.Value) bool {
	if f.Kind() == reflect.String && v.Kind == yaml.ScalarNode {
		return v.Tag == "!!str" || v.Tag == "!!int" || v.Tag == "!!float"
	}
	return true
}

func collectFields(v reflect.Value, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		if strings.Contains(tag, ",inline") {
			collectFields(v.Field(i), out)
			continue
		}
		out[strings.Split(tag, ",")[0]] = v.Field(i)
	}
}

func fieldNames(fields map[string]reflect.Value) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func firstField(fields map[string]reflect.Value) string {
	for _, n := range []string{"packages", "commands", "vars", "path", "tag", "python_version", "local_path", "modules"} {
		if _, ok := fields[n]; ok {
			return n
		}
	}
	return strings.Split(fieldNames(fields), ", ")[0]
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Pointer:
		return describe(t.Elem())
	case reflect.Slice:
		return "a list of strings, such as [a, b]"
	case reflect.Map:
		return "a map of strings, such as {KEY: value}"
	}
	return t.String()
}

func got(v *yaml.Node) string {
	switch v.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a map"
	}
	return fmt.Sprintf("%s %q", strings.TrimPrefix(v.Tag, "!!"), v.Value)
}
