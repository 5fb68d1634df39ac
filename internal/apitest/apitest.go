// Package apitest checks HTTP responses against the API contract
// (api/openapi.yaml) in tests: the status is one the operation documents, the
// Content-Type is one documented for that status, required headers are there,
// and a JSON body matches its schema. End-to-end tests hand the SDK an
// http.Client whose transport is Validator.Transport, so that every response
// the server gives is checked:
//
//	v := apitest.NewValidator(t)
//	hc := &http.Client{Transport: v.Transport(t, http.DefaultTransport)}
//	c, _ := client.New(srv.URL, token, client.WithHTTPClient(hc))
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/wabsync/wabsync/api"
)

// Validator checks responses against the embedded OpenAPI document. It is
// safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	errEnv *openapi3.Schema
}

// NewValidator loads the embedded document; it fails tb when the document
// does not load or validate.
func NewValidator(tb testing.TB) *Validator {
	tb.Helper()
	doc, err := api.Load()
	if err != nil {
		tb.Fatalf("apitest: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		tb.Fatalf("apitest: router: %v", err)
	}
	env := doc.Components.Schemas["ErrorEnvelope"]
	if env == nil {
		tb.Fatal("apitest: the document has no ErrorEnvelope schema")
	}
	return &Validator{doc: doc, router: router, errEnv: env.Value}
}

// Check fails tb (with Errorf, so it may be called from any goroutine) when
// the response to req is not what the document says.
func (v *Validator) Check(tb testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	tb.Helper()
	if err := v.Validate(req, status, header, body); err != nil {
		tb.Errorf("%v", err)
	}
}

// Validate returns an error describing how the response to req (its status,
// header and complete body) departs from the document, or nil.
func (v *Validator) Validate(req *http.Request, status int, header http.Header, body []byte) error {
	return v.validate(req, status, header, body, false)
}

// streamSkipped is the body used for responses whose body is a stream.
const streamSkipped = "(stream not read)"

func (v *Validator) validate(req *http.Request, status int, header http.Header, body []byte, skipBody bool) error {
	if req.Method == http.MethodHead {
		return nil
	}
	fail := func(opID, format string, args ...any) error {
		where := fmt.Sprintf("%s %s → %d", req.Method, req.URL.RequestURI(), status)
		if opID != "" {
			where += " (" + opID + ")"
		}
		shown := string(body)
		if skipBody {
			shown = streamSkipped
		} else if len(shown) > 2048 {
			shown = shown[:2048] + "…"
		}
		return fmt.Errorf("apitest: %s: %s\n\tContent-Type: %q\n\tbody: %s", where, fmt.Sprintf(format, args...), header.Get("Content-Type"), shown)
	}

	// The document's servers url is "/": route on the path alone.
	rreq := req.Clone(req.Context())
	rreq.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	rreq.Host = ""
	route, pathParams, err := v.router.FindRoute(rreq)
	if err != nil {
		return v.validateUnrouted(fail, err, status, header, body)
	}
	op := route.Operation
	resp := op.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fail(op.OperationID, "status %d is not documented for this operation (documented: %s)", status, strings.Join(documented(op), ", "))
	}

	if len(resp.Value.Content) > 0 {
		ct := header.Get("Content-Type")
		key := contentKey(resp.Value.Content, ct)
		if key == "" {
			return fail(op.OperationID, "Content-Type %q is not documented for %d (documented: %s)", ct, status, strings.Join(slices.Sorted(maps.Keys(resp.Value.Content)), ", "))
		}
		skipBody = skipBody || key != "application/json"
	}

	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    rreq,
			PathParams: pathParams,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   skipBody,
		},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), input); err != nil {
		return fail(op.OperationID, "%s", describe(err))
	}
	if !skipBody {
		if msg := envelopeProblem(status, body); msg != "" {
			return fail(op.OperationID, "%s", msg)
		}
	}
	return nil
}

// validateUnrouted checks the answer to a request the document has no
// operation for: it must be an error (404 for an unknown path, 405 for a
// known path with another method, or what auth and limits answer first) in
// the error envelope.
func (v *Validator) validateUnrouted(fail func(string, string, ...any) error, routeErr error, status int, header http.Header, body []byte) error {
	allowed := []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnauthorized,
		http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable}
	if !slices.Contains(allowed, status) {
		return fail("", "no operation in the document for this request (%v); an undocumented route answered %d", routeErr, status)
	}
	if errors.Is(routeErr, routers.ErrMethodNotAllowed) && status == http.StatusNotFound {
		return fail("", "the path exists with other methods: want 405 METHOD_NOT_ALLOWED, not 404")
	}
	if status == http.StatusMethodNotAllowed && header.Get("Allow") == "" {
		return fail("", "405 without an Allow header")
	}
	if header.Get("X-Request-Id") == "" {
		return fail("", "no X-Request-Id header")
	}
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt != "application/json" {
		return fail("", "an error must be the JSON error envelope")
	}
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return fail("", "body is not JSON: %v", err)
	}
	if err := v.errEnv.VisitJSON(value, openapi3.MultiErrors()); err != nil {
		return fail("", "body doesn't match ErrorEnvelope: %s", describe(err))
	}
	if msg := envelopeProblem(status, body); msg != "" {
		return fail("", "%s", msg)
	}
	return nil
}

