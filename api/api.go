// Package api holds WabSync's API contract, api/openapi.yaml, embedded in the
// binary: the server serves it (and the /docs page rendered from it), the Go
// client in client/ is generated from it, and tests check routes and responses
// against it.
package api

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed openapi.yaml
var specYAML []byte

// YAML returns the OpenAPI document as written, in YAML. The caller must not
// modify the returned slice.
func YAML() []byte { return specYAML }

var jsonOnce = sync.OnceValues(func() ([]byte, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	return doc.MarshalJSON()
})

// JSON returns the OpenAPI document converted to JSON, converted once and
// cached. The caller must not modify the returned slice. It panics if the
// embedded document is invalid, which the package's tests rule out.
func JSON() []byte {
	b, err := jsonOnce()
	if err != nil {
		panic("api: embedded OpenAPI document: " + err.Error())
	}
	return b
}

// Load parses and validates the embedded document. Each call returns a new
// *openapi3.T that the caller may use and change freely.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(specYAML)
	if err != nil {
		return nil, fmt.Errorf("api: load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("api: validate openapi.yaml: %w", err)
	}
	return doc, nil
}

// Operation is one route of the document.
type Operation struct {
	// Method is the HTTP method in upper case ("GET").
	Method string
	// Path is the full path pattern with {name} placeholders, as the server's
	// ServeMux patterns write it ("/api/v1/sessions/{session}").
	Path string
	// OperationID is the operation's id ("getSession").
	OperationID string
	// Public is true when the operation can be called without a token.
	Public bool
}

// Pattern returns the operation as a net/http ServeMux pattern
// ("GET /api/v1/sessions/{session}").
func (o Operation) Pattern() string { return o.Method + " " + o.Path }

var opsOnce = sync.OnceValues(func() ([]Operation, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	return operations(doc), nil
})

// Operations lists every operation of the embedded document, sorted by path,
// then method. It panics if the document is invalid, which the package's tests
// rule out. The caller may modify the returned slice.
func Operations() []Operation {
	ops, err := opsOnce()
	if err != nil {
		panic("api: embedded OpenAPI document: " + err.Error())
	}
	return slices.Clone(ops)
}

func operations(doc *openapi3.T) []Operation {
	var ops []Operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, Operation{
				Method:      strings.ToUpper(method),
				Path:        path,
				OperationID: op.OperationID,
				Public:      isPublic(doc, op),
			})
		}
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return ops
}

// isPublic reports whether op may be called without credentials: its security
// (or the document's, when it has none of its own) is empty or lists an empty
// requirement (auth optional).
func isPublic(doc *openapi3.T, op *openapi3.Operation) bool {
	sec := doc.Security
	if op.Security != nil {
		sec = *op.Security
	}
	if len(sec) == 0 {
		return true
	}
	for _, req := range sec {
		if len(req) == 0 {
			return true
		}
	}
	return false
}
