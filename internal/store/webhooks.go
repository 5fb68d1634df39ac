package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/wabsync/wabsync"
)

// Webhooks are stored with their signing secret in clear: it has to be
// usable to sign every delivery. It is returned by CreateWebhook and
// RotateWebhookSecret only (in the Webhook they fill in); every read leaves
// it out. A rotation keeps the previous secret in old_secret until
// old_secret_until, and deliveries are signed with both meanwhile.

const webhookCols = `id, session_id, url, events, enabled, description, disabled_reason, created_at, updated_at`

func scanWebhook(r rowScanner) (*wabsync.Webhook, error) {
	var w wabsync.Webhook
	var sessionID sql.NullString
	var events string
	var enabled int
	var created, updated int64
	if err := r.Scan(&w.ID, &sessionID, &w.URL, &events, &enabled, &w.Description, &w.DisabledReason, &created, &updated); err != nil {
		return nil, err
	}
	if sessionID.Valid {
		s := sessionID.String
		w.SessionID = &s
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, err
	}
	if w.Events == nil {
		w.Events = []string{}
	}
	w.Enabled = enabled == 1
	w.CreatedAt, w.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &w, nil
}

// sameScope reports whether a webhook of session a (nil: global) is
// addressed through scope b (nil: the global routes).
func sameScope(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

var errWebhookNotFound = wabsync.NotFound("Webhook")

// CreateWebhook stores w, which must carry its Secret, and fills in its id
// and times. The session, when w.SessionID is set, must exist. rem, when
// set, is remembered in the same transaction.
func (db *DB) CreateWebhook(ctx context.Context, w *wabsync.Webhook, rem *Remember) error {
	if w.Secret == "" {
		return errors.New("store: webhook without a secret")
	}
	if w.Events == nil {
		w.Events = []string{}
	}
	events, err := json.Marshal(w.Events)
	if err != nil {
		return err
	}
	now := db.Now()
	w.ID = wabsync.NewID("whk")
	w.CreatedAt, w.UpdatedAt = now, now
	return db.Update(ctx, func(tx *Tx) error {
		if w.SessionID != nil {
			var one int
			err := tx.QueryRow(`SELECT 1 FROM sessions WHERE id = ?`, *w.SessionID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return wabsync.NotFound("Session")
			}
			if err != nil {
				return err
			}
		}
		_, err := tx.Exec(`INSERT INTO webhooks (id, session_id, url, events, enabled, description, disabled_reason, secret, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.SessionID, w.URL, string(events), b2i(w.Enabled), w.Description, w.DisabledReason, w.Secret, micros(now), micros(now))
		if err != nil {
			return err
		}
		return tx.remember(rem, w)
	})
}

// GetWebhook returns the webhook id in scope (a session id, or nil for the
// global webhooks), without its secret. A webhook of another scope is
// NOT_FOUND.
func (db *DB) GetWebhook(ctx context.Context, scope *string, id string) (*wabsync.Webhook, error) {
	w, err := scanWebhook(db.queryRow(ctx, (`SELECT ` + webhookCols + ` FROM webhooks WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameScope(w.SessionID, scope)) {
		return nil, errWebhookNotFound
	}
	return w, err
}

func (tx *Tx) getWebhook(scope *string, id string) (*wabsync.Webhook, error) {
	w, err := scanWebhook(tx.QueryRow(`SELECT `+webhookCols+` FROM webhooks WHERE id = ?`+tx.db.forUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !sameScope(w.SessionID, scope)) {
		return nil, errWebhookNotFound
	}
	return w, err
}

// ListWebhooks returns one page of the webhooks of a session (scope), or of
// the global ones (nil scope), by id.
func (db *DB) ListWebhooks(ctx context.Context, scope *string, p wabsync.Page) (wabsync.List[*wabsync.Webhook], error) {
	q := `SELECT ` + webhookCols + ` FROM webhooks WHERE `
	var args []any
	if scope != nil {
		q += `session_id = ?`
		args = append(args, *scope)
	} else {
		q += `session_id IS NULL`
	}
	if p.After != "" {
		q += ` AND id > ?`
		args = append(args, p.After)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, p.Limit+1)
	rows, err := db.query(ctx, (q), args...)
	if err != nil {
		return wabsync.List[*wabsync.Webhook]{}, err
	}
	defer rows.Close()
	items := []*wabsync.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return wabsync.List[*wabsync.Webhook]{}, err
		}
		items = append(items, w)
	}
	if err := rows.Err(); err != nil {
		return wabsync.List[*wabsync.Webhook]{}, err
	}
	return pageOf(items, p.Limit, func(w *wabsync.Webhook) string { return w.ID }), nil
}

// WebhookPatch is a partial update of a webhook: nil fields stay as they are.
type WebhookPatch struct {
	URL         *string
	Events      []string
	Enabled     *bool
	Description *string
}

// UpdateWebhook applies patch to the webhook id in scope and returns it.
// Disabling pauses its pending deliveries (they wait, with no next attempt
// time); enabling clears disabled_reason and the failure record and makes
// every paused delivery due at once, and so does a new URL of an enabled
// webhook (a new endpoint: its deliveries are not left waiting for the
// retries or the probes of the old one). Any change moves updated_at, which
// ends the hold a dispatcher's open circuit keeps on the webhook, on every
// node (see store.Hold).
func (db *DB) UpdateWebhook(ctx context.Context, scope *string, id string, patch WebhookPatch) (*wabsync.Webhook, error) {
	var out *wabsync.Webhook
	err := db.Update(ctx, func(tx *Tx) error {
		w, err := tx.getWebhook(scope, id)
		if err != nil {
			return err
		}
		now := tx.db.Now()
		wasEnabled, oldURL := w.Enabled, w.URL
		if patch.URL != nil {
			w.URL = *patch.URL
		}
		if patch.Events != nil {
			w.Events = patch.Events
		}
		if patch.Description != nil {
			w.Description = *patch.Description
		}
		if patch.Enabled != nil {
			w.Enabled = *patch.Enabled
		}
		events, err := json.Marshal(w.Events)
		if err != nil {
			return err
		}
		failing := ""
		switch {
		case w.Enabled && (!wasEnabled || patch.URL != nil && *patch.URL != oldURL):
			w.DisabledReason = ""
			failing = `, failing_since = 0`
			if _, err := tx.Exec(`UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE webhook_id = ? AND status = 'pending'`,
				micros(now), micros(now), id); err != nil {
				return err
			}
			tx.dueDeliveries()
		case !w.Enabled && wasEnabled:
			w.DisabledReason = "" // disabled_reason explains automatic disabling only
			if err := tx.pauseDeliveries(id, now); err != nil {
				return err
			}
		}
		w.UpdatedAt = now
		if _, err := tx.Exec(`UPDATE webhooks SET url = ?, events = ?, enabled = ?, description = ?, disabled_reason = ?, updated_at = ?`+failing+` WHERE id = ?`,
			w.URL, string(events), b2i(w.Enabled), w.Description, w.DisabledReason, micros(now), id); err != nil {
			return err
		}
		out = w
		return nil
	})
	return out, err
}

// pauseDeliveries takes the pending deliveries of a disabled webhook out of
// the queue until it is enabled again.
func (tx *Tx) pauseDeliveries(webhookID string, now time.Time) error {
	_, err := tx.Exec(`UPDATE deliveries SET next_attempt_at = NULL, updated_at = ? WHERE webhook_id = ? AND status = 'pending'`,
		micros(now), webhookID)
	return err
}

// DeleteWebhook deletes the webhook id in scope and its deliveries.
func (db *DB) DeleteWebhook(ctx context.Context, scope *string, id string) error {
	return db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.getWebhook(scope, id); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM deliveries WHERE webhook_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.Exec(`DELETE FROM webhooks WHERE id = ?`, id)
		return err
	})
}

