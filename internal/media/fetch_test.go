package media_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/media"
	"github.com/wabsync/wabsync/internal/safehttp"
)

// MustServer starts a 127.0.0.1 server that counts its requests.
func MustServer(tb testing.TB, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	tb.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	tb.Cleanup(srv.Close)
	return srv, &n
}

// MustFetcher returns a fetcher with a maxBytes cap into a fresh store, whose
// client may reach loopback servers, and the store's dir.
func MustFetcher(tb testing.TB, maxBytes int64, timeout time.Duration) (*media.Fetcher, *media.Store, string) {
	tb.Helper()
	s, dir := MustStore(tb)
	c := safehttp.NewClient(safehttp.Options{AllowPrivate: true, Timeout: timeout, MaxRedirects: media.FetchMaxRedirects})
	return media.NewFetcher(s, c, maxBytes), s, dir
}

// urlError checks that err is a VALIDATION_ERROR naming the url field.
func urlError(tb testing.TB, err error) string {
	tb.Helper()
	var we *wabsync.Error
	if !errors.As(err, &we) || we.Code != wabsync.EValidation || we.Details["url"] == "" {
		tb.Fatalf("err = %v, want a VALIDATION_ERROR naming url", err)
	}
	return we.Details["url"]
}

func TestFetcher(t *testing.T) {
	png := pngBytes(t)
	t.Run("OK", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "Image/PNG")
			w.Header().Set("Content-Disposition", `attachment; filename="holiday photo.png"`)
			w.Write(png)
		})
		f, s, _ := MustFetcher(t, 1<<20, 5*time.Second)
		b, name, ctype, err := f.Fetch(t.Context(), srv.URL+"/download?id=1")
		if err != nil {
			t.Fatal(err)
		}
		if b.SHA256 != sha(png) || b.Size != int64(len(png)) || b.MimeType != "image/png" {
			t.Errorf("blob = %+v", b)
		}
		if name != "holiday photo.png" || ctype != "image/png" {
			t.Errorf("name, ctype = %q, %q", name, ctype)
		}
		rc, err := s.Open(b.Key)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if got, _ := io.ReadAll(rc); string(got) != string(png) {
			t.Error("stored bytes differ")
		}
	})
	t.Run("FilenameFromURLPath", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			io.WriteString(w, "%PDF-1.4\n")
		})
		f, _, _ := MustFetcher(t, 1<<20, 5*time.Second)
		b, name, ctype, err := f.Fetch(t.Context(), srv.URL+"/files/Q3%20report.pdf?token=x")
		if err != nil {
			t.Fatal(err)
		}
		if name != "Q3 report.pdf" || b.MimeType != "application/pdf" || ctype != "application/octet-stream" {
			t.Errorf("name, mime, ctype = %q, %q, %q", name, b.MimeType, ctype)
		}
	})
	t.Run("FilenameAfterRedirect", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/short" {
				http.Redirect(w, r, "/real/name.txt", http.StatusFound)
				return
			}
			io.WriteString(w, "text")
		})
		f, _, _ := MustFetcher(t, 1<<20, 5*time.Second)
		if _, name, _, err := f.Fetch(t.Context(), srv.URL+"/short"); err != nil || name != "name.txt" {
			t.Errorf("name, err = %q, %v; want name.txt", name, err)
		}
	})
	t.Run("FilenameEncodedAndSanitised", func(t *testing.T) {
		for _, tc := range []struct{ header, want string }{
			{`attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt`, "naïve résumé.txt"},
			{`attachment; filename="../../etc/passwd"`, "passwd"},
			{`attachment; filename="C:\\Windows\\evil.txt"`, "evil.txt"},
			{`attachment; filename=".."`, "file.bin"},
		} {
			srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Disposition", tc.header)
				io.WriteString(w, "x")
			})
			f, _, _ := MustFetcher(t, 1<<20, 5*time.Second)
			if _, name, _, err := f.Fetch(t.Context(), srv.URL+"/file.bin"); err != nil || name != tc.want {
				t.Errorf("%s: name, err = %q, %v; want %q", tc.header, name, err, tc.want)
			}
		}
	})
	t.Run("ErrTooLargeByContentLength", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(1<<20+1))
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			// Send no more: a fetcher that read the body would hang here.
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		f, _, dir := MustFetcher(t, 1<<20, 30*time.Second)
		start := time.Now()
		_, _, _, err := f.Fetch(t.Context(), srv.URL)
		if !errors.Is(err, media.ErrTooLarge) || wabsync.ErrorCode(err) != wabsync.EPayloadTooLarge {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v: the body was read", d)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("ErrTooLargeStreaming", func(t *testing.T) {
		var sent atomic.Int64
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 16<<10)
			for sent.Load() < 64<<20 { // far more than the cap, in chunks, no Content-Length
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				sent.Add(int64(len(chunk)))
			}
		})
		f, _, dir := MustFetcher(t, 1<<20, 30*time.Second)
		_, _, _, err := f.Fetch(t.Context(), srv.URL)
		if !errors.Is(err, media.ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
		if n := sent.Load(); n >= 64<<20 {
			t.Errorf("the server could send all %d bytes", n)
		}
	})
	t.Run("PrivateRefused", func(t *testing.T) {
		srv, hits := MustServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(png) })
		s, dir := MustStore(t)
		f := media.NewFetcher(s, safehttp.NewClient(safehttp.Options{Timeout: 5 * time.Second, MaxRedirects: media.FetchMaxRedirects}), 1<<20)
		for _, u := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
			_, _, _, err := f.Fetch(t.Context(), u)
			if !errors.Is(err, safehttp.ErrBlockedAddress) {
				t.Errorf("%s: err = %v, want ErrBlockedAddress", u, err)
			}
			urlError(t, err)
		}
		if hits.Load() != 0 {
			t.Errorf("server reached %d times", hits.Load())
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files: %v", fs)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/midbody" {
				w.Write(make([]byte, 10_000))
				w.(http.Flusher).Flush()
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		f, _, dir := MustFetcher(t, 1<<20, 300*time.Millisecond)
		for _, p := range []string{"/headers", "/midbody"} {
			start := time.Now()
			_, _, _, err := f.Fetch(t.Context(), srv.URL+p)
			if msg := urlError(t, err); !strings.Contains(msg, "timed out") {
				t.Errorf("%s: message = %q, want a timeout", p, msg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s: took %v", p, d)
			}
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		srv, _ := MustServer(t, http.NotFound)
		f, _, _ := MustFetcher(t, 1<<20, 5*time.Second)
		_, _, _, err := f.Fetch(t.Context(), srv.URL)
		if msg := urlError(t, err); !strings.Contains(msg, "404") {
			t.Errorf("message = %q, want the status", msg)
		}
	})
	t.Run("TooManyRedirects", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			if n > 0 {
				http.Redirect(w, r, "/?n="+strconv.Itoa(n-1), http.StatusFound)
				return
			}
			io.WriteString(w, "done")
		})
		f, _, _ := MustFetcher(t, 1<<20, 5*time.Second)
		if _, _, _, err := f.Fetch(t.Context(), srv.URL+"/?n=3"); err != nil {
			t.Errorf("3 redirects: %v", err)
		}
		_, _, _, err := f.Fetch(t.Context(), srv.URL+"/?n=4")
		urlError(t, err)
		if !errors.Is(err, safehttp.ErrTooManyRedirects) {
			t.Errorf("err = %v, want ErrTooManyRedirects", err)
		}
	})
	t.Run("BadURL", func(t *testing.T) {
		f, _, _ := MustFetcher(t, 1<<20, 5*time.Second)
		for _, u := range []string{"ftp://127.0.0.1/x", "file:///etc/passwd", "/relative", "http://", "http://u:p@127.0.0.1/", "http://[::1"} {
			_, _, _, err := f.Fetch(t.Context(), u)
			urlError(t, err)
		}
	})
	t.Run("StoreFailureIsInternal", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(png) })
		f, _, dir := MustFetcher(t, 1<<20, 5*time.Second)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := f.Fetch(t.Context(), srv.URL)
		if err == nil || wabsync.ErrorCode(err) != wabsync.EInternal {
			t.Errorf("err = %v, want an internal error, not the user's fault", err)
		}
	})
	t.Run("ContextCancelled", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		f, _, _ := MustFetcher(t, 1<<20, 5*time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, _, _, err := f.Fetch(ctx, srv.URL)
		if !errors.Is(err, context.DeadlineExceeded) || wabsync.ErrorCode(err) != wabsync.EInternal {
			t.Errorf("err = %v, want the context's error, not a validation error", err)
		}
	})
}