// codesByStatus is API.md's table of error codes.
var codesByStatus = map[int][]string{
	400: {"BAD_REQUEST"},
	401: {"UNAUTHORIZED"},
	403: {"FORBIDDEN"},
	404: {"NOT_FOUND"},
	405: {"METHOD_NOT_ALLOWED"},
	409: {"CONFLICT", "SESSION_NOT_CONNECTED", "IDEMPOTENCY_CONFLICT"},
	413: {"PAYLOAD_TOO_LARGE"},
	415: {"UNSUPPORTED_MEDIA_TYPE"},
	422: {"VALIDATION_ERROR"},
	429: {"RATE_LIMITED"},
	500: {"INTERNAL_ERROR"},
	503: {"UNAVAILABLE"},
}

// envelopeProblem checks what the schemas cannot say: "success" and "error"
// are true when present, and an error's code is the one for its status.
func envelopeProblem(status int, body []byte) string {
	var env struct {
		Success *bool   `json:"success"`
		Error   *bool   `json:"error"`
		Code    *string `json:"code"`
	}
	if json.Unmarshal(body, &env) != nil {
		return ""
	}
	if env.Success != nil && !*env.Success {
		return `"success" is false`
	}
	if env.Error != nil && !*env.Error {
		return `"error" is false`
	}
	if status >= 400 && env.Code != nil {
		if want, ok := codesByStatus[status]; ok && !slices.Contains(want, *env.Code) {
			return fmt.Sprintf("code %q with status %d: want %s", *env.Code, status, strings.Join(want, " or "))
		}
	}
	return ""
}

// contentKey returns the key of content that mediaType matches, or "".
func contentKey(content openapi3.Content, mediaType string) string {
	mt := content.Get(mediaType)
	if mt == nil {
		return ""
	}
	for k, v := range content {
		if v == mt {
			return k
		}
	}
	return ""
}

func documented(op *openapi3.Operation) []string {
	var out []string
	for code := range op.Responses.Map() {
		out = append(out, code)
	}
	slices.SortFunc(out, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return out
}

// describe flattens kin-openapi's nested errors into one readable line per
// problem.
func describe(err error) string {
	var lines []string
	var walk func(error)
	walk = func(err error) {
		var me openapi3.MultiError
		if errors.As(err, &me) {
			for _, e := range me {
				walk(e)
			}
			return
		}
		var re *openapi3filter.ResponseError
		if errors.As(err, &re) {
			if re.Err == nil {
				lines = append(lines, re.Reason)
				return
			}
			var inner openapi3.MultiError
			if errors.As(re.Err, &inner) {
				for _, e := range inner {
					lines = append(lines, re.Reason+": "+schemaLine(e))
				}
				return
			}
			lines = append(lines, re.Reason+": "+schemaLine(re.Err))
			return
		}
		lines = append(lines, schemaLine(err))
	}
	walk(err)
	return strings.Join(lines, "\n\t")
}

func schemaLine(err error) string {
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		path := strings.Join(se.JSONPointer(), ".")
		if path == "" {
			path = "(body)"
		}
		return fmt.Sprintf("at %s: %s", path, se.Reason)
	}
	return err.Error()
}

// Transport returns a RoundTripper that sends requests through base (nil:
// http.DefaultTransport) and checks every response with Check. It reads
// each body whole and gives the caller a fresh reader over the same bytes;
// text/event-stream responses are checked without their body, which is
// passed through unread.
func (v *Validator) Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{v: v, tb: tb, base: base}
}

type transport struct {
	v    *Validator
	tb   testing.TB
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/event-stream" {
		if err := t.v.validate(req, resp.StatusCode, resp.Header, nil, true); err != nil {
			t.tb.Errorf("%v", err)
		}
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("apitest: reading the response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.v.Validate(req, resp.StatusCode, resp.Header, body); err != nil {
		t.tb.Errorf("%v", err)
	}
	return resp, nil
}
