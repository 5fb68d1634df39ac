// Package apidocs renders the API reference page served at /docs from the
// OpenAPI document: every operation grouped by tag with its parameters,
// request body and responses, then every schema. The page is one
// self-contained HTML document (inline CSS, no script, nothing loaded from
// elsewhere) with light and dark colours; it is rendered once and cached.
package apidocs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed page.html.tmpl
var pageTemplate string

var tmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"lower": strings.ToLower,
}).Parse(pageTemplate))

// Handler serves the reference page of the OpenAPI document spec (YAML or
// JSON). The page is rendered on the first request and cached; a document
// that cannot be rendered answers 500 (the API package's tests rule that out
// for the embedded one).
func Handler(spec []byte) http.Handler {
	render := sync.OnceValues(func() ([]byte, error) { return Render(spec) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, err := render()
		if err != nil {
			http.Error(w, "The API reference could not be rendered.", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=300")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(page)
	})
}

// Render returns the reference page of the OpenAPI document spec.
func Render(spec []byte) ([]byte, error) {
	loader := openapi3.NewLoader()
	loader.IncludeOrigin = true // to list operations and schemas in document order
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("apidocs: load: %w", err)
	}
	if doc.Info == nil || doc.Paths == nil {
		return nil, errors.New("apidocs: the document has no info or paths")
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, buildPage(doc)); err != nil {
		return nil, fmt.Errorf("apidocs: render: %w", err)
	}
	return buf.Bytes(), nil
}

type page struct {
	Title, Version string
	Intro          template.HTML
	Links          []link
	Tags           []tagView
	Schemas        []schemaView
}

type link struct{ Text, Href string }

type tagView struct {
	Name, ID    string
	Description template.HTML
	Ops         []opView
}

type opView struct {
	ID, Method, Path, Summary string
	Description               template.HTML
	Public                    bool
	OptionalAuth              bool
	Params                    []paramView
	Bodies                    []bodyView
	Responses                 []respView
	Errors                    []errView
}

type errView struct {
	Code, Names, Title string
}

type paramView struct {
	Name, In    string
	Type        template.HTML
	Required    bool
	Description template.HTML
	Notes       string
}

type bodyView struct {
	ContentType string
	Type        template.HTML
	Description template.HTML
	Fields      []fieldView
}

type fieldView struct {
	Name        string
	Depth       int
	Type        template.HTML
	Required    bool
	Description template.HTML
	Notes       string
}

type respView struct {
	Code         string
	Class        string // "ok", "err"
	Description  template.HTML
	ContentTypes []string
	Body         template.HTML
}

type schemaView struct {
	Name, ID    string
	Type        template.HTML
	Description template.HTML
	Notes       string
	Fields      []fieldView
}

func buildPage(doc *openapi3.T) page {
	p := page{
		Title:   doc.Info.Title,
		Version: doc.Info.Version,
		Intro:   markdown(doc.Info.Description),
		Links: []link{
			{"OpenAPI (YAML)", "/api/v1/openapi.yaml"},
			{"OpenAPI (JSON)", "/api/v1/openapi.json"},
		},
	}
	byTag := map[string][]opView{}
	var untagged []opView
	for _, e := range operationsInOrder(doc) {
		ov := buildOp(doc, e.path, e.method, e.item, e.op)
		if len(e.op.Tags) == 0 {
			untagged = append(untagged, ov)
			continue
		}
		byTag[e.op.Tags[0]] = append(byTag[e.op.Tags[0]], ov)
	}
	for _, t := range doc.Tags {
		p.Tags = append(p.Tags, tagView{Name: t.Name, ID: "tag-" + anchor(t.Name), Description: markdown(t.Description), Ops: byTag[t.Name]})
		delete(byTag, t.Name)
	}
	// Tags used by operations but not declared, then operations without one.
	for _, name := range mapsKeys(byTag) {
		p.Tags = append(p.Tags, tagView{Name: name, ID: "tag-" + anchor(name), Ops: byTag[name]})
	}
	if len(untagged) > 0 {
		p.Tags = append(p.Tags, tagView{Name: "Other", ID: "tag-other", Ops: untagged})
	}
	if doc.Components != nil {
		names := mapsKeys(doc.Components.Schemas)
		slices.SortFunc(names, func(a, b string) int {
			return compareLines(line(doc.Components.Schemas[a].Value.Origin), line(doc.Components.Schemas[b].Value.Origin), a, b)
		})
		for _, name := range names {
			s := doc.Components.Schemas[name].Value
			p.Schemas = append(p.Schemas, schemaView{
				Name:        name,
				ID:          "schema-" + name,
				Type:        typeOf(&openapi3.SchemaRef{Value: s}),
				Description: markdown(s.Description),
				Notes:       notes(s),
				Fields:      fields(s, "", 0),
			})
		}
	}
	return p
}

type opEntry struct {
	path, method string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

func operationsInOrder(doc *openapi3.T) []opEntry {
	var ops []opEntry
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, opEntry{path, method, item, op})
		}
	}
	slices.SortFunc(ops, func(a, b opEntry) int {
		return compareLines(line(a.op.Origin), line(b.op.Origin), a.path+" "+a.method, b.path+" "+b.method)
	})
	return ops
}

