package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/wabsync/wabsync"
)

// readJSON reads a JSON request body into dst (a pointer to a struct). It
// answers 415 for another content type, 413 past the limit, 400 for
// malformed JSON, and 422 naming every unknown or wrongly typed field.
// An empty body decodes as {}.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := s.readBody(w, r, s.cfg.MaxJSON)
	if err != nil {
		return err
	}
	return decodeStrict(body, dst)
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errorf(wabsync.EPayloadTooLarge, "The request body is larger than %d bytes.", limit)
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		if err := requireJSON(r); err != nil {
			return nil, err
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(wabsync.EPayloadTooLarge, "The request body is larger than %d bytes.", limit)
		}
		return nil, errorf(wabsync.EBadRequest, "The request body could not be read.")
	}
	return body, nil
}

func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return errorf(wabsync.EUnsupportedMedia, "Content-Type must be application/json.")
	}
	return nil
}

// decodeStrict decodes body into dst, collecting every bad field.
func decodeStrict(body []byte, dst any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !utf8.Valid(body) {
		return errorf(wabsync.EBadRequest, "The request body is not valid UTF-8.")
	}
	if !json.Valid(body) {
		return errorf(wabsync.EBadRequest, "The request body is not valid JSON.")
	}
	if body[0] != '{' {
		return errorf(wabsync.EBadRequest, "The request body must be a JSON object.")
	}
	v := ValidationErrorsOf(dst, body, "")
	return v.Err()
}

// ValidationErrorsOf decodes the JSON object raw into the struct dst points
// to, field by field, and returns what was wrong, by field path.
func ValidationErrorsOf(dst any, raw []byte, prefix string) wabsync.ValidationErrors {
	errs := wabsync.ValidationErrors{}
	decodeInto(reflect.ValueOf(dst).Elem(), raw, prefix, errs)
	return errs
}

type fieldInfo struct {
	index []int
	typ   reflect.Type
}

// fieldsOf caches jsonFields by type (the request types are few and fixed).
var fieldsOf sync.Map // reflect.Type → map[string]fieldInfo

func jsonFields(t reflect.Type) map[string]fieldInfo {
	if f, ok := fieldsOf.Load(t); ok {
		return f.(map[string]fieldInfo)
	}
	f := buildJSONFields(t)
	fieldsOf.Store(t, f)
	return f
}

func buildJSONFields(t reflect.Type) map[string]fieldInfo {
	out := map[string]fieldInfo{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = fieldInfo{index: f.Index, typ: f.Type}
	}
	return out
}

func decodeInto(v reflect.Value, raw []byte, prefix string, errs wabsync.ValidationErrors) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		errs.Add(strings.TrimSuffix(prefix, "."), "must be an object")
		return
	}
	fields := jsonFields(v.Type())
	for name, val := range obj {
		path := prefix + name
		fi, ok := fields[name]
		if !ok {
			errs.Add(path, "unknown field")
			continue
		}
		fv := v.FieldByIndex(fi.index)
		ft := fi.typ
		// Nested structs (not time) are decoded strictly too.
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "time" && string(bytes.TrimSpace(val)) != "null" {
			decodeInto(fv, val, path+".", errs)
			continue
		}
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct && ft.Elem().PkgPath() != "time" {
			if string(bytes.TrimSpace(val)) == "null" {
				continue
			}
			nv := reflect.New(ft.Elem())
			decodeInto(nv.Elem(), val, path+".", errs)
			fv.Set(nv)
			continue
		}
		if err := json.Unmarshal(val, fv.Addr().Interface()); err != nil {
			errs.Add(path, "must be "+jsonTypeName(ft))
			continue
		}
		checkStrings(fv, path, errs)
	}
}

// textProblem says what makes s unfit to store as text, or "" if nothing.
// PostgreSQL refuses NUL characters and invalid UTF-8 in text where SQLite
// keeps them; refusing both before any query makes the databases answer
// alike (and never 500).
func textProblem(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "must not contain NUL characters"
	}
	return ""
}

// checkStrings adds an error for every string in v (a decoded field, with
// its slices, structs, maps and interfaces) that textProblem refuses.
func checkStrings(v reflect.Value, path string, errs wabsync.ValidationErrors) {
	switch v.Kind() {
	case reflect.String:
		if msg := textProblem(v.String()); msg != "" {
			errs.Add(path, msg)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			checkStrings(v.Elem(), path, errs)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // bytes (base64 in JSON, or raw JSON text), not text
		}
		for i := 0; i < v.Len(); i++ {
			checkStrings(v.Index(i), path+"["+strconv.Itoa(i)+"]", errs)
		}
	case reflect.Struct: // e.g. contacts[i] of a contact message
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			checkStrings(v.Field(i), path+"."+name, errs)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() == reflect.String && textProblem(k.String()) != "" {
				errs.Add(path, "keys "+textProblem(k.String()))
				continue
			}
			checkStrings(iter.Value(), path+"."+k.String(), errs)
		}
	}
}

// checkedHeaders are the request headers whose values reach the database.
var checkedHeaders = []string{"Idempotency-Key", "Last-Event-ID"}

// checkRequestText refuses (400, naming it) a path value of pattern, a
// query parameter or a checked header that textProblem refuses: one check
// for every route, before any handler runs a query.
func checkRequestText(r *http.Request, pattern string) error {
	for _, name := range wildcards(pattern) {
		if msg := textProblem(r.PathValue(name)); msg != "" {
			return fieldError(wabsync.EBadRequest, name, msg)
		}
	}
	for name, vals := range r.URL.Query() {
		if msg := textProblem(name); msg != "" {
			return fieldError(wabsync.EBadRequest, "query", "parameter names "+msg)
		}
		for _, v := range vals {
			if msg := textProblem(v); msg != "" {
				return fieldError(wabsync.EBadRequest, name, msg)
			}
		}
	}
	for _, name := range checkedHeaders {
		if msg := textProblem(r.Header.Get(name)); msg != "" {
			return fieldError(wabsync.EBadRequest, name, msg)
		}
	}
	return nil
}

// wildcards returns the names of a route pattern's {wildcards}.
func wildcards(pattern string) []string {
	var out []string
	for {
		i := strings.IndexByte(pattern, '{')
		j := strings.IndexByte(pattern, '}')
		if i < 0 || j < i {
			return out
		}
		out = append(out, strings.TrimSuffix(pattern[i+1:j], "..."))
		pattern = pattern[j+1:]
	}
}

func jsonTypeName(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "of the right type"
}

// page reads the limit and cursor query parameters.
func page(r *http.Request) (wabsync.Page, error) {
	p := wabsync.Page{Limit: 20}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, fieldError(wabsync.EBadRequest, "limit", "must be an integer from 1 to 100")
		}
		p.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		after, err := decodeCursor(c)
		if err != nil {
			return p, fieldError(wabsync.EBadRequest, "cursor", "is not a cursor this server issued")
		}
		p.After = after
	}
	return p, nil
}

const cursorPrefix = "c1:"

func encodeCursor(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + after))
}

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !bytes.HasPrefix(b, []byte(cursorPrefix)) || len(b) == len(cursorPrefix) || len(b) > 200 ||
		textProblem(string(b)) != "" {
		return "", errors.New("bad cursor")
	}
	return string(b[len(cursorPrefix):]), nil
}

// listData converts a store page to the API's list shape with opaque cursors.
func listData[T any](l wabsync.List[T]) wabsync.List[T] {
	if l.NextCursor != nil {
		c := encodeCursor(*l.NextCursor)
		l.NextCursor = &c
	}
	if l.Items == nil {
		l.Items = []T{}
	}
	return l
}
