package media_test

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync/internal/media"
)

func TestSigner(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := media.NewSigner(key)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const id = "msg_01jd8k3m4n5p6q7r8s9t0v1w2x"
	link := s.URL("http://host:8080/", id, time.Hour, now)

	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	exp, sig := u.Query().Get("expires"), u.Query().Get("sig")
	pathID := strings.TrimPrefix(u.Path, media.LinkPath)

	t.Run("URLShape", func(t *testing.T) {
		if u.Scheme != "http" || u.Host != "host:8080" || u.Path != "/api/v1/media/"+id {
			t.Errorf("URL = %s", link)
		}
		if exp != strconv.FormatInt(now.Add(time.Hour).Unix(), 10) {
			t.Errorf("expires = %s", exp)
		}
		if sig != s.Sign(id, now.Add(time.Hour)) || strings.ContainsAny(sig, "+/=") {
			t.Errorf("sig = %q, want base64url of Sign", sig)
		}
	})
	t.Run("Valid", func(t *testing.T) {
		if err := s.Verify(pathID, exp, sig, now); err != nil {
			t.Errorf("Verify = %v", err)
		}
		if err := s.Verify(pathID, exp, sig, now.Add(time.Hour-time.Second)); err != nil {
			t.Errorf("Verify a second before expiry = %v", err)
		}
	})
	t.Run("ValidEscapedID", func(t *testing.T) {
		odd := "a b/c?d"
		u, _ := url.Parse(s.URL("https://x.example", odd, time.Minute, now))
		got, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), media.LinkPath))
		if got != odd {
			t.Fatalf("id from path = %q", got)
		}
		if err := s.Verify(got, u.Query().Get("expires"), u.Query().Get("sig"), now); err != nil {
			t.Errorf("Verify = %v", err)
		}
	})
	invalid := []struct{ name, id, exp, sig string }{
		{"TamperedID", id + "x", exp, sig},
		{"OtherID", "msg_other", exp, sig},
		{"TamperedSig", id, exp, flip(sig)},
		{"TamperedExpires", id, strconv.FormatInt(now.Add(2*time.Hour).Unix(), 10), sig},
		{"EmptySig", id, exp, ""},
		{"ShortSig", id, exp, sig[:20]},
		{"PaddedSig", id, exp, sig + "="},
		{"NotBase64Sig", id, exp, "!!!!"},
		{"EmptyExpires", id, "", sig},
		{"TextExpires", id, "soon", sig},
		{"SignedExpires", id, "+" + exp, sig},
		{"LeadingZeroExpires", id, "0" + exp, sig},
		{"NegativeExpires", id, "-1", sig},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Verify(tc.id, tc.exp, tc.sig, now); !errors.Is(err, media.ErrLinkInvalid) {
				t.Errorf("Verify = %v, want ErrLinkInvalid", err)
			}
		})
	}
	t.Run("OtherKey", func(t *testing.T) {
		other := media.NewSigner([]byte("another key of at least 16 bytes"))
		if err := other.Verify(id, exp, sig, now); !errors.Is(err, media.ErrLinkInvalid) {
			t.Errorf("Verify = %v, want ErrLinkInvalid", err)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		if err := s.Verify(id, exp, sig, now.Add(2*time.Hour)); !errors.Is(err, media.ErrLinkExpired) {
			t.Errorf("Verify = %v, want ErrLinkExpired", err)
		}
	})
	t.Run("ExpiredAtExpiry", func(t *testing.T) {
		if err := s.Verify(id, exp, sig, now.Add(time.Hour)); !errors.Is(err, media.ErrLinkExpired) {
			t.Errorf("Verify = %v, want ErrLinkExpired", err)
		}
	})
	t.Run("ExpiredAndTampered", func(t *testing.T) {
		if err := s.Verify(id, exp, flip(sig), now.Add(2*time.Hour)); !errors.Is(err, media.ErrLinkInvalid) {
			t.Errorf("Verify = %v, want ErrLinkInvalid", err)
		}
	})
	t.Run("KeyCopied", func(t *testing.T) {
		k := append([]byte(nil), key...)
		s2 := media.NewSigner(k)
		k[0] ^= 1
		if err := s2.Verify(id, exp, sig, now); err != nil {
			t.Errorf("Verify after changing the caller's slice = %v", err)
		}
	})
	t.Run("ShortKeyPanics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("NewSigner with a 15-byte key did not panic")
			}
		}()
		media.NewSigner(make([]byte, 15))
	})
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	c := byte('A')
	if s[0] == 'A' {
		c = 'B'
	}
	return string(c) + s[1:]
}
