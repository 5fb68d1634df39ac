package safehttp_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/safehttp"
)

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	invalid := []struct {
		name, url string
		blocked   bool // also matches ErrBlockedAddress
	}{
		{"Empty", "", false},
		{"FTP", "ftp://8.8.8.8/file", false},
		{"File", "file:///etc/passwd", false},
		{"Gopher", "gopher://8.8.8.8/", false},
		{"NoScheme", "//8.8.8.8/hook", false},
		{"Relative", "example.com/hook", false},
		{"MissingHost", "http://", false},
		{"MissingHostWithPath", "http:///hook", false},
		{"Opaque", "http:8.8.8.8", false},
		{"UserPass", "http://user:pass@8.8.8.8/", false},
		{"UserOnly", "https://user@8.8.8.8/", false},
		{"BadPort", "http://8.8.8.8:99999/", false},
		{"ZeroPort", "http://8.8.8.8:0/", false},
		{"EmptyPort", "http://8.8.8.8:/", false},
		{"Space", "http://8.8.8.8/a b", false},
		{"TooLong", "http://8.8.8.8/" + strings.Repeat("a", safehttp.MaxURLLength), false},
		{"Zone", "http://[fe80::1%25eth0]/", false},
		{"Localhost", "http://localhost/hook", true},
		{"LocalhostPort", "http://localhost:8080/hook", true},
		{"Loopback", "http://127.0.0.1/", true},
		{"LoopbackV6", "http://[::1]:8080/", true},
		{"MappedLoopback", "http://[::ffff:127.0.0.1]/", true},
		{"Metadata", "http://169.254.169.254/latest/meta-data/", true},
		{"Private", "https://10.0.0.5/", true},
		{"ULA", "https://[fd00::1]/", true},
		{"CGNAT", "http://100.64.0.1/", true},
		{"Unspecified", "http://0.0.0.0:8080/", true},
		{"DecimalIP", "http://2130706433/", false}, // not resolvable, or loopback: refused either way
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			err := safehttp.CheckURL(ctx, tc.url, false)
			if err == nil {
				t.Fatalf("CheckURL(%q) = nil, want an error", tc.url)
			}
			if code := wabsync.ErrorCode(err); code != wabsync.EValidation {
				t.Errorf("code = %s, want %s (err %v)", code, wabsync.EValidation, err)
			}
			if msg := wabsync.ErrorMessage(err); msg == "" || strings.Contains(msg, "wabsync") {
				t.Errorf("message = %q, want a short phrase", msg)
			}
			if tc.blocked && !errors.Is(err, safehttp.ErrBlockedAddress) {
				t.Errorf("err = %v, want it to match ErrBlockedAddress", err)
			}
		})
	}

	valid := []string{
		"http://93.184.216.34/hook",
		"https://8.8.8.8:8443/path?q=1#frag",
		"HTTPS://1.1.1.1/",
		"https://[2606:4700:4700::1111]/hook",
	}
	for _, u := range valid {
		t.Run("Valid/"+u, func(t *testing.T) {
			if err := safehttp.CheckURL(ctx, u, false); err != nil {
				t.Errorf("CheckURL(%q) = %v, want nil", u, err)
			}
		})
	}

	t.Run("AllowPrivate", func(t *testing.T) {
		for _, u := range []string{"http://127.0.0.1:8080/hook", "http://localhost/", "http://[::1]/", "http://no-such-host.invalid/"} {
			if err := safehttp.CheckURL(ctx, u, true); err != nil {
				t.Errorf("CheckURL(%q, allowPrivate) = %v, want nil", u, err)
			}
		}
		for _, u := range []string{"ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "http://"} {
			if err := safehttp.CheckURL(ctx, u, true); wabsync.ErrorCode(err) != wabsync.EValidation {
				t.Errorf("CheckURL(%q, allowPrivate) = %v, want a validation error", u, err)
			}
		}
	})

	t.Run("Unresolvable", func(t *testing.T) {
		err := safehttp.CheckURL(ctx, "http://no-such-host.invalid/", false)
		if wabsync.ErrorCode(err) != wabsync.EValidation || errors.Is(err, safehttp.ErrBlockedAddress) {
			t.Errorf("err = %v, want a validation error that is not ErrBlockedAddress", err)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		err := safehttp.CheckURL(ctx, "http://example.com/", false)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestCheckProxyURL(t *testing.T) {
	ctx := context.Background()
	invalid := map[string]string{
		"Empty":     "",
		"FTP":       "ftp://8.8.8.8:21",
		"NoScheme":  "8.8.8.8:3128",
		"NoHost":    "http://",
		"Path":      "http://8.8.8.8:3128/some/path",
		"Query":     "socks5://8.8.8.8:1080?x=1",
		"BadPort":   "http://8.8.8.8:0",
		"Space":     "http://8.8.8.8 :3128",
		"Loopback":  "http://127.0.0.1:3128",
		"Localhost": "socks5://localhost:1080",
		"V6":        "http://[::1]:3128",
		"Private":   "socks5://user:pw@10.1.2.3:1080",
		"Metadata":  "http://169.254.169.254",
	}
	for name, raw := range invalid {
		t.Run(name, func(t *testing.T) {
			err := safehttp.CheckProxyURL(ctx, raw, false)
			if wabsync.ErrorCode(err) != wabsync.EValidation || wabsync.ErrorMessage(err) == "" {
				t.Fatalf("CheckProxyURL(%q) = %v", raw, err)
			}
		})
	}
	for _, raw := range []string{"http://8.8.8.8:3128", "https://8.8.8.8", "socks5://user:pw@8.8.8.8:1080", "http://8.8.8.8:3128/"} {
		if err := safehttp.CheckProxyURL(ctx, raw, false); err != nil {
			t.Errorf("CheckProxyURL(%q) = %v", raw, err)
		}
	}
	if err := safehttp.CheckProxyURL(ctx, "http://127.0.0.1:3128", true); err != nil {
		t.Errorf("loopback with private addresses allowed: %v", err)
	}
	if err := safehttp.CheckProxyURL(ctx, "ftp://127.0.0.1", true); err == nil {
		t.Error("an ftp proxy with private addresses allowed was accepted")
	}
}
