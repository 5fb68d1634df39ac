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

// SendScope and WebhooksScope name the Idempotency-Key scopes of a
// session's sends and of the webhooks of owner (a session id, or "global"),
// so that deleting a session can delete its records.
func SendScope(sessionID string) string { return "send:" + sessionID }

// WebhooksScope: see SendScope.
func WebhooksScope(owner string) string { return "webhooks:" + owner }

// deleteIdempotencyOf deletes the records of a session's scopes in tx.
func (tx *Tx) deleteIdempotencyOf(sessionID string) error {
	_, err := tx.Exec(`DELETE FROM idempotency_keys WHERE scope IN (?, ?)`, SendScope(sessionID), WebhooksScope(sessionID))
	return err
}

// pruneBatch bounds the rows one pruning transaction deletes, so that a
// backlog never makes one long write (SQLite's writer is serial): measured
// (BenchmarkPruneIdempotency, 1 KiB responses), 1,000 rows held SQLite's
// writer about 22 ms, 250 rows about 7 ms.
const pruneBatch = 250

// PruneIdempotency deletes records older than the TTL, in transactions of
// at most pruneBatch rows, and returns how many it deleted. Nodes sharing a
// database may run it at the same time: each deletes what is still there
// and no other node is deleting.
func (db *DB) PruneIdempotency(ctx context.Context) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.Update(ctx, func(tx *Tx) error {
			// Rows another node is deleting are skipped, not waited for.
			res, err := tx.Exec(`DELETE FROM idempotency_keys WHERE (scope, key) IN
				(SELECT scope, key FROM idempotency_keys WHERE created_at < ? LIMIT ?`+db.skipLocked()+`)`,
				micros(db.Now().Add(-IdempotencyTTL)), pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// PruneEvery runs PruneIdempotency at once and then every interval until
// ctx ends. A failure is logged and retried at the next tick.
func (db *DB) PruneEvery(ctx context.Context, every time.Duration) {
	ctx = Background(ctx) // requests' changes go first
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := db.PruneIdempotency(ctx); err != nil && ctx.Err() == nil {
			db.logger.Warn("pruning idempotency records", "err", err)
		} else if n > 0 {
			db.logger.Debug("pruned idempotency records", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
