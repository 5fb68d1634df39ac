package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/apitest"
	"github.com/wabsync/wabsync/internal/testutil"
)

const testAdminToken = "WBA|test-admin-token-0123456789abcdef"

var (
	validatorOnce sync.Once
	validator     *apitest.Validator
)

func mustValidator(tb testing.TB) *apitest.Validator {
	validatorOnce.Do(func() { validator = apitest.NewValidator(tb) })
	return validator
}

// testServer is the real server (Main, the production wiring) on a loopback
// port with a temporary data directory and a database of its own.
type testServer struct {
	*Main
	t     testing.TB
	Admin *client.Client
	http  *http.Client
	logs  *logSink
}

// testConfig returns the configuration tests start from.
func testConfig(tb testing.TB) Config {
	cfg, err := ParseConfig(nil, func(string) string { return "" })
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(tb.TempDir(), "data")
	cfg.DatabaseURL = testutil.DatabaseURL(tb)
	cfg.AdminToken = testAdminToken
	cfg.AllowPrivateURLs = true
	cfg.ReconnectBase = 20 * time.Millisecond
	cfg.SendRate = 1000
	cfg.SendBurst = 1000
	cfg.LogLevel = "warn"
	// Tests poll; the rate limit has its own tests.
	cfg.RateLimit = 1 << 30
	cfg.AuthFailLimit = 1 << 30
	return cfg
}

// mustRunMain starts a server; mods change its configuration first.
func mustRunMain(tb testing.TB, mods ...func(*Config)) *testServer {
	tb.Helper()
	cfg := testConfig(tb)
	for _, f := range mods {
		f(&cfg)
	}
	return mustRunConfig(tb, cfg)
}

// logSink collects a server's log so a failing test can show it.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func mustRunConfig(tb testing.TB, cfg Config) *testServer {
	tb.Helper()
	return mustRunHooked(tb, cfg, nil)
}

// mustRunHooked starts a server with cfg after hook (if not nil) set Main's
// test hooks.
func mustRunHooked(tb testing.TB, cfg Config, hook func(*Main)) *testServer {
	tb.Helper()
	logs := &logSink{}
	m := NewMain(cfg, logs)
	if hook != nil {
		hook(m)
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatalf("start server: %v\n%s", err, logs)
	}
	ts := &testServer{Main: m, t: tb, logs: logs}
	tb.Cleanup(func() {
		m.Close()
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs)
		}
	})
	ts.http = &http.Client{Transport: mustValidator(tb).Transport(tb, nil), Timeout: 60 * time.Second}
	ts.Admin = ts.Client(testAdminToken)
	return ts
}

// Client returns an SDK client with token whose every response is checked
// against the OpenAPI document.
func (ts *testServer) Client(token string) *client.Client {
	c, err := client.New(ts.URL(), token, client.WithHTTPClient(ts.http))
	if err != nil {
		ts.t.Fatal(err)
	}
	return c
}

// rawResponse is a response read whole.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r rawResponse) JSON(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorEnvelope is the error body.
type errorEnvelope struct {
	Error   bool              `json:"error"`
	Message string            `json:"message"`
	Code    string            `json:"code"`
	Details map[string]string `json:"details"`
}

func (r rawResponse) Err(tb testing.TB) errorEnvelope {
	tb.Helper()
	var e errorEnvelope
	r.JSON(tb, &e)
	if !e.Error || e.Code == "" {
		tb.Fatalf("not an error envelope: %s", r.Body)
	}
	return e
}

// Do sends a raw request (validated like the SDK's). body may be a string,
// []byte, io.Reader or any value to encode as JSON; headers are pairs.
func (ts *testServer) Do(method, path, token string, body any, headers ...string) rawResponse {
	ts.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, ts.URL()+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// sandboxSession creates a sandbox session and returns it with its token.
func (ts *testServer) sandboxSession(name string, cfg client.SessionConfig) (*client.Session, string) {
	ts.t.Helper()
	eng := client.Engine("sandbox")
	c, err := ts.Admin.CreateSession(context.Background(), client.CreateSessionRequest{Name: name, Engine: &eng, Config: &cfg})
	if err != nil {
		ts.t.Fatalf("create session: %v", err)
	}
	return &c.Session, c.Token
}

// linkedSession creates an auto-linked sandbox session and waits until it
// is connected.
func (ts *testServer) linkedSession(name string, cfg client.SessionConfig) (*client.Session, string) {
	ts.t.Helper()
	yes := true
	cfg.AutoLink = &yes
	s, tok := ts.sandboxSession(name, cfg)
	if _, err := ts.Admin.Connect(context.Background(), s.ID); err != nil {
		ts.t.Fatalf("connect: %v", err)
	}
	return ts.waitStatus(s.ID, "connected", 10*time.Second), tok
}

// waitStatus waits until the session has status st and returns it.
func (ts *testServer) waitStatus(id, st string, timeout time.Duration) *client.Session {
	ts.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := ts.Admin.GetSession(context.Background(), id)
		if err != nil {
			ts.t.Fatalf("get session: %v", err)
		}
		if string(s.Status) == st {
			return s
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("session %s did not become %s within %v; it is %s: %s", id, st, timeout, s.Status, s.StatusReason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
