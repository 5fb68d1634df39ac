package apidocs_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wabsync/wabsync/api"
	"github.com/wabsync/wabsync/internal/apidocs"
)

func mustGet(t *testing.T, h http.Handler) (*httptest.ResponseRecorder, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/docs", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return rec, rec.Body.String()
}

func TestHandler(t *testing.T) {
	h := apidocs.Handler(api.YAML())
	rec, page := mustGet(t, h)
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}

	t.Run("EveryOperation", func(t *testing.T) {
		for _, op := range api.Operations() {
			if !strings.Contains(page, `id="op-`+op.OperationID+`"`) {
				t.Errorf("no section for %s", op.OperationID)
			}
			if !strings.Contains(page, "<code class=\"path\">"+html.EscapeString(op.Path)+"</code>") {
				t.Errorf("path %s not shown", op.Path)
			}
		}
	})

	t.Run("Content", func(t *testing.T) {
		for _, want := range []string{
			"<h2>Sessions</h2>", "<h2>Webhooks</h2>", "<h2>Sandbox</h2>",
			`id="schema-Message"`, `id="schema-ErrorEnvelope"`,
			"prefers-color-scheme: dark",
			`<span class="badge public">public</span>`, // health
			`<code>queue_if_offline</code>`,            // a request field
			"one of: whatsmeow, sandbox",               // an enum
			"success envelope, <code>data</code>: <a href=\"#schema-Session\">Session</a>",
			"<table>", "<pre><code>", // markdown tables and code blocks
		} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})

	t.Run("SelfContained", func(t *testing.T) {
		if strings.Contains(strings.ToLower(page), "<script") {
			t.Error("page has a script")
		}
		if strings.Contains(page, "@import") || strings.Contains(page, "url(") {
			t.Error("page loads something from CSS")
		}
		spec := string(api.YAML())
		for _, m := range regexp.MustCompile(`(?i)\b(src|href|action)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(page, -1) {
			attr, u := strings.ToLower(m[1]), html.UnescapeString(m[2])
			if attr != "href" {
				t.Errorf("%s=%q: the page must load nothing", attr, u)
				continue
			}
			if strings.HasPrefix(u, "#") || strings.HasPrefix(u, "/api/v1/") {
				continue
			}
			if strings.Contains(u, "//") && !strings.Contains(spec, "("+u+")") {
				t.Errorf("external link %q is not one of the document's own", u)
			}
		}
		ids := map[string]bool{}
		for _, m := range regexp.MustCompile(`id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
			if ids[m[1]] {
				t.Errorf("duplicate id %q", m[1])
			}
			ids[m[1]] = true
		}
		for _, m := range regexp.MustCompile(`href="#([^"]+)"`).FindAllStringSubmatch(page, -1) {
			if !ids[m[1]] {
				t.Errorf("link to #%s, which does not exist", m[1])
			}
		}
	})

	t.Run("Cached", func(t *testing.T) {
		_, again := mustGet(t, h)
		if again != page {
			t.Error("second render differs")
		}
	})
}

func TestRenderEscapes(t *testing.T) {
	spec := `openapi: 3.0.3
info:
  title: "T <script>alert(1)</script>"
  version: "1"
  description: |
    Hi <b>x</b> [bad](javascript:alert(1)) [ok](https://example.com/x)
    ![pixel](https://example.com/p.png) <javascript:alert(2)> [far](//example.com/y)

    ## Part
paths:
  /a:
    get:
      operationId: getA
      summary: "<img src=x>"
      responses:
        '200': {description: ok}
`
	page, err := apidocs.Render([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, bad := range []string{"<script>alert", "<b>x</b>", "javascript:alert(1)", `href="javascript`, "<img", "//example.com/y"} {
		if strings.Contains(s, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	if !strings.Contains(s, `<a href="https://example.com/x">ok</a>`) {
		t.Error("a safe link was not rendered")
	}
	// Headings sit below the page's own <h2> sections; an image is its alt
	// text, since the page loads nothing.
	for _, want := range []string{"<h3>Part</h3>", "pixel", "far"} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestRenderBadDocument(t *testing.T) {
	if _, err := apidocs.Render([]byte("not: [valid")); err == nil {
		t.Error("want an error")
	}
	rec := httptest.NewRecorder()
	apidocs.Handler([]byte("not: [valid")).ServeHTTP(rec, httptest.NewRequest("GET", "/docs", nil))
	if rec.Code != 500 {
		t.Errorf("status %d, want 500", rec.Code)
	}
}
