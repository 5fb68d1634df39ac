package apitest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wabsync/wabsync/internal/apitest"
)

const validSession = `{"id":"ses_1","name":"Support","engine":"sandbox","status":"stopped","status_reason":"",
"phone":"","push_name":"","config":{},"metadata":{},"created_at":"2026-11-25T10:00:00Z",
"updated_at":"2026-11-25T10:00:00Z","connected_at":null}`

// fakeServer answers a few routes, correctly or not depending on the path.
func fakeServer() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, ct, body string) {
		w.Header().Set("X-Request-Id", "req_1")
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	envelope := func(data string) string { return `{"success":true,"message":"ok","data":` + data + `}` }
	mux.HandleFunc("GET /api/v1/sessions/{session}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("session") {
		case "good":
			reply(w, 200, "application/json; charset=utf-8", envelope(validSession))
		case "missing-field":
			reply(w, 200, "application/json", envelope(strings.Replace(validSession, `"phone":"",`, "", 1)))
		case "bad-enum":
			reply(w, 200, "application/json", envelope(strings.Replace(validSession, `"stopped"`, `"sleeping"`, 1)))
		case "unknown-config-key":
			reply(w, 200, "application/json", envelope(strings.Replace(validSession, `"config":{}`, `"config":{"oops":1}`, 1)))
		case "not-enveloped":
			reply(w, 200, "application/json", validSession)
		case "success-false":
			reply(w, 200, "application/json", strings.Replace(envelope(validSession), `"success":true`, `"success":false`, 1))
		case "undocumented-status":
			reply(w, 202, "application/json", envelope(validSession))
		case "wrong-type":
			reply(w, 200, "text/plain", "ok")
		case "no-request-id":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, envelope(validSession))
		case "wrong-code":
			reply(w, 404, "application/json", `{"error":true,"message":"x","code":"CONFLICT","details":{}}`)
		case "nf":
			reply(w, 404, "application/json", `{"error":true,"message":"Session not found.","code":"NOT_FOUND","details":{}}`)
		}
	})
	mux.HandleFunc("GET /api/v1/sessions/{session}/events", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, "text/event-stream", ": keep-alive\n\nid: 1\nevent: webhook.test\ndata: {}\n\n")
	})
	mux.HandleFunc("GET /api/v1/sessions/{session}/qr", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, "image/png", "\x89PNG")
	})
	mux.HandleFunc("GET /api/v1/sessions/{session}/messages/{id}/media", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, "application/pdf", "%PDF")
	})
	mux.HandleFunc("GET /api/v1/not-in-the-contract", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, "application/json", envelope(`{}`))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/health" {
			w.Header().Set("Allow", "GET")
			reply(w, 405, "application/json", `{"error":true,"message":"Method not allowed.","code":"METHOD_NOT_ALLOWED","details":{}}`)
			return
		}
		reply(w, 404, "application/json", `{"error":true,"message":"Not found.","code":"NOT_FOUND","details":{}}`)
	})
	return mux
}

func check(t *testing.T, v *apitest.Validator, method, path string) error {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	rec := httptest.NewRecorder()
	fakeServer().ServeHTTP(rec, req)
	return v.Validate(req, rec.Code, rec.Header(), rec.Body.Bytes())
}

func TestValidate(t *testing.T) {
	v := apitest.NewValidator(t)
	valid := []struct{ name, method, path string }{
		{"Session", "GET", "/api/v1/sessions/good"},
		{"DocumentedError", "GET", "/api/v1/sessions/nf"},
		{"PNG", "GET", "/api/v1/sessions/me/qr"},
		{"AnyMediaType", "GET", "/api/v1/sessions/me/messages/msg_1/media"},
		{"UnknownRoute", "GET", "/api/v1/nope"},
		{"WrongMethod", "DELETE", "/api/v1/health"},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			if err := check(t, v, tc.method, tc.path); err != nil {
				t.Errorf("want valid, got:\n%v", err)
			}
		})
	}
	invalid := []struct{ name, method, path, want string }{
		{"ErrMissingField", "GET", "/api/v1/sessions/missing-field", `"phone"`},
		{"ErrBadEnum", "GET", "/api/v1/sessions/bad-enum", "sleeping"},
		{"ErrUnknownConfigKey", "GET", "/api/v1/sessions/unknown-config-key", "oops"},
		{"ErrNotEnveloped", "GET", "/api/v1/sessions/not-enveloped", `"success"`},
		{"ErrSuccessFalse", "GET", "/api/v1/sessions/success-false", `"success" is false`},
		{"ErrUndocumentedStatus", "GET", "/api/v1/sessions/undocumented-status", "status 202 is not documented"},
		{"ErrContentType", "GET", "/api/v1/sessions/wrong-type", `Content-Type "text/plain" is not documented`},
		{"ErrNoRequestID", "GET", "/api/v1/sessions/no-request-id", "X-Request-Id"},
		{"ErrCodeForStatus", "GET", "/api/v1/sessions/wrong-code", `code "CONFLICT" with status 404`},
		{"ErrUndocumentedRoute", "GET", "/api/v1/not-in-the-contract", "no operation in the document"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			err := check(t, v, tc.method, tc.path)
			if err == nil {
				t.Fatal("want an error, got none")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q:\n%v", tc.want, err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error does not name the request:\n%v", err)
			}
		})
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestTransport(t *testing.T) {
	v := apitest.NewValidator(t)
	srv := httptest.NewServer(fakeServer())
	defer srv.Close()
	rec := &recorder{TB: t}
	hc := &http.Client{Transport: v.Transport(rec, nil)}

	get := func(path string) string {
		t.Helper()
		resp, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	if body := get("/api/v1/sessions/good"); !strings.Contains(body, `"ses_1"`) {
		t.Errorf("body not restored: %q", body)
	}
	if body := get("/api/v1/sessions/me/events"); !strings.Contains(body, "event: webhook.test") {
		t.Errorf("stream body not passed through: %q", body)
	}
	if len(rec.errors) != 0 {
		t.Fatalf("valid responses reported: %v", rec.errors)
	}

	if body := get("/api/v1/sessions/bad-enum"); !strings.Contains(body, "sleeping") {
		t.Errorf("body not restored after a failed check: %q", body)
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "sleeping") {
		t.Errorf("want one failure about the enum, got %v", rec.errors)
	}
}
