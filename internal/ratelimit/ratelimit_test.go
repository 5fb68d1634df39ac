package ratelimit_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wabsync/wabsync/internal/ratelimit"
)

func TestLimiter_Memory(t *testing.T) {
	t.Run("AllowsUpToLimit", func(t *testing.T) {
		l := MustNew(t, ratelimit.Config{Limit: 5, Window: time.Minute})
		for i := 1; i <= 5; i++ {
			h, ok := allow(l, "token-a")
			if !ok {
				t.Fatalf("request %d refused, want allowed", i)
			}
			checkHeaders(t, h, 5, 5-i, time.Minute)
			if v := h.Get("Retry-After"); v != "" {
				t.Errorf("request %d: Retry-After = %q on an allowed request", i, v)
			}
		}
		h, ok := allow(l, "token-a")
		if ok {
			t.Fatal("request 6 allowed, want refused")
		}
		checkHeaders(t, h, 5, 0, time.Minute)
		if v := h.Get("Retry-After"); v != "60" {
			t.Errorf("Retry-After = %q, want 60 (the window, as httprate sets it)", v)
		}
	})

	t.Run("SeparateKeys", func(t *testing.T) {
		l := MustNew(t, ratelimit.Config{Limit: 3})
		for range 3 {
			allow(l, "token-a")
		}
		if _, ok := allow(l, "token-a"); ok {
			t.Fatal("token-a allowed past its limit")
		}
		h, ok := allow(l, "token-b")
		if !ok {
			t.Fatal("token-b refused: it has a budget of its own")
		}
		checkHeaders(t, h, 3, 2, ratelimit.DefaultWindow)
	})

	t.Run("NewWindowResets", func(t *testing.T) {
		const window = time.Second
		l := MustNew(t, ratelimit.Config{Limit: 3, Window: window})
		for range 3 {
			allow(l, "token-a")
		}
		if _, ok := allow(l, "token-a"); ok {
			t.Fatal("allowed past the limit")
		}
		// httprate counts with a sliding window: the previous window still
		// weighs in, so the whole budget is back once two windows have begun.
		time.Sleep(2*window + 50*time.Millisecond)
		for i := 1; i <= 3; i++ {
			h, ok := allow(l, "token-a")
			if !ok {
				t.Fatalf("request %d of the new window refused", i)
			}
			checkHeaders(t, h, 3, 3-i, window)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		const limit = 200
		l := MustNew(t, ratelimit.Config{Limit: limit})
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if _, ok := allow(l, "token-a"); ok {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := allowed.Load(); got != limit {
			t.Errorf("allowed %d of 800 concurrent requests, want %d", got, limit)
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		l := MustNew(t, ratelimit.Config{})
		if l.Limit() != 1000 || l.Window() != time.Minute {
			t.Errorf("Limit, Window = %d, %s; want 1000, 1m0s", l.Limit(), l.Window())
		}
		if l.Shared() {
			t.Error("Shared() = true without Redis")
		}
		h, _ := allow(l, "token-a")
		checkHeaders(t, h, 1000, 999, time.Minute)
	})
}

func TestNew_Invalid(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    ratelimit.Config
		want   string // in the error
		secret string // not in the error
	}{
		{"ErrNegativeLimit", ratelimit.Config{Limit: -1}, "WABSYNC_RATE_LIMIT", ""},
		{"ErrShortWindow", ratelimit.Config{Window: 500 * time.Millisecond}, "WABSYNC_RATE_WINDOW", ""},
		{"ErrRedisScheme", ratelimit.Config{RedisURL: "http://127.0.0.1:6379"}, "WABSYNC_REDIS_URL", ""},
		{"ErrRedisDB", ratelimit.Config{RedisURL: "redis://:hunter22@127.0.0.1:6379/x"}, "WABSYNC_REDIS_URL", "hunter22"},
		{"ErrRedisOption", ratelimit.Config{RedisURL: "redis://:hunter22@127.0.0.1/0?nonsense=1"}, "WABSYNC_REDIS_URL", "hunter22"},
		{"ErrRedisUnparsable", ratelimit.Config{RedisURL: "redis://admin:hunter22%zz@127.0.0.1:6379/0"}, "WABSYNC_REDIS_URL", "hunter22"},
		{"ErrRedisBadPort", ratelimit.Config{RedisURL: "redis://admin:hunter22@127.0.0.1:port/0"}, "WABSYNC_REDIS_URL", "hunter22"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ratelimit.New(tt.cfg)
			if err == nil {
				l.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q shows the Redis password", err)
			}
		})
	}
}

// MustNew returns a Limiter for cfg, closed when the test ends. Without a
// logger in cfg, it logs to the test's output.
func MustNew(tb testing.TB, cfg ratelimit.Config) *ratelimit.Limiter {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tb.Output(), nil))
	}
	l, err := ratelimit.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return l
}

// allow runs one request for key through l and returns the response headers.
func allow(l *ratelimit.Limiter, key string) (http.Header, bool) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/api/v1/sessions", nil)
	ok := l.Allow(w, r, key)
	return w.Header(), ok
}

