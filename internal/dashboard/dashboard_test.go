package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wabsync/wabsync/internal/dashboard"
)

func get(t *testing.T, h http.Handler, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestHandler(t *testing.T) {
	h := dashboard.Handler()
	t.Run("EveryLinkedAssetIsServed", func(t *testing.T) {
		page := get(t, h, "/")
		if page.Code != 200 || page.Header().Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("GET /: %d %q", page.Code, page.Header().Get("Content-Type"))
		}
		links := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1)
		if len(links) < 3 {
			t.Fatalf("the page links %d assets", len(links))
		}
		for _, l := range links {
			if w := get(t, h, l[1]); w.Code != 200 || w.Body.Len() == 0 {
				t.Errorf("%s: %d", l[1], w.Code)
			}
		}
		// Modules imported by the scripts are served too.
		app := get(t, h, "/assets/app.js").Body.String()
		for _, m := range regexp.MustCompile(`from '\./([^']+)'`).FindAllStringSubmatch(app, -1) {
			if w := get(t, h, "/assets/"+m[1]); w.Code != 200 {
				t.Errorf("module %s: %d", m[1], w.Code)
			}
		}
	})
	t.Run("NoInlineCode", func(t *testing.T) {
		page := get(t, h, "/").Body.String()
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|\son[a-z]+="|style="`).MatchString(page) {
			t.Error("the page has inline script, style or event handlers, which the Content-Security-Policy refuses")
		}
	})
	t.Run("SecurityHeaders", func(t *testing.T) {
		for _, path := range []string{"/", "/assets/app.css", "/assets/nope"} {
			w := get(t, h, path)
			if got := w.Header().Get("Content-Security-Policy"); got != dashboard.ContentSecurityPolicy {
				t.Errorf("%s: Content-Security-Policy %q", path, got)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("%s: headers %v", path, w.Header())
			}
		}
	})
	t.Run("ConditionalGet", func(t *testing.T) {
		etag := get(t, h, "/").Header().Get("ETag")
		if w := get(t, h, "/", "If-None-Match", `"other", `+etag); w.Code != 304 || w.Body.Len() != 0 {
			t.Errorf("matching ETag: %d", w.Code)
		}
		if w := get(t, h, "/", "If-None-Match", `"other"`); w.Code != 200 {
			t.Errorf("other ETag: %d", w.Code)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, path := range []string{"/assets/nope.js", "/assets/", "/assets/index.html", "/other"} {
			w := get(t, h, path)
			if w.Code != 404 || !strings.Contains(w.Body.String(), `"code":"NOT_FOUND"`) {
				t.Errorf("%s: %d %s", path, w.Code, w.Body)
			}
		}
	})
}
