package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// IdempotentResponse is a stored first response.
type IdempotentResponse struct {
	RequestHash string
	Status      int
	Body        []byte
}

// GetIdempotent returns the stored response for (scope, key) if it is younger
// than IdempotencyTTL.
func (db *DB) GetIdempotent(ctx context.Context, scope, key string) (*IdempotentResponse, error) {
	var r IdempotentResponse
	var body string
	var created int64
	err := db.queryRow(ctx, (`SELECT request_hash, status, response, created_at FROM idempotency_keys WHERE scope = ? AND key = ?`), scope, key).
		Scan(&r.RequestHash, &r.Status, &body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if db.Now().Sub(fromMicros(created)) > IdempotencyTTL {
		return nil, nil
	}
	r.Body = []byte(body)
	return &r, nil
}

// ErrIdempotencyRace is returned by PutIdempotent when another request with
// the same key committed first; the caller reads that one's response.
var ErrIdempotencyRace = errors.New("store: idempotency key taken")

// PutIdempotent stores the response of a request in tx, so that it commits
// with the change the request made. An expired record is replaced.
func (tx *Tx) PutIdempotent(scope, key, requestHash string, status int, body []byte) error {
	now := tx.db.Now()
	res, err := tx.Exec(`INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, status = excluded.status,
		response = excluded.response, created_at = excluded.created_at
		WHERE idempotency_keys.created_at < ?`,
		scope, key, requestHash, status, string(body), micros(now), micros(now.Add(-IdempotencyTTL)))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrIdempotencyRace
	}
	return nil
}

// PruneIdempotency deletes records older than the TTL.
func (db *DB) PruneIdempotency(ctx context.Context) error {
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`DELETE FROM idempotency_keys WHERE created_at < ?`, micros(db.Now().Add(-IdempotencyTTL)))
		return err
	})
}
