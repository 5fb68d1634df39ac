package ratelimit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/httprate"
	"github.com/redis/go-redis/v9"

	"github.com/wabsync/wabsync/internal/ratelimit"
)

// redisURL returns WABSYNC_TEST_REDIS_URL or skips the test.
func redisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("WABSYNC_TEST_REDIS_URL")
	if u == "" {
		tb.Skip("WABSYNC_TEST_REDIS_URL not set")
	}
	return u
}

// uniquePrefix returns a Redis key prefix of its own for this test run, so
// runs never see each other's counters.
func uniquePrefix() string {
	return "wabsync-test:ratelimit:" + rand.Text()
}

func TestLimiter_Redis(t *testing.T) {
	t.Run("SharedBudget", func(t *testing.T) {
		u, prefix := redisURL(t), uniquePrefix()
		a := MustNew(t, ratelimit.Config{Limit: 10, RedisURL: u, RedisPrefix: prefix})
		b := MustNew(t, ratelimit.Config{Limit: 10, RedisURL: u, RedisPrefix: prefix})
		if !a.Shared() || !b.Shared() {
			t.Fatal("Shared() = false with Redis up")
		}
		allowed := 0
		for i := range 30 {
			l := a
			if i%2 == 1 {
				l = b
			}
			h, ok := allow(l, "token-a")
			if ok {
				allowed++
				checkHeaders(t, h, 10, 10-allowed, ratelimit.DefaultWindow)
			} else if h.Get("Retry-After") == "" {
				t.Errorf("request %d refused without Retry-After", i)
			}
		}
		if allowed != 10 {
			t.Errorf("allowed %d requests across two limiters, want 10 (one shared budget)", allowed)
		}
		if _, ok := allow(a, "token-b"); !ok {
			t.Error("token-b refused: it has a budget of its own")
		}
	})

	t.Run("RemainingNeverNegative", func(t *testing.T) {
		u, prefix := redisURL(t), uniquePrefix()
		const window = time.Hour
		l := MustNew(t, ratelimit.Config{Limit: 5, Window: window, RedisURL: u, RedisPrefix: prefix})
		allow(l, "token-a")
		// Other nodes let requests through at the same moment: the count
		// overshoots the limit. Add them behind this limiter's back, under
		// the key httprate-redis uses (windows aligned to the clock).
		rdb := mustRedisClient(t, u)
		curr := time.Now().UTC().Truncate(window)
		key := fmt.Sprintf("%s:%d", prefix, httprate.LimitCounterKey("token-a", curr))
		if err := rdb.IncrBy(context.Background(), key, 20).Err(); err != nil {
			t.Fatal(err)
		}
		h, ok := allow(l, "token-a")
		if ok {
			t.Fatal("allowed past the limit")
		}
		if got := h.Get("X-RateLimit-Remaining"); got != "0" {
			t.Errorf("X-RateLimit-Remaining = %q, want 0", got)
		}
	})

	t.Run("OutageAndRecovery", func(t *testing.T) {
		u, prefix := redisURL(t), uniquePrefix()
		p := startProxy(t, u)
		log, logs := newLogger()
		// a reaches Redis through a proxy that the test cuts; b directly.
		a := MustNew(t, ratelimit.Config{Limit: 5, RedisURL: p.url, RedisPrefix: prefix, Logger: log})
		b := MustNew(t, ratelimit.Config{Limit: 5, RedisURL: u, RedisPrefix: prefix})

		checkShared(t, a, b, "token-before")

		p.cut()
		for i := 1; i <= 5; i++ {
			if _, ok := allow(a, "token-during"); !ok {
				t.Fatalf("request %d refused during the outage, want allowed on local counts", i)
			}
		}
		if _, ok := allow(a, "token-during"); ok {
			t.Error("request 6 allowed during the outage: local counts not kept")
		}
		if a.Shared() {
			t.Error("Shared() = true during the outage")
		}
		// More requests and reconnection attempts: still one warning.
		for range 100 {
			allow(a, "token-more")
		}
		time.Sleep(500 * time.Millisecond)
		if n := logs.Count("level=WARN"); n != 1 {
			t.Errorf("%d warnings for one outage, want 1; log:\n%s", n, logs)
		}

		p.restore()
		waitFor(t, 15*time.Second, "Redis in use again after the outage", a.Shared)
		if logs.Count("Redis reachable again") != 1 {
			t.Errorf("recovery not logged once; log:\n%s", logs)
		}
		checkShared(t, a, b, "token-after")
	})
}