// RotateWebhookSecret makes secret the signing secret of the webhook id in
// scope. The previous one keeps signing alongside it for grace, so that
// receivers can roll over. The returned webhook carries the new secret.
// rem, when set, is remembered in the same transaction.
func (db *DB) RotateWebhookSecret(ctx context.Context, scope *string, id, secret string, grace time.Duration, rem *Remember) (*wabsync.Webhook, error) {
	if secret == "" {
		return nil, errors.New("store: empty webhook secret")
	}
	var out *wabsync.Webhook
	err := db.Update(ctx, func(tx *Tx) error {
		w, err := tx.getWebhook(scope, id)
		if err != nil {
			return err
		}
		now := tx.db.Now()
		var until int64
		if grace > 0 {
			until = micros(now.Add(grace))
		}
		if _, err := tx.Exec(`UPDATE webhooks SET old_secret = secret, old_secret_until = ?, secret = ?, updated_at = ? WHERE id = ?`,
			until, secret, micros(now), id); err != nil {
			return err
		}
		w.Secret, w.UpdatedAt = secret, now
		out = w
		return tx.remember(rem, w)
	})
	return out, err
}

// WebhookSecrets returns the secrets that sign deliveries of webhook id at
// now: the current one, then the previous one while its grace period lasts.
func (db *DB) WebhookSecrets(ctx context.Context, id string, now time.Time) ([]string, error) {
	var cur, old string
	var until int64
	err := db.queryRow(ctx, (`SELECT secret, old_secret, old_secret_until FROM webhooks WHERE id = ?`), id).Scan(&cur, &old, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errWebhookNotFound
	}
	if err != nil {
		return nil, err
	}
	return secretsAt(cur, old, until, now), nil
}

func secretsAt(cur, old string, oldUntil int64, now time.Time) []string {
	if old != "" && oldUntil > micros(now) {
		return []string{cur, old}
	}
	return []string{cur}
}
