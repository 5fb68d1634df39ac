package api_test

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/api"
)

func mustLoad(tb testing.TB) *openapi3.T {
	tb.Helper()
	doc, err := api.Load()
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

func TestDocumentValidates(t *testing.T) {
	doc := mustLoad(t)
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers = %v, want one with url /", doc.Servers)
	}
}

func TestJSON(t *testing.T) {
	b := api.JSON()
	if !json.Valid(b) {
		t.Fatal("JSON() is not valid JSON")
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Paths.Len(), mustLoad(t).Paths.Len(); got != want {
		t.Errorf("JSON has %d paths, YAML %d", got, want)
	}
	if &api.JSON()[0] != &b[0] {
		t.Error("JSON() converts again on each call; want it cached")
	}
}

func TestOperations(t *testing.T) {
	ops := api.Operations()
	if len(ops) == 0 {
		t.Fatal("no operations")
	}
	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	ids := map[string]bool{}
	for i, op := range ops {
		if i > 0 {
			prev := ops[i-1]
			if prev.Path > op.Path || prev.Path == op.Path && prev.Method >= op.Method {
				t.Errorf("not sorted: %s before %s", prev.Pattern(), op.Pattern())
			}
		}
		if !camel.MatchString(op.OperationID) {
			t.Errorf("%s: operationId %q is not camelCase", op.Pattern(), op.OperationID)
		}
		if ids[op.OperationID] {
			t.Errorf("operationId %q used twice", op.OperationID)
		}
		ids[op.OperationID] = true
		// Outside /api/v1: the docs page, metrics and the dashboard.
		if !strings.HasPrefix(op.Path, "/api/v1/") && op.Path != "/docs" && op.Path != "/metrics" && op.Path != "/" && !strings.HasPrefix(op.Path, "/assets/") {
			t.Errorf("%s: path outside /api/v1", op.Pattern())
		}
	}

	public := map[string]bool{}
	for _, op := range ops {
		if op.Public {
			public[op.Pattern()] = true
		}
	}
	wantPublic := []string{
		"GET /api/v1/health", "GET /api/v1/ready", "GET /api/v1/openapi.yaml", "GET /api/v1/openapi.json",
		"GET /docs", "GET /metrics", "GET /api/v1/media/{id}",
	}
	// The dashboard's page and assets are public (it signs in with a token).
	for p := range public {
		if p == "GET /" || strings.HasPrefix(p, "GET /assets/") {
			delete(public, p)
		}
	}
	for _, p := range wantPublic {
		if !public[p] {
			t.Errorf("%s should be public", p)
		}
		delete(public, p)
	}
	for p := range public {
		t.Errorf("%s is public, want a token", p)
	}

	// The API.md routes that the server must have.
	want := []string{
		"POST /api/v1/sessions", "GET /api/v1/sessions", "GET /api/v1/sessions/{session}",
		"PATCH /api/v1/sessions/{session}", "DELETE /api/v1/sessions/{session}",
		"POST /api/v1/sessions/{session}/connect", "POST /api/v1/sessions/{session}/disconnect",
		"POST /api/v1/sessions/{session}/logout", "POST /api/v1/sessions/{session}/restart",
		"GET /api/v1/sessions/{session}/qr", "POST /api/v1/sessions/{session}/pair-code",
		"POST /api/v1/sessions/{session}/token", "GET /api/v1/sessions/{session}/events",
		"POST /api/v1/sessions/{session}/messages/text", "POST /api/v1/sessions/{session}/messages/file",
		"POST /api/v1/sessions/{session}/messages/location", "POST /api/v1/sessions/{session}/messages/contact",
		"POST /api/v1/sessions/{session}/messages/reaction", "GET /api/v1/sessions/{session}/messages",
		"GET /api/v1/sessions/{session}/messages/{id}", "PATCH /api/v1/sessions/{session}/messages/{id}",
		"DELETE /api/v1/sessions/{session}/messages/{id}", "POST /api/v1/sessions/{session}/messages/{id}/read",
		"GET /api/v1/sessions/{session}/messages/{id}/media",
		"GET /api/v1/sessions/{session}/chats", "GET /api/v1/sessions/{session}/contacts",
		"POST /api/v1/sessions/{session}/contacts/check", "POST /api/v1/sessions/{session}/presence",
		"POST /api/v1/sessions/{session}/webhooks", "GET /api/v1/sessions/{session}/webhooks",
		"GET /api/v1/sessions/{session}/webhooks/{id}", "PATCH /api/v1/sessions/{session}/webhooks/{id}",
		"DELETE /api/v1/sessions/{session}/webhooks/{id}", "POST /api/v1/sessions/{session}/webhooks/{id}/test",
		"POST /api/v1/sessions/{session}/webhooks/{id}/secret",
		"GET /api/v1/sessions/{session}/webhooks/{id}/deliveries",
		"POST /api/v1/sessions/{session}/webhooks/{id}/deliveries/{delivery}/retry",
		"POST /api/v1/webhooks", "GET /api/v1/webhooks", "GET /api/v1/webhooks/{id}",
		"PATCH /api/v1/webhooks/{id}", "DELETE /api/v1/webhooks/{id}", "POST /api/v1/webhooks/{id}/test",
		"POST /api/v1/webhooks/{id}/secret", "GET /api/v1/webhooks/{id}/deliveries",
		"POST /api/v1/webhooks/{id}/deliveries/{delivery}/retry",
		"POST /api/v1/sandbox/scan", "POST /api/v1/sandbox/inbound", "POST /api/v1/sandbox/sessions/{session}/drop",
		"GET /api/v1/media/{id}", "GET /api/v1/health", "GET /api/v1/ready",
		"GET /api/v1/openapi.yaml", "GET /api/v1/openapi.json", "GET /docs", "GET /metrics",
		"GET /api/v1/nodes",
	}
	var have []string
	for _, op := range ops {
		have = append(have, op.Pattern())
	}
	for _, w := range want {
		if !slices.Contains(have, w) {
			t.Errorf("missing %s", w)
		}
	}
	// Every route the server has is in the document and the reverse:
	// cmd/wabsync's TestRoutesMatchContract checks that against the real
	// route table.
}

// TestEveryOperationIsDocumented checks what a reader of /docs and a user of
// the generated client rely on: a tag, a summary, a success response, the
// Idempotency-Key on every authenticated POST, and an error response for every
// case that can happen.
func TestEveryOperationIsDocumented(t *testing.T) {
	doc := mustLoad(t)
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if len(op.Tags) != 1 || !tags[op.Tags[0]] {
				t.Errorf("%s: tags %v, want one of the document's tags", name, op.Tags)
			}
			if op.Summary == "" {
				t.Errorf("%s: no summary", name)
			}
			var success bool
			for code := range op.Responses.Map() {
				if strings.HasPrefix(code, "2") {
					success = true
				}
			}
			if !success {
				t.Errorf("%s: no 2xx response", name)
			}
			public := op.Security != nil && len(*op.Security) == 0
			hasParam := func(in, pname string) bool {
				for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
					if p.Value.In == in && p.Value.Name == pname {
						return true
					}
				}
				return false
			}
			if method == "POST" && !public && !hasParam("header", "Idempotency-Key") {
				t.Errorf("%s: no Idempotency-Key parameter", name)
			}
			need := []string{"429", "500"}
			if !public {
				need = append(need, "401", "503")
			}
			if strings.Contains(path, "{") {
				need = append(need, "404")
			}
			if op.RequestBody != nil {
				need = append(need, "400", "413", "415", "422")
			}
			if strings.Contains(op.Description, "Admin only") {
				need = append(need, "403")
			}
			for _, code := range need {
				if op.Responses.Status(atoi(code)) == nil {
					t.Errorf("%s: no %s response", name, code)
				}
			}
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestEnumsMatchDomain keeps the document's enums in step with the root
// package's constants.
func TestEnumsMatchDomain(t *testing.T) {
	doc := mustLoad(t)
	enum := func(name string) []string {
		t.Helper()
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Fatalf("no schema %s", name)
		}
		var out []string
		for _, v := range s.Value.Enum {
			out = append(out, v.(string))
		}
		slices.Sort(out)
		return out
	}
	check := func(name string, want []string) {
		t.Helper()
		want = slices.Clone(want)
		slices.Sort(want)
		if got := enum(name); !slices.Equal(got, want) {
			t.Errorf("%s enum = %v, want %v", name, got, want)
		}
	}
	check("EventType", wabsync.EventTypes)
	check("WebhookEventFilter", append([]string{"*"}, wabsync.EventTypes...))
	check("SessionStatus", []string{
		string(wabsync.StatusStopped), string(wabsync.StatusStarting), string(wabsync.StatusScanQR),
		string(wabsync.StatusConnected), string(wabsync.StatusReconnecting), string(wabsync.StatusLoggedOut),
		string(wabsync.StatusFailed),
	})
	check("MessageStatus", []string{
		string(wabsync.MsgQueued), string(wabsync.MsgSending), string(wabsync.MsgSent), string(wabsync.MsgDelivered),
		string(wabsync.MsgRead), string(wabsync.MsgPlayed), string(wabsync.MsgFailed), string(wabsync.MsgReceived),
	})
	check("MessageKind", []string{
		wabsync.KindText, wabsync.KindImage, wabsync.KindVideo, wabsync.KindAudio, wabsync.KindVoice,
		wabsync.KindDocument, wabsync.KindSticker, wabsync.KindLocation, wabsync.KindContact, wabsync.KindReaction,
	})
	check("Engine", []string{wabsync.EngineWhatsmeow, wabsync.EngineSandbox})
	check("DeliveryStatus", []string{wabsync.DeliveryPending, wabsync.DeliverySucceeded, wabsync.DeliveryFailed})
	check("Direction", []string{wabsync.DirectionIn, wabsync.DirectionOut})
	check("ErrorCode", []string{
		wabsync.EBadRequest, wabsync.EUnauthorized, wabsync.EForbidden, wabsync.ENotFound, wabsync.EMethodNotAllowed,
		wabsync.EConflict, wabsync.ESessionNotConnected, wabsync.EIdempotencyConflict, wabsync.EPayloadTooLarge,
		wabsync.EUnsupportedMedia, wabsync.EValidation, wabsync.ERateLimited, wabsync.EInternal, wabsync.EUnavailable,
	})
}