func TestSanitizeFilename(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"Plain", "photo.jpg", "photo.jpg"},
		{"Unicode", "résumé 2026.pdf", "résumé 2026.pdf"},
		{"UnixPath", "../../etc/passwd", "passwd"},
		{"WindowsPath", `C:\Users\x\evil.exe`, "evil.exe"},
		{"Dots", "..", ""},
		{"Dot", ".", ""},
		{"Empty", "", ""},
		{"TrailingSlash", "dir/", ""},
		{"Control", "a\x00b\nc\x7f.txt", "abc.txt"},
		{"BidiOverride", "invoice\u202egpj.exe", "invoicegpj.exe"},
		{"WindowsReserved", `a<b>c:d"e|f?g*h.txt`, "abcdefgh.txt"},
		{"InvalidUTF8", "a\xffb.txt", "ab.txt"},
		{"TrimSpacesDots", "  .hidden name.  ", "hidden name"},
		{"LongKeepsExtension", strings.Repeat("x", 300) + ".pdf", strings.Repeat("x", 196) + ".pdf"},
		{"LongMultibyte", strings.Repeat("é", 150) + ".txt", strings.Repeat("é", 98) + ".txt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := media.SanitizeFilename(tc.in)
			if got != tc.want {
				t.Errorf("SanitizeFilename(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if len(got) > 200 {
				t.Errorf("len = %d", len(got))
			}
		})
	}
}
