package main

import (
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// TestFailedAuthenticationsLimited: past WABSYNC_AUTH_FAIL_LIMIT failed
// authentications, a client address gets 429 RATE_LIMITED with Retry-After
// instead of 401, for wrong and missing tokens alike and for tokens not
// already known good; a token it used successfully before keeps working,
// and public routes are not concerned. With Redis the count is shared by
// the nodes.
func TestFailedAuthenticationsLimited(t *testing.T) {
	// An hour-long window: the sliding window cannot hand budget back while
	// the test runs, however slow the machine.
	const limit, window = 5, time.Hour
	const wrong = "WBT|not-a-token-of-this-server-0123456789"
	limited := func(t *testing.T, r rawResponse, what string) {
		t.Helper()
		if r.Status != 429 {
			t.Fatalf("%s: %d %s, want 429", what, r.Status, r.Body)
		}
		if code := r.Err(t).Code; code != "RATE_LIMITED" {
			t.Errorf("%s: code %s, want RATE_LIMITED", what, code)
		}
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", what)
		}
	}

	t.Run("OneNode", func(t *testing.T) {
		ts := mustRunMain(t, func(c *Config) { c.AuthFailLimit, c.AuthFailWindow = limit, window })
		_, tok := ts.sandboxSession("s", client.SessionConfig{}) // the admin token is now known good
		for i := range limit {
			if r := ts.Do("GET", "/api/v1/sessions/me", wrong, nil); r.Status != 401 {
				t.Fatalf("failure %d: %d %s, want 401 within the limit", i+1, r.Status, r.Body)
			}
		}
		limited(t, ts.Do("GET", "/api/v1/sessions/me", wrong, nil), "a wrong token past the limit")
		limited(t, ts.Do("GET", "/api/v1/sessions/me", "", nil), "no token past the limit")
		limited(t, ts.Do("GET", "/api/v1/sessions/me", tok, nil), "a token not yet used, past the limit")
		if r := ts.Do("GET", "/api/v1/sessions", testAdminToken, nil); r.Status != 200 {
			t.Errorf("a token used before: %d %s, want 200", r.Status, r.Body)
		}
		if r := ts.Do("GET", "/api/v1/health", "", nil); r.Status != 200 {
			t.Errorf("a public route: %d %s, want 200", r.Status, r.Body)
		}
	})

	t.Run("SharedThroughRedis", func(t *testing.T) {
		u := testutil.RequireRedis(t)
		prefix := mustRedisPrefix(t, u)
		node := func(c *Config) {
			c.RedisURL, c.redisPrefix = u, prefix
			c.AuthFailLimit, c.AuthFailWindow = limit, window
		}
		a := mustRunMain(t, node)
		b := mustRunMain(t, node, func(c *Config) { c.DatabaseURL = a.Config.DatabaseURL })
		nodes := []*testServer{a, b}
		for i := range limit {
			if r := nodes[i%2].Do("GET", "/api/v1/sessions", wrong, nil); r.Status != 401 {
				t.Fatalf("failure %d (node %d): %d %s, want 401 within the limit", i+1, i%2, r.Status, r.Body)
			}
		}
		for i, ts := range nodes {
			limited(t, ts.Do("GET", "/api/v1/sessions", wrong, nil), "node "+string(rune('A'+i))+" past the limit counted on both")
		}
	})
}