// TestNullableHasType mirrors Redocly's nullable-type-sibling rule, an error
// in OpenAPI 3.0: a schema marked nullable must also say its type (a bare
// allOf does not count). .ci/run lints the whole document with Redocly.
func TestNullableHasType(t *testing.T) {
	doc := mustLoad(t)
	seen := map[*openapi3.Schema]bool{}
	var visit func(where string, ref *openapi3.SchemaRef)
	visit = func(where string, ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Nullable && (s.Type == nil || len(*s.Type) == 0) {
			t.Errorf("%s: nullable without a type", where)
		}
		for name, p := range s.Properties {
			visit(where+"."+name, p)
		}
		for i, parts := range [][]*openapi3.SchemaRef{s.AllOf, s.OneOf, s.AnyOf} {
			for _, p := range parts {
				visit(where+[]string{".allOf", ".oneOf", ".anyOf"}[i], p)
			}
		}
		visit(where+"[]", s.Items)
		visit(where+".*", s.AdditionalProperties.Schema)
	}
	for name, s := range doc.Components.Schemas {
		visit(name, s)
	}
	for _, op := range api.Operations() {
		o := doc.Paths.Find(op.Path).GetOperation(op.Method)
		for _, p := range o.Parameters {
			visit(op.OperationID+" "+p.Value.Name, p.Value.Schema)
		}
		if o.RequestBody != nil {
			for ct, mt := range o.RequestBody.Value.Content {
				visit(op.OperationID+" request "+ct, mt.Schema)
			}
		}
		for code, r := range o.Responses.Map() {
			for ct, mt := range r.Value.Content {
				visit(op.OperationID+" "+code+" "+ct, mt.Schema)
			}
		}
	}

	t.Run("ChatWithoutMessage", func(t *testing.T) {
		chat := map[string]any{"jid": "14155550123@s.whatsapp.net", "last_message": nil, "unread_count": 0.0,
			"updated_at": "2026-01-01T00:00:00Z"}
		if err := doc.Components.Schemas["Chat"].Value.VisitJSON(chat); err != nil {
			t.Errorf("a chat with last_message null: %v", err)
		}
		chat["last_message"] = "text"
		if err := doc.Components.Schemas["Chat"].Value.VisitJSON(chat); err == nil {
			t.Error("a chat whose last_message is a string passed")
		}
	})
}