// checkHeaders checks the rate-limit headers of one response.
func checkHeaders(t *testing.T, h http.Header, limit, remaining int, window time.Duration) {
	t.Helper()
	if got := h.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Errorf("X-RateLimit-Limit = %q, want %d", got, limit)
	}
	if got := h.Get("X-RateLimit-Remaining"); got != strconv.Itoa(remaining) {
		t.Errorf("X-RateLimit-Remaining = %q, want %d", got, remaining)
	}
	reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil {
		t.Fatalf("X-RateLimit-Reset = %q, want Unix seconds", h.Get("X-RateLimit-Reset"))
	}
	// The window containing now ends after now and at most one window later
	// (plus a second for truncation to whole seconds).
	now := time.Now().Unix()
	if reset < now || reset > now+int64(window.Seconds())+1 {
		t.Errorf("X-RateLimit-Reset = %d, want Unix seconds in [%d, %d]", reset, now, now+int64(window.Seconds())+1)
	}
}

// logBuffer collects slog output; Redis outages are logged from httprate-redis's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many lines of the log contain s.
func (b *logBuffer) Count(s string) int {
	n := 0
	for line := range strings.Lines(b.String()) {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// newLogger returns a logger writing everything, debug included, to a logBuffer.
func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// discardWriter is a ResponseWriter that keeps headers only, reused across
// benchmark iterations so that what is measured is Allow.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkAllowMemory(b *testing.B) {
	l := MustNew(b, ratelimit.Config{Limit: 1 << 40})
	w := &discardWriter{h: make(http.Header)}
	r := httptest.NewRequest("GET", "/api/v1/sessions", nil)
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		if !l.Allow(w, r, "token-a") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkAllowMemoryParallel(b *testing.B) {
	l := MustNew(b, ratelimit.Config{Limit: 1 << 40})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := "token-" + strconv.FormatInt(n.Add(1), 10)
		w := &discardWriter{h: make(http.Header)}
		r := httptest.NewRequest("GET", "/api/v1/sessions", nil)
		for pb.Next() {
			clear(w.h)
			if !l.Allow(w, r, key) {
				b.Error("refused")
				return
			}
		}
	})
}

// BenchmarkAllowMemoryOneKeyParallel is the worst case in memory: every
// goroutine on the same key, so on the same shard and lock.
func BenchmarkAllowMemoryOneKeyParallel(b *testing.B) {
	l := MustNew(b, ratelimit.Config{Limit: 1 << 40})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: make(http.Header)}
		r := httptest.NewRequest("GET", "/api/v1/sessions", nil)
		for pb.Next() {
			clear(w.h)
			if !l.Allow(w, r, "token-a") {
				b.Error("refused")
				return
			}
		}
	})
}

// BenchmarkRoute serves a bare handler and the same handler behind Allow
// from one server and alternates between them request by request, so that
// the noise of a shared machine falls on both alike. It reports the mean time
// of a request to each and limited/bare (bare time ÷ limited time), the
// limited route's throughput relative to the bare one at equal concurrency.
func BenchmarkRoute(b *testing.B) {
	for _, bb := range []struct {
		name string
		cfg  func(b *testing.B) ratelimit.Config
	}{
		{"Memory", func(*testing.B) ratelimit.Config { return ratelimit.Config{Limit: 1 << 40} }},
		{"Redis", func(b *testing.B) ratelimit.Config {
			return ratelimit.Config{Limit: 1 << 40, RedisURL: redisURL(b), RedisPrefix: uniquePrefix(),
				Logger: slog.New(slog.DiscardHandler)}
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			l := MustNew(b, bb.cfg(b))
			ok := func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.Write([]byte(`{"success":true,"message":"OK","data":{}}`))
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /bare", ok)
			mux.HandleFunc("GET /limited", func(w http.ResponseWriter, r *http.Request) {
				if !l.Allow(w, r, r.Header.Get("Authorization")) {
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				ok(w, r)
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 256}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var n, bareNS, limitedNS, bareN, limitedN atomic.Int64
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				token := "Bearer WBT|token-" + strconv.FormatInt(n.Add(1), 10)
				for i := 0; pb.Next(); i++ {
					path, ns, cnt := "/bare", &bareNS, &bareN
					if i%2 == 1 {
						path, ns, cnt = "/limited", &limitedNS, &limitedN
					}
					req, _ := http.NewRequest("GET", srv.URL+path, nil)
					req.Header.Set("Authorization", token)
					start := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ns.Add(int64(time.Since(start)))
					cnt.Add(1)
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			if bareN.Load() > 0 && limitedN.Load() > 0 {
				bare := float64(bareNS.Load()) / float64(bareN.Load())
				limited := float64(limitedNS.Load()) / float64(limitedN.Load())
				b.ReportMetric(bare, "bare-ns/req")
				b.ReportMetric(limited, "limited-ns/req")
				b.ReportMetric(bare/limited, "limited/bare")
			}
		})
	}
}
