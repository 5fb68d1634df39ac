package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors of Signer.Verify. A handler answers both the same way (the link is
// no good), without saying which.
var (
	// ErrLinkExpired is returned for a correctly signed link past its expiry.
	ErrLinkExpired = errors.New("media: link expired")
	// ErrLinkInvalid is returned for a link whose signature or expiry is
	// malformed or does not match.
	ErrLinkInvalid = errors.New("media: link invalid")
)

// MinSignerKey is the shortest key NewSigner accepts, in bytes.
const MinSignerKey = 16

// LinkPath is the path of signed media links, before the media id.
const LinkPath = "/api/v1/media/"

// signContext separates these signatures from any other use of the key.
const signContext = "wabsync media link v1\x00"

// Signer makes and checks signed, expiring links to media
// (GET /api/v1/media/{id}?expires=<unix>&sig=<signature>), which need no
// token. It is safe for concurrent use.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer with key, which should be 32 random bytes kept
// by the server. It panics when key is shorter than MinSignerKey bytes: a
// short key would make every link forgeable.
func NewSigner(key []byte) *Signer {
	if len(key) < MinSignerKey {
		panic("media: NewSigner needs a key of at least 16 bytes")
	}
	return &Signer{key: append([]byte(nil), key...)}
}

// Sign returns the signature of a link to id that expires at expires (whole
// seconds): HMAC-SHA256 over id and the expiry in Unix seconds, base64url
// without padding.
func (s *Signer) Sign(id string, expires time.Time) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(id, expires.Unix()))
}

func (s *Signer) mac(id string, expires int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signContext))
	m.Write([]byte(strconv.Itoa(len(id))))
	m.Write([]byte{0})
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(expires, 10)))
	return m.Sum(nil)
}

// URL returns the signed link to id valid for ttl from now: base (such as
// WABSYNC_PUBLIC_URL, "http://host:8080"; a trailing slash is ignored), then
// LinkPath, the escaped id, and the expires and sig query parameters.
func (s *Signer) URL(base, id string, ttl time.Duration, now time.Time) string {
	exp := now.Add(ttl)
	q := url.Values{"expires": {strconv.FormatInt(exp.Unix(), 10)}, "sig": {s.Sign(id, exp)}}
	return strings.TrimRight(base, "/") + LinkPath + url.PathEscape(id) + "?" + q.Encode()
}

// Verify checks the expires and sig parameters of a link to id, as they came
// in the query. It compares signatures in constant time and returns nil,
// ErrLinkInvalid (malformed or wrong) or ErrLinkExpired (right, but now is at
// or past the expiry). The signature is checked before the expiry, so that
// ErrLinkExpired is only ever said of a link this server made.
func (s *Signer) Verify(id, expires, sig string, now time.Time) error {
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || exp <= 0 || strconv.FormatInt(exp, 10) != expires {
		return ErrLinkInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return ErrLinkInvalid
	}
	if !hmac.Equal(got, s.mac(id, exp)) {
		return ErrLinkInvalid
	}
	if now.Unix() >= exp {
		return ErrLinkExpired
	}
	return nil
}
