package main

import (
	"context"
	"strings"
	"testing"

	"github.com/wabsync/wabsync/api"
	"github.com/wabsync/wabsync/client"
)

// TestRoutesMatchContract fails when a route exists that the OpenAPI
// document lacks, or the reverse.
func TestRoutesMatchContract(t *testing.T) {
	ts := mustRunMain(t)
	have := map[string]bool{}
	for _, p := range ts.API.Patterns() {
		// ServeMux's "/{$}" (exactly /) and "{rest...}" are "/" and "{rest}" in OpenAPI.
		p = strings.ReplaceAll(strings.ReplaceAll(p, "{$}", ""), "...}", "}")
		have[p] = true
	}
	documented := map[string]bool{}
	for _, op := range api.Operations() {
		documented[op.Method+" "+op.Path] = true
	}
	for p := range have {
		if !documented[p] {
			t.Errorf("route %q is not in api/openapi.yaml", p)
		}
	}
	for p := range documented {
		if !have[p] {
			t.Errorf("api/openapi.yaml documents %q but the server has no such route", p)
		}
	}
}

func TestErrorPaths(t *testing.T) {
	ts := mustRunMain(t)
	sess, tok := ts.sandboxSession("a", client.SessionConfig{})
	t.Run("UnknownRoute", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/nope", testAdminToken, nil)
		if r.Status != 404 || r.Err(t).Code != "NOT_FOUND" || r.Header.Get("X-Request-Id") == "" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("MethodNotAllowed", func(t *testing.T) {
		r := ts.Do("PUT", "/api/v1/sessions", testAdminToken, "{}")
		if r.Status != 405 || r.Err(t).Code != "METHOD_NOT_ALLOWED" || !strings.Contains(r.Header.Get("Allow"), "GET") {
			t.Fatalf("got %d %v %s", r.Status, r.Header, r.Body)
		}
	})
	t.Run("MissingToken", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/sessions", "", nil)
		if r.Status != 401 || r.Err(t).Code != "UNAUTHORIZED" || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("got %d %v %s", r.Status, r.Header, r.Body)
		}
	})
	t.Run("UnknownToken", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/sessions", "WBA|not-the-right-token-at-all-123", nil)
		if r.Status != 401 || r.Err(t).Code != "UNAUTHORIZED" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("SessionTokenOnAdminRoute", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/sessions", tok, nil)
		if r.Status != 403 || r.Err(t).Code != "FORBIDDEN" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("MalformedJSON", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sessions", testAdminToken, `{"name": "x",`)
		if r.Status != 400 || r.Err(t).Code != "BAD_REQUEST" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("UnknownAndWronglyTypedFields", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sessions", testAdminToken, `{"name": 5, "engine": "sandbox", "colour": "red", "config": {"auto_link": "yes", "bogus": 1}}`)
		e := r.Err(t)
		if r.Status != 422 || e.Code != "VALIDATION_ERROR" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
		for _, f := range []string{"name", "colour", "config.auto_link", "config.bogus"} {
			if e.Details[f] == "" {
				t.Errorf("details do not name %s: %v", f, e.Details)
			}
		}
	})
	t.Run("WrongContentType", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sessions", testAdminToken, strings.NewReader(`name=x`), "Content-Type", "application/x-www-form-urlencoded")
		if r.Status != 415 || r.Err(t).Code != "UNSUPPORTED_MEDIA_TYPE" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("BodyTooLarge", func(t *testing.T) {
		big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
		r := ts.Do("POST", "/api/v1/sessions", testAdminToken, big)
		if r.Status != 413 || r.Err(t).Code != "PAYLOAD_TOO_LARGE" {
			t.Fatalf("got %d %.200s", r.Status, r.Body)
		}
	})
	t.Run("RequestIDEchoed", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/health", "", nil, "X-Request-Id", "my-req-42")
		if r.Header.Get("X-Request-Id") != "my-req-42" {
			t.Fatalf("X-Request-Id %q", r.Header.Get("X-Request-Id"))
		}
	})
	t.Run("RateLimitHeaders", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/sessions/"+sess.ID, tok, nil)
		for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			if r.Header.Get(h) == "" {
				t.Errorf("missing %s", h)
			}
		}
	})
	t.Run("Public", func(t *testing.T) {
		for _, p := range []string{"/api/v1/health", "/api/v1/ready", "/api/v1/openapi.yaml", "/api/v1/openapi.json", "/docs", "/metrics"} {
			r := ts.Do("GET", p, "", nil)
			if r.Status != 200 {
				t.Errorf("%s: %d %.200s", p, r.Status, r.Body)
			}
		}
	})
}

func TestRateLimited(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.RateLimit = 3 })
	var last rawResponse
	for i := 0; i < 4; i++ {
		last = ts.Do("GET", "/api/v1/sessions", testAdminToken, nil)
	}
	if last.Status != 429 || last.Err(t).Code != "RATE_LIMITED" || last.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %v %s", last.Status, last.Header, last.Body)
	}
	_ = context.Background()
}
