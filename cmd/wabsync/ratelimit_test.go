package main

import (
	"context"
	"crypto/rand"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wabsync/wabsync/internal/testutil"
)

// TestRateLimitAcrossNodes runs two servers against one database (as nodes
// of one deployment do) and checks that with WABSYNC_REDIS_URL they share one
// rate-limit budget per token, and that without a reachable Redis a server
// keeps serving on counts of its own.
func TestRateLimitAcrossNodes(t *testing.T) {
	// An hour-long window: the sliding window cannot hand budget back while
	// the test runs, however slow the machine.
	const limit, window = 6, time.Hour

	t.Run("OneBudget", func(t *testing.T) {
		u := testutil.RequireRedis(t)
		prefix := mustRedisPrefix(t, u)
		node := func(c *Config) {
			c.RedisURL, c.redisPrefix = u, prefix
			c.RateLimit, c.RateWindow = limit, window
		}
		a := mustRunMain(t, node)
		b := mustRunMain(t, node, func(c *Config) { c.DatabaseURL = a.Config.DatabaseURL })
		if !a.Limiter.Shared() || !b.Limiter.Shared() {
			t.Fatalf("Shared() = %v, %v with Redis up, want true for both", a.Limiter.Shared(), b.Limiter.Shared())
		}

		nodes := []*testServer{a, b}
		ok := 0
		for i := range limit {
			r := nodes[i%2].Do("GET", "/api/v1/sessions", testAdminToken, nil)
			if r.Status != 200 {
				t.Fatalf("request %d (node %d): %d %s, want 200 within the budget", i+1, i%2, r.Status, r.Body)
			}
			ok++
			if got, want := r.Header.Get("X-RateLimit-Remaining"), strconv.Itoa(limit-ok); got != want {
				t.Errorf("request %d (node %d): X-RateLimit-Remaining = %s, want %s (counted across both nodes)", i+1, i%2, got, want)
			}
			if got := r.Header.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
				t.Errorf("request %d: X-RateLimit-Limit = %s, want %d", i+1, got, limit)
			}
		}
		for i, ts := range nodes {
			r := ts.Do("GET", "/api/v1/sessions", testAdminToken, nil)
			if r.Status != 429 {
				t.Fatalf("node %d after %d requests in all: %d %s, want 429 (one shared budget)", i, ok, r.Status, r.Body)
			}
			if code := r.Err(t).Code; code != "RATE_LIMITED" {
				t.Errorf("node %d: code %s, want RATE_LIMITED", i, code)
			}
			if got := r.Header.Get("Retry-After"); got != strconv.Itoa(int(window.Seconds())) {
				t.Errorf("node %d: Retry-After = %q, want %d", i, got, int(window.Seconds()))
			}
			if got := r.Header.Get("X-RateLimit-Remaining"); got != "0" {
				t.Errorf("node %d: X-RateLimit-Remaining = %q on a 429, want 0", i, got)
			}
		}
		// Public routes are counted per client IP, apart from the token.
		if r := b.Do("GET", "/api/v1/ready", "", nil); r.Status != 200 {
			t.Errorf("public route after the token's budget is spent: %d %s", r.Status, r.Body)
		}
	})

	t.Run("RedisUnreachable", func(t *testing.T) {
		ts := mustRunMain(t, func(c *Config) {
			c.RedisURL, c.redisPrefix = "redis://127.0.0.1:1/0", "wabsync-test:ratelimit:"+rand.Text()
			c.RateLimit, c.RateWindow = limit, window
		})
		if ts.Limiter.Shared() {
			t.Error("Shared() = true with Redis unreachable")
		}
		for i := 1; i <= limit; i++ {
			r := ts.Do("GET", "/api/v1/sessions", testAdminToken, nil)
			if r.Status != 200 {
				t.Fatalf("request %d: %d %s, want 200 on local counts", i, r.Status, r.Body)
			}
			if got, want := r.Header.Get("X-RateLimit-Remaining"), strconv.Itoa(limit-i); got != want {
				t.Errorf("request %d: X-RateLimit-Remaining = %s, want %s", i, got, want)
			}
		}
		r := ts.Do("GET", "/api/v1/sessions", testAdminToken, nil)
		if r.Status != 429 || r.Err(t).Code != "RATE_LIMITED" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d: %d %v %s, want 429 RATE_LIMITED with Retry-After", limit+1, r.Status, r.Header, r.Body)
		}
	})
}

// mustRedisPrefix returns a Redis key prefix of the test's own, so that runs
// never share counters, and deletes its keys when the test ends.
func mustRedisPrefix(tb testing.TB, redisURL string) string {
	tb.Helper()
	prefix := "wabsync-test:ratelimit:" + rand.Text()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		tb.Fatalf("WABSYNC_TEST_REDIS_URL: %v", err)
	}
	tb.Cleanup(func() {
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return prefix
}
