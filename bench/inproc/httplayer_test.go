// Package inproc holds in-process benchmarks of wabsync's internal packages,
// for CPU profiles of the hot paths the bench/ programs measure end to end.
package inproc

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/bench/internal/benchutil"
	"github.com/wabsync/wabsync/internal/httpapi"
	"github.com/wabsync/wabsync/internal/ratelimit"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// BenchmarkHTTPLayer serves requests straight into the handlers (no
// network): the bare baseline, GET /api/v1/sessions/me with a session token
// (auth, rate limit, one read, envelope) and the public health check.
//
//	go test -run '^$' -bench HTTPLayer -cpuprofile /tmp/cpu.out ./bench/inproc/
func BenchmarkHTTPLayer(b *testing.B) {
	_, api, tok := newAPI(b, wabsync.StatusStopped)
	run := func(b *testing.B, h http.Handler, path, token string) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest("GET", path, nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%s: %d %s", path, w.Code, w.Body)
				}
			}
		})
	}
	b.Run("Bare", func(b *testing.B) { run(b, benchutil.BareHandler(), "/bare", "") })
	b.Run("SessionsMe", func(b *testing.B) { run(b, api, "/api/v1/sessions/me", tok) })
	b.Run("Health", func(b *testing.B) { run(b, api, "/api/v1/health", "") })
}

// newAPI returns a server on a fresh SQLite database whose rate limiter
// counts every request but refuses none, and the token of its one session.
func newAPI(b *testing.B, status wabsync.SessionStatus) (*store.DB, *httpapi.Server, string) {
	db := testutil.MustOpenDB(b)
	lim, err := ratelimit.New(ratelimit.Config{Limit: 1e9, Window: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{MetricsPublic: true}, db, lim, httpapi.Deps{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tok := store.NewSessionToken()
	s := &wabsync.Session{ID: "ses_bench", Name: "bench", Engine: wabsync.EngineSandbox, Status: status}
	if err := db.CreateSession(context.Background(), s, store.HashToken(tok)); err != nil {
		b.Fatal(err)
	}
	return db, api, tok
}
