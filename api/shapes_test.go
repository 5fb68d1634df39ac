package api_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wabsync/wabsync"
)

// TestSchemasMatchDomainTypes checks that each resource schema has exactly the
// JSON fields of its root-package type (which the server encodes), that a
// field is required exactly when Go always emits it (no omitempty), and that
// it is nullable exactly when Go can emit null for it (a pointer without
// omitempty).
func TestSchemasMatchDomainTypes(t *testing.T) {
	doc := mustLoad(t)
	cases := map[string]any{
		"Session":           wabsync.Session{},
		"SessionConfig":     wabsync.SessionConfig{},
		"Message":           wabsync.Message{},
		"Media":             wabsync.Media{},
		"Location":          wabsync.Location{},
		"Contact":           wabsync.Contact{},
		"Reaction":          wabsync.Reaction{},
		"ReactionEntry":     wabsync.ReactionEntry{},
		"StatusChange":      wabsync.StatusChange{},
		"MessageError":      wabsync.MessageError{},
		"Event":             wabsync.Event{},
		"Webhook":           wabsync.Webhook{},
		"Delivery":          wabsync.Delivery{},
		"DeliveryAttempt":   wabsync.DeliveryAttempt{},
		"Chat":              wabsync.Chat{},
		"ContactInfo":       wabsync.ContactInfo{},
		"PhoneCheck":        wabsync.PhoneCheck{},
		"SessionStatusData": wabsync.SessionStatusData{},
		"SessionQRData":     wabsync.SessionQRData{},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			ref := doc.Components.Schemas[name]
			if ref == nil {
				t.Fatalf("no schema %s", name)
			}
			props, required := flatten(ref.Value)
			typ := reflect.TypeOf(v)
			seen := map[string]bool{}
			for i := range typ.NumField() {
				f := typ.Field(i)
				tag := f.Tag.Get("json")
				field, opts, _ := strings.Cut(tag, ",")
				if field == "-" || !f.IsExported() {
					continue
				}
				if field == "" {
					field = f.Name
				}
				seen[field] = true
				p := props[field]
				if p == nil {
					t.Errorf("%s.%s (json %q) is not in the schema", typ.Name(), f.Name, field)
					continue
				}
				omitempty := strings.Contains(opts, "omitempty")
				if req := slices.Contains(required, field); req == omitempty {
					t.Errorf("%s: required=%v, but Go omitempty=%v", field, req, omitempty)
				}
				nullable := f.Type.Kind() == reflect.Pointer && !omitempty
				if p.Value.Nullable != nullable {
					t.Errorf("%s: nullable=%v, but Go can emit null: %v", field, p.Value.Nullable, nullable)
				}
			}
			for field := range props {
				if !seen[field] {
					t.Errorf("schema property %q has no field in %s", field, typ.Name())
				}
			}
		})
	}
}

// flatten merges a schema's properties and required lists with those of its
// allOf parts.
func flatten(s *openapi3.Schema) (map[string]*openapi3.SchemaRef, []string) {
	props := map[string]*openapi3.SchemaRef{}
	var required []string
	for _, part := range s.AllOf {
		p, r := flatten(part.Value)
		for k, v := range p {
			props[k] = v
		}
		required = append(required, r...)
	}
	for k, v := range s.Properties {
		props[k] = v
	}
	required = append(required, s.Required...)
	return props, required
}
