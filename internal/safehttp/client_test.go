package safehttp_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

func port(tb testing.TB, srv *httptest.Server) uint16 {
	tb.Helper()
	u, _ := url.Parse(srv.URL)
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		tb.Fatal(err)
	}
	return uint16(p)
}

// blockPorts is an address check that treats loopback servers on the given
// ports as private and every other address as public.
func blockPorts(ports ...uint16) func(netip.AddrPort) bool {
	return func(ap netip.AddrPort) bool {
		for _, p := range ports {
			if ap.Port() == p {
				return true
			}
		}
		return false
	}
}

func get(c *http.Client, u string) (int, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

func TestClient(t *testing.T) {
	t.Run("LoopbackRefused", func(t *testing.T) {
		srv, hits := MustServer(t, ok)
		c := safehttp.NewClient(safehttp.Options{Timeout: 5 * time.Second})
		_, err := get(c, srv.URL)
		if !errors.Is(err, safehttp.ErrBlockedAddress) {
			t.Fatalf("err = %v, want ErrBlockedAddress", err)
		}
		if hits.Load() != 0 {
			t.Errorf("server was reached %d times", hits.Load())
		}
	})
	t.Run("LocalhostNameRefused", func(t *testing.T) {
		srv, hits := MustServer(t, ok)
		c := safehttp.NewClient(safehttp.Options{Timeout: 5 * time.Second})
		_, err := get(c, "http://localhost:"+strconv.Itoa(int(port(t, srv)))+"/")
		if !errors.Is(err, safehttp.ErrBlockedAddress) {
			t.Fatalf("err = %v, want ErrBlockedAddress", err)
		}
		if hits.Load() != 0 {
			t.Errorf("server was reached %d times", hits.Load())
		}
	})
	t.Run("MetadataAddressRefused", func(t *testing.T) {
		c := safehttp.NewClient(safehttp.Options{Timeout: 5 * time.Second})
		_, err := get(c, "http://169.254.169.254/latest/meta-data/")
		if !errors.Is(err, safehttp.ErrBlockedAddress) {
			t.Fatalf("err = %v, want ErrBlockedAddress", err)
		}
	})
	t.Run("AllowPrivate", func(t *testing.T) {
		srv, hits := MustServer(t, ok)
		c := safehttp.NewClient(safehttp.Options{AllowPrivate: true, Timeout: 5 * time.Second})
		code, err := get(c, srv.URL)
		if err != nil || code != 200 {
			t.Fatalf("code, err = %d, %v; want 200", code, err)
		}
		if hits.Load() != 1 {
			t.Errorf("hits = %d, want 1", hits.Load())
		}
	})
	t.Run("PublicAllowedByCheck", func(t *testing.T) {
		srv, _ := MustServer(t, ok)
		c := safehttp.NewClientWithCheck(safehttp.Options{Timeout: 5 * time.Second}, blockPorts())
		if code, err := get(c, srv.URL); err != nil || code != 200 {
			t.Fatalf("code, err = %d, %v; want 200", code, err)
		}
	})
	t.Run("RedirectToBlockedRefused", func(t *testing.T) {
		private, privateHits := MustServer(t, ok)
		public, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, private.URL+"/secret", http.StatusFound)
		})
		c := safehttp.NewClientWithCheck(safehttp.Options{Timeout: 5 * time.Second, MaxRedirects: 3},
			blockPorts(port(t, private)))
		_, err := get(c, public.URL)
		if !errors.Is(err, safehttp.ErrBlockedAddress) {
			t.Fatalf("err = %v, want ErrBlockedAddress", err)
		}
		if privateHits.Load() != 0 {
			t.Errorf("private server was reached %d times", privateHits.Load())
		}
	})
	t.Run("RedirectToLocalhostNameRefused", func(t *testing.T) {
		// Through the real check: the redirect target's name resolves to loopback.
		target, hits := MustServer(t, ok)
		public, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://localhost:"+strconv.Itoa(int(port(t, target)))+"/", http.StatusFound)
		})
		c := safehttp.NewClientWithCheck(safehttp.Options{Timeout: 5 * time.Second, MaxRedirects: 3},
			func(ap netip.AddrPort) bool { return ap.Port() != port(t, public) && safehttp.IsBlocked(ap.Addr()) })
		_, err := get(c, public.URL)
		if !errors.Is(err, safehttp.ErrBlockedAddress) {
			t.Fatalf("err = %v, want ErrBlockedAddress", err)
		}
		if hits.Load() != 0 {
			t.Errorf("target was reached %d times", hits.Load())
		}
	})
	t.Run("RedirectsFollowedUpToMax", func(t *testing.T) {
		srv, hits := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			if n > 0 {
				http.Redirect(w, r, "/?n="+strconv.Itoa(n-1), http.StatusFound)
				return
			}
			io.WriteString(w, "done")
		})
		c := safehttp.NewClient(safehttp.Options{AllowPrivate: true, Timeout: 5 * time.Second, MaxRedirects: 3})
		if code, err := get(c, srv.URL+"/?n=3"); err != nil || code != 200 {
			t.Fatalf("3 redirects: code, err = %d, %v; want 200", code, err)
		}
		hits.Store(0)
		_, err := get(c, srv.URL+"/?n=4")
		if !errors.Is(err, safehttp.ErrTooManyRedirects) {
			t.Fatalf("4 redirects: err = %v, want ErrTooManyRedirects", err)
		}
		if hits.Load() != 4 {
			t.Errorf("hits = %d, want 4 (the fifth request is never made)", hits.Load())
		}
	})
	t.Run("NoRedirectsReturns3xx", func(t *testing.T) {
		target, targetHits := MustServer(t, ok)
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusFound)
		})
		c := safehttp.NewClient(safehttp.Options{AllowPrivate: true, Timeout: 5 * time.Second})
		code, err := get(c, srv.URL)
		if err != nil || code != http.StatusFound {
			t.Fatalf("code, err = %d, %v; want 302", code, err)
		}
		if targetHits.Load() != 0 {
			t.Errorf("redirect was followed")
		}
	})
	t.Run("RedirectWithCredentialsRefused", func(t *testing.T) {
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				u, _ := url.Parse("http://" + r.Host + "/next")
				u.User = url.UserPassword("u", "p")
				http.Redirect(w, r, u.String(), http.StatusFound)
				return
			}
			io.WriteString(w, "next")
		})
		c := safehttp.NewClient(safehttp.Options{AllowPrivate: true, Timeout: 5 * time.Second, MaxRedirects: 3})
		if _, err := get(c, srv.URL+"/"); err == nil || !strings.Contains(err.Error(), "credentials") {
			t.Fatalf("err = %v, want the redirect refused for its credentials", err)
		}
	})
	t.Run("NoProxyFromEnvironment", func(t *testing.T) {
		proxy, proxyHits := MustServer(t, ok)
		t.Setenv("HTTP_PROXY", proxy.URL)
		t.Setenv("HTTPS_PROXY", proxy.URL)
		t.Setenv("NO_PROXY", "")
		c := safehttp.NewClient(safehttp.Options{AllowPrivate: true})
		tr, isTransport := c.Transport.(*http.Transport)
		if !isTransport || tr.Proxy != nil {
			t.Fatal("the transport has a Proxy function")
		}
		// 192.0.2.1 is unroutable: the request must fail on its own, not
		// reach the proxy.
		c.Timeout = 300 * time.Millisecond
		_, _ = get(c, "http://192.0.2.1/")
		if proxyHits.Load() != 0 {
			t.Error("the request went through the proxy")
		}
	})
	t.Run("KeepAlive", func(t *testing.T) {
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		c := safehttp.NewClientWithCheck(safehttp.Options{Timeout: 5 * time.Second, MaxConnsPerHost: 4}, blockPorts())
		for range 5 {
			if code, err := get(c, srv.URL); err != nil || code != 200 {
				t.Fatalf("code, err = %d, %v", code, err)
			}
		}
		if conns.Load() != 1 {
			t.Errorf("connections = %d, want 1", conns.Load())
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		srv, _ := MustServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			select { // stall mid-body
			case <-release:
			case <-r.Context().Done():
			}
		})
		c := safehttp.NewClient(safehttp.Options{AllowPrivate: true, Timeout: 200 * time.Millisecond})
		start := time.Now()
		_, err := get(c, srv.URL)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
	})
}