func line(o *openapi3.Origin) int {
	if o == nil || o.Key == nil {
		return 0
	}
	return o.Key.Line
}

func compareLines(la, lb int, a, b string) int {
	if la != lb {
		return la - lb
	}
	return strings.Compare(a, b)
}

func buildOp(doc *openapi3.T, path, method string, item *openapi3.PathItem, op *openapi3.Operation) opView {
	v := opView{
		ID:          "op-" + op.OperationID,
		Method:      method,
		Path:        path,
		Summary:     op.Summary,
		Description: markdown(op.Description),
	}
	sec := doc.Security
	if op.Security != nil {
		sec = *op.Security
	}
	if len(sec) == 0 {
		v.Public = true
	}
	for _, req := range sec {
		if len(req) == 0 {
			v.OptionalAuth = true
		}
	}
	if v.OptionalAuth && len(sec) == 1 {
		v.Public, v.OptionalAuth = true, false
	}
	for _, pr := range append(slices.Clone(item.Parameters), op.Parameters...) {
		if pr == nil || pr.Value == nil {
			continue
		}
		prm := pr.Value
		pv := paramView{Name: prm.Name, In: prm.In, Required: prm.Required, Description: markdown(prm.Description)}
		if prm.Schema != nil {
			pv.Type = typeOf(prm.Schema)
			if prm.Schema.Value != nil {
				pv.Notes = notes(prm.Schema.Value)
			}
		}
		v.Params = append(v.Params, pv)
	}
	if rb := op.RequestBody; rb != nil && rb.Value != nil {
		for _, ct := range mapsKeys(rb.Value.Content) {
			mt := rb.Value.Content[ct]
			bv := bodyView{ContentType: ct, Description: markdown(rb.Value.Description)}
			if mt.Schema != nil {
				bv.Type = typeOf(mt.Schema)
				if mt.Schema.Value != nil {
					bv.Description = markdown(mt.Schema.Value.Description)
					bv.Fields = fields(mt.Schema.Value, "", 0)
				}
			}
			v.Bodies = append(v.Bodies, bv)
		}
	}
	codes := mapsKeys(op.Responses.Map())
	slices.SortFunc(codes, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	for _, code := range codes {
		r := op.Responses.Value(code)
		if r == nil || r.Value == nil {
			continue
		}
		if !strings.HasPrefix(code, "2") && !strings.HasPrefix(code, "3") {
			// Errors are all the error envelope: list them compactly, their
			// meaning in a tooltip (the overview has the table).
			ev := errView{Code: code}
			if r.Value.Description != nil {
				ev.Title = plain(*r.Value.Description)
				ev.Names = strings.Join(errorCodeRE.FindAllString(*r.Value.Description, -1), " / ")
				ev.Names = strings.ReplaceAll(ev.Names, "`", "")
			}
			v.Errors = append(v.Errors, ev)
			continue
		}
		rv := respView{Code: code, Class: "ok"}
		if r.Value.Description != nil {
			rv.Description = markdown(*r.Value.Description)
		}
		rv.ContentTypes = mapsKeys(r.Value.Content)
		if mt := r.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			rv.Body = responseBody(mt.Schema)
		}
		v.Responses = append(v.Responses, rv)
	}
	return v
}

// responseBody summarises a JSON response: the schema it refers to, or for
// an inline success envelope the type of its data.
func responseBody(ref *openapi3.SchemaRef) template.HTML {
	if ref.Ref != "" || ref.Value == nil {
		return typeOf(ref)
	}
	props, _ := flatten(ref.Value)
	if data, ok := props["data"]; ok {
		if _, ok := props["success"]; ok {
			return template.HTML(`success envelope, <code>data</code>: `) + typeOf(data)
		}
	}
	return typeOf(ref)
}

// fields lists a schema's properties (allOf merged), with inline nested
// objects expanded below their parent and referenced schemas linked.
func fields(s *openapi3.Schema, prefix string, depth int) []fieldView {
	if s == nil || depth > 4 {
		return nil
	}
	props, required := flatten(s)
	var out []fieldView
	for _, name := range orderedProps(props) {
		ref := props[name]
		if ref == nil || ref.Value == nil {
			continue
		}
		fv := fieldView{
			Name:        prefix + name,
			Depth:       depth,
			Type:        typeOf(ref),
			Required:    slices.Contains(required, name),
			Description: markdown(ref.Value.Description),
			Notes:       notes(ref.Value),
		}
		out = append(out, fv)
		if ref.Ref == "" && len(ref.Value.AllOf) == 0 && len(ref.Value.Properties) > 0 {
			out = append(out, fields(ref.Value, prefix+name+".", depth+1)...)
		}
	}
	return out
}

