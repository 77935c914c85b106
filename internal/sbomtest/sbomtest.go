// Package sbomtest validates SBOM documents against the published JSON schemas kept in
// sbom/testdata/schema, for tests.
package sbomtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas are the files of each format's schema and the ids they are referred to by; the
// first is the document's.
var schemas = map[string][][2]string{
	"spdx": {{"spdx-2.3.schema.json", "http://spdx.org/rdf/terms/2.3"}},
	"cyclonedx": {
		{"bom-1.6.schema.json", "http://cyclonedx.org/schema/bom-1.6.schema.json"},
		{"spdx.schema.json", "http://cyclonedx.org/schema/spdx.schema.json"},
		{"jsf-0.82.schema.json", "http://cyclonedx.org/schema/jsf-0.82.schema.json"},
	},
}

// Schema compiles the JSON schema of a format ("spdx" or "cyclonedx"), with format
// assertions on.
func Schema(format string) (*jsonschema.Schema, error) {
	files, ok := schemas[format]
	if !ok {
		return nil, fmt.Errorf("no schema for %q", format)
	}
	_, here, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(here), "..", "..", "sbom", "testdata", "schema")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f[0]))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f[0], err)
		}
		if err := c.AddResource(f[1], doc); err != nil {
			return nil, err
		}
	}
	return c.Compile(files[0][1])
}

// Validate checks a document against its format's schema.
func Validate(format string, doc []byte) error {
	s, err := Schema(format)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(v)
}
