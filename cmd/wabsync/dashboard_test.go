package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDashboardRoutes(t *testing.T) {
	ts := mustRunMain(t)
	t.Run("Page", func(t *testing.T) {
		r := ts.Do("GET", "/", "", nil)
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(r.Body), `<script type="module" src="/assets/app.js">`) {
			t.Fatalf("got %d %v %.200s", r.Status, r.Header, r.Body)
		}
		csp := r.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'", "script-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("Content-Security-Policy allows inline code: %q", csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"} {
			if got := r.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	})
	t.Run("Assets", func(t *testing.T) {
		for path, ct := range map[string]string{
			"/assets/app.js":   "text/javascript; charset=utf-8",
			"/assets/api.js":   "text/javascript; charset=utf-8",
			"/assets/app.css":  "text/css; charset=utf-8",
			"/assets/icon.svg": "image/svg+xml",
		} {
			r := ts.Do("GET", path, "", nil)
			if r.Status != http.StatusOK || r.Header.Get("Content-Type") != ct || len(r.Body) == 0 {
				t.Errorf("%s: got %d %q", path, r.Status, r.Header.Get("Content-Type"))
			}
		}
	})
	t.Run("NotModified", func(t *testing.T) {
		r := ts.Do("GET", "/assets/app.js", "", nil)
		etag := r.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		r = ts.Do("GET", "/assets/app.js", "", nil, "If-None-Match", etag)
		if r.Status != http.StatusNotModified || len(r.Body) != 0 {
			t.Fatalf("got %d with %d bytes", r.Status, len(r.Body))
		}
	})
	t.Run("UnknownAsset", func(t *testing.T) {
		for _, path := range []string{"/assets/nope.js", "/assets/index.html", "/assets/..%2fdashboard.go"} {
			r := ts.Do("GET", path, "", nil)
			if r.Status != http.StatusNotFound || r.Err(t).Code != "NOT_FOUND" {
				t.Errorf("%s: got %d %s", path, r.Status, r.Body)
			}
		}
	})
	t.Run("OtherPathsStillNotFound", func(t *testing.T) {
		r := ts.Do("GET", "/index.html", "", nil)
		if r.Status != http.StatusNotFound || r.Err(t).Code != "NOT_FOUND" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
}

// TestDashboardInBrowser drives the dashboard in headless Chromium against
// this server: web/tests/dashboard.e2e.mjs signs in, creates and links a
// sandbox session, sends to a second one, creates a webhook and watches its
// delivery, and fails on any console or page error. Screenshots of each step
// go to screenshots/ at the repository root (git-ignored).
func TestDashboardInBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the dashboard's browser test needs Node.js")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("/usr/bin/chromium is missing; install it with apt-get install -y chromium")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(root, "web")
	if _, err := os.Stat(filepath.Join(web, "node_modules", "playwright-core")); err != nil {
		t.Skip("web/node_modules/playwright-core is missing; run npm install in web/")
	}
	ts := mustRunMain(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("tests", "dashboard.e2e.mjs"))
	cmd.Dir = web
	cmd.Env = append(os.Environ(),
		"WABSYNC_URL="+ts.URL(),
		"WABSYNC_ADMIN_TOKEN="+testAdminToken,
		"WABSYNC_SCREENSHOTS="+filepath.Join(root, "screenshots"))
	out, err := cmd.CombinedOutput()
	t.Logf("dashboard.e2e.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}
