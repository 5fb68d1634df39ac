package main

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/wabsync/wabsync/client"
)

// A disk that fails to sync the database's log (SQLite): from then on the
// server stores nothing, since Linux may report a failed write-back only
// once. The send in flight and every later request, reads included, are
// answered 503 UNAVAILABLE without a word of the failure's detail; /ready
// answers 503 too, so that a load balancer takes the server out; the cause
// is logged once, not once per request.
func TestFailedLogSyncMakesTheServerUnavailable(t *testing.T) {
	cfg := testConfig(t)
	if strings.HasPrefix(cfg.DatabaseURL, "postgres") {
		t.Skip("SQLite's write-ahead log; PostgreSQL syncs its own")
	}
	var failing atomic.Bool
	ts := mustRunHooked(t, cfg, func(m *Main) {
		m.syncLog = func(f *os.File) error {
			if failing.Load() {
				return fmt.Errorf("fdatasync %s: %w", f.Name(), syscall.EIO)
			}
			return f.Sync()
		}
	})
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	send := func(text string) rawResponse {
		return ts.Do("POST", "/api/v1/sessions/me/messages/text", a.Token, map[string]any{"to": b.Phone, "text": text})
	}
	if r := send("before"); r.Status != 201 {
		t.Fatalf("send before the failure: %d %s", r.Status, r.Body)
	}
	if r := ts.Do("GET", "/api/v1/ready", "", nil); r.Status != 200 {
		t.Fatalf("ready before the failure: %d %s", r.Status, r.Body)
	}

	failing.Store(true)
	unavailable := func(what string, r rawResponse) {
		t.Helper()
		e := r.Err(t)
		if r.Status != 503 || e.Code != "UNAVAILABLE" {
			t.Fatalf("%s: %d %s, want 503 UNAVAILABLE", what, r.Status, r.Body)
		}
		for _, leak := range []string{"EIO", "input/output", "fdatasync", "-wal", cfg.DataDir} {
			if strings.Contains(string(r.Body), leak) {
				t.Fatalf("%s: the body shows %q: %s", what, leak, r.Body)
			}
		}
	}
	unavailable("the send in flight", send("during"))
	unavailable("a later send", send("after"))
	unavailable("a read", ts.Do("GET", "/api/v1/sessions/me/messages", a.Token, nil))
	r := ts.Do("GET", "/api/v1/ready", "", nil)
	unavailable("ready", r)
	if e := r.Err(t); e.Details["database"] != "failing" {
		t.Fatalf("ready's details: %v", e.Details)
	}
	if n := strings.Count(ts.logs.String(), "the write-ahead log failed to sync"); n != 1 {
		t.Fatalf("the failure was logged %d times, want once:\n%s", n, ts.logs)
	}
	if strings.Contains(ts.logs.String(), "request failed") {
		t.Fatalf("requests refused for it were logged each:\n%s", ts.logs)
	}
}