func TestLimiter_RedisUnreachable(t *testing.T) {
	t.Run("AllowsOnLocalCounts", func(t *testing.T) {
		log, logs := newLogger()
		l := MustNew(t, ratelimit.Config{Limit: 5, RedisURL: "redis://admin:hunter22@127.0.0.1:1/0", Logger: log})
		if l.Shared() {
			t.Error("Shared() = true with Redis unreachable")
		}
		for i := 1; i <= 5; i++ {
			h, ok := allow(l, "token-a")
			if !ok {
				t.Fatalf("request %d refused, want allowed on local counts", i)
			}
			checkHeaders(t, h, 5, 5-i, ratelimit.DefaultWindow)
		}
		h, ok := allow(l, "token-a")
		if ok {
			t.Fatal("request 6 allowed, want refused")
		}
		if h.Get("Retry-After") == "" {
			t.Error("refused without Retry-After")
		}
		time.Sleep(500 * time.Millisecond) // a few failed reconnection attempts
		if n := logs.Count("level=WARN"); n != 1 {
			t.Errorf("%d warnings, want 1; log:\n%s", n, logs)
		}
		if !strings.Contains(logs.String(), "127.0.0.1:1") {
			t.Errorf("warning does not say which Redis; log:\n%s", logs)
		}
		if strings.Contains(logs.String(), "hunter22") {
			t.Errorf("log shows the Redis password:\n%s", logs)
		}
	})

	t.Run("CloseStopsReconnecting", func(t *testing.T) {
		log, _ := newLogger()
		l, err := ratelimit.New(ratelimit.Config{RedisURL: "redis://127.0.0.1:1/0", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		allow(l, "token-a")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		waitFor(t, 5*time.Second, "httprate-redis's reconnection goroutine to end", func() bool {
			buf := make([]byte, 1<<20)
			return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "httprate-redis.(*redisCounter).reconnect")
		})
	})
}

// checkShared checks that a and b count key in one budget: a uses up the
// budget, and b is refused.
func checkShared(t *testing.T, a, b *ratelimit.Limiter, key string) {
	t.Helper()
	for i := 1; i <= a.Limit(); i++ {
		if _, ok := allow(a, key); !ok {
			t.Fatalf("%s: request %d refused by a", key, i)
		}
	}
	if h, ok := allow(b, key); ok {
		t.Errorf("%s: b allowed a request after a used the budget: counts not shared", key)
	} else if got := h.Get("X-RateLimit-Remaining"); got != "0" {
		t.Errorf("%s: X-RateLimit-Remaining = %q, want 0", key, got)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustRedisClient(tb testing.TB, u string) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// proxy forwards TCP connections to Redis until it is cut: then it closes
// every connection and refuses new ones, as a network partition would, until
// it is restored.
type proxy struct {
	url    string // the Redis URL, through the proxy
	target string
	ln     net.Listener
	down   atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, redisURL string) *proxy {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Network != "tcp" {
		t.Skip("proxy needs Redis over TCP")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(redisURL)
	u.Host = ln.Addr().String()
	p := &proxy{url: u.String(), target: opts.Addr, ln: ln, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		r, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[r] = true, true
		p.mu.Unlock()
		go func() { io.Copy(r, c); r.Close() }()
		go func() { io.Copy(c, r); c.Close() }()
	}
}

func (p *proxy) cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore() { p.down.Store(false) }

func BenchmarkAllowRedis(b *testing.B) {
	l := MustNew(b, ratelimit.Config{Limit: 1 << 40, RedisURL: redisURL(b), RedisPrefix: uniquePrefix(), Logger: slog.New(slog.DiscardHandler)})
	w := &discardWriter{h: make(http.Header)}
	r, _ := http.NewRequest("GET", "/api/v1/sessions", nil)
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		if !l.Allow(w, r, "token-a") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkAllowRedisParallel(b *testing.B) {
	l := MustNew(b, ratelimit.Config{Limit: 1 << 40, RedisURL: redisURL(b), RedisPrefix: uniquePrefix(), Logger: slog.New(slog.DiscardHandler)})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprintf("token-%d", n.Add(1))
		w := &discardWriter{h: make(http.Header)}
		r, _ := http.NewRequest("GET", "/api/v1/sessions", nil)
		for pb.Next() {
			clear(w.h)
			if !l.Allow(w, r, key) {
				b.Error("refused")
				return
			}
		}
	})
}