// orderedProps lists property names in document order (alphabetical when
// the document's positions are unknown).
func orderedProps(props map[string]*openapi3.SchemaRef) []string {
	names := mapsKeys(props)
	slices.SortFunc(names, func(a, b string) int {
		return compareLines(propLine(props[a]), propLine(props[b]), a, b)
	})
	return names
}

func propLine(ref *openapi3.SchemaRef) int {
	if ref == nil {
		return 0
	}
	if ref.Origin != nil && ref.Origin.Key != nil {
		return ref.Origin.Key.Line
	}
	if ref.Ref == "" && ref.Value != nil {
		return line(ref.Value.Origin)
	}
	return 0
}

// flatten merges a schema's own properties and required list with those of
// its allOf parts.
func flatten(s *openapi3.Schema) (map[string]*openapi3.SchemaRef, []string) {
	props := map[string]*openapi3.SchemaRef{}
	var required []string
	for _, part := range s.AllOf {
		if part.Value == nil {
			continue
		}
		p, r := flatten(part.Value)
		for k, v := range p {
			props[k] = v
		}
		required = append(required, r...)
	}
	for k, v := range s.Properties {
		props[k] = v
	}
	return props, append(required, s.Required...)
}

// typeOf renders a schema's type, linking named schemas.
func typeOf(ref *openapi3.SchemaRef) template.HTML {
	if ref == nil {
		return "any"
	}
	if ref.Ref != "" {
		name := ref.Ref[strings.LastIndexByte(ref.Ref, '/')+1:]
		return template.HTML(`<a href="#schema-` + template.HTMLEscapeString(name) + `">` + template.HTMLEscapeString(name) + `</a>`)
	}
	s := ref.Value
	if s == nil {
		return "any"
	}
	var t template.HTML
	switch {
	case len(s.AllOf) == 1:
		t = typeOf(s.AllOf[0])
	case len(s.AllOf) > 1:
		var parts []string
		for _, p := range s.AllOf {
			parts = append(parts, string(typeOf(p)))
		}
		t = template.HTML(strings.Join(parts, " + "))
	case s.Type.Is("array"):
		t = "array of " + typeOf(s.Items)
	case s.Type.Is("object") && s.AdditionalProperties.Schema != nil && len(s.Properties) == 0:
		t = "map of string → " + typeOf(s.AdditionalProperties.Schema)
	case s.Type != nil && len(*s.Type) > 0:
		t = template.HTML(template.HTMLEscapeString(strings.Join(*s.Type, " | ")))
		if s.Format != "" {
			t += template.HTML(" (" + template.HTMLEscapeString(s.Format) + ")")
		}
	default:
		t = "any"
	}
	if s.Nullable {
		t += " or null"
	}
	return t
}

// notes lists a schema's constraints: enum, default, limits, pattern.
func notes(s *openapi3.Schema) string {
	if s == nil {
		return ""
	}
	var n []string
	if len(s.Enum) > 0 {
		var vals []string
		for _, e := range s.Enum {
			vals = append(vals, fmt.Sprint(e))
		}
		n = append(n, "one of: "+strings.Join(vals, ", "))
	}
	if s.Default != nil {
		n = append(n, "default: "+jsonish(s.Default))
	}
	if s.Min != nil {
		n = append(n, "min "+strconv.FormatFloat(*s.Min, 'g', -1, 64))
	}
	if s.Max != nil {
		n = append(n, "max "+strconv.FormatFloat(*s.Max, 'g', -1, 64))
	}
	if s.MinLength > 0 {
		n = append(n, "min length "+strconv.FormatUint(s.MinLength, 10))
	}
	if s.MaxLength != nil {
		n = append(n, "max length "+strconv.FormatUint(*s.MaxLength, 10))
	}
	if s.MinItems > 0 {
		n = append(n, "min items "+strconv.FormatUint(s.MinItems, 10))
	}
	if s.MaxItems != nil {
		n = append(n, "max items "+strconv.FormatUint(*s.MaxItems, 10))
	}
	if s.Pattern != "" {
		n = append(n, "pattern "+s.Pattern)
	}
	if s.ReadOnly {
		n = append(n, "read-only")
	}
	if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
		n = append(n, "no other keys")
	}
	return strings.Join(n, "; ")
}

func jsonish(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, jsonish(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprint(v)
	}
}

// errorCodeRE finds the error codes (`NOT_FOUND`) in a description.
var errorCodeRE = regexp.MustCompile("`[A-Z][A-Z_]+[A-Z]`")

// plain strips the Markdown code marks of a one-line description.
func plain(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(s, "`", ""), "\n", " "))
}

// anchor turns a name into an id fragment.
func anchor(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func mapsKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
