package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"

	"github.com/wabsync/wabsync"
)

// Token prefixes.
const (
	AdminTokenPrefix   = "WBA|"
	SessionTokenPrefix = "WBT|"
)

// HashToken returns the stored form of a token: hex SHA-256.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewAdminToken returns a new random admin token.
func NewAdminToken() string { return AdminTokenPrefix + wabsync.RandomBase62(40) }

// NewSessionToken returns a new random session token.
func NewSessionToken() string { return SessionTokenPrefix + wabsync.RandomBase62(40) }

// EnsureAdminToken makes the admin credential right at start-up. With a
// configured token, it becomes the only admin token. Without one, an admin
// token is generated on first start and returned (to be printed once); later
// starts return "".
func (db *DB) EnsureAdminToken(ctx context.Context, configured string) (generated string, err error) {
	now := micros(db.Now())
	err = db.Update(ctx, func(tx *Tx) error {
		generated = ""
		if configured != "" {
			if _, err := tx.Exec(`DELETE FROM admin_tokens WHERE token_hash <> ?`, HashToken(configured)); err != nil {
				return err
			}
			_, err := tx.Exec(`INSERT INTO admin_tokens (id, token_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (token_hash) DO NOTHING`,
				wabsync.NewID("adm"), HashToken(configured), now)
			return err
		}
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM admin_tokens`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		tok := NewAdminToken()
		if _, err := tx.Exec(`INSERT INTO admin_tokens (id, token_hash, created_at) VALUES (?, ?, ?)`, wabsync.NewID("adm"), HashToken(tok), now); err != nil {
			return err
		}
		generated = tok
		return nil
	})
	return generated, err
}

// Authenticate resolves a token to its principal. Unknown tokens give
// UNAUTHORIZED. The token is looked up by its hash and the stored hash is
// compared in constant time.
func (db *DB) Authenticate(ctx context.Context, token string) (*wabsync.Principal, error) {
	h := HashToken(token)
	var id, stored string
	var err error
	switch {
	case len(token) > len(AdminTokenPrefix) && token[:len(AdminTokenPrefix)] == AdminTokenPrefix:
		err = db.queryRow(ctx, (`SELECT id, token_hash FROM admin_tokens WHERE token_hash = ?`), h).Scan(&id, &stored)
		if err == nil && subtle.ConstantTimeCompare([]byte(stored), []byte(h)) == 1 {
			return &wabsync.Principal{Admin: true, TokenID: id}, nil
		}
	case len(token) > len(SessionTokenPrefix) && token[:len(SessionTokenPrefix)] == SessionTokenPrefix:
		err = db.queryRow(ctx, (`SELECT id, token_hash FROM sessions WHERE token_hash = ?`), h).Scan(&id, &stored)
		if err == nil && subtle.ConstantTimeCompare([]byte(stored), []byte(h)) == 1 {
			return &wabsync.Principal{SessionID: id, TokenID: id}, nil
		}
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	return nil, wabsync.Errorf(wabsync.EUnauthorized, "The token is missing, malformed, unknown or revoked.")
}
