// Package webhook delivers WabSync's events to webhook endpoints: it signs
// them per the Standard Webhooks specification, and its Dispatcher takes due
// deliveries from the store's queue, POSTs them through an SSRF-guarded
// client, and records every attempt, retrying with exponential backoff.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret; base64 of the key bytes follows.
const SecretPrefix = "whsec_"

// Secret sizes accepted by ValidateSecret, in key bytes.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// DefaultSecretGrace is how long a rotated-out secret keeps signing
// deliveries alongside the new one, so that receivers can roll over.
const DefaultSecretGrace = 24 * time.Hour

// ErrInvalidSecret is returned by ValidateSecret.
var ErrInvalidSecret = errors.New("must be whsec_ followed by the base64 of 24 to 64 bytes")

// NewSecret returns a new signing secret: whsec_ and the base64 of 24
// random bytes.
func NewSecret() string {
	var b [MinSecretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("webhook: no randomness: " + err.Error())
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// ValidateSecret checks a secret a client gave: whsec_ and the standard
// base64 of 24 to 64 bytes.
func ValidateSecret(s string) error {
	if !strings.HasPrefix(s, SecretPrefix) {
		return ErrInvalidSecret
	}
	key, err := base64.StdEncoding.DecodeString(s[len(SecretPrefix):])
	if err != nil || len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return ErrInvalidSecret
	}
	return nil
}

// Sign returns the webhook-signature header value for a message with id
// (the event id), timestamp ts and body, per Standard Webhooks:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the decoded
// bytes of secret. A secret that does not decode signs with its raw bytes.
func Sign(secret, id string, ts time.Time, body []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		key = []byte(secret)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignAll returns the webhook-signature header value signed with every
// secret (the current one, then one in its rotation grace period),
// space-separated: a receiver that knows either verifies it.
func SignAll(secrets []string, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = Sign(s, id, ts, body)
	}
	return strings.Join(sigs, " ")
}
