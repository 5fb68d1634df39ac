package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/wabsync/wabsync"
)

const sessionCols = `id, name, engine, status, status_reason, phone, push_name, device_jid, config, metadata, desired, created_at, updated_at, connected_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanSession(r rowScanner) (*wabsync.Session, error) {
	var s wabsync.Session
	var status, config, metadata string
	var desired int
	var created, updated int64
	var connected sql.NullInt64
	if err := r.Scan(&s.ID, &s.Name, &s.Engine, &status, &s.StatusReason, &s.Phone, &s.PushName, &s.DeviceJID,
		&config, &metadata, &desired, &created, &updated, &connected); err != nil {
		return nil, err
	}
	s.Status = wabsync.SessionStatus(status)
	s.Desired = desired == 1
	s.CreatedAt, s.UpdatedAt = fromMicros(created), fromMicros(updated)
	if connected.Valid {
		t := fromMicros(connected.Int64)
		s.ConnectedAt = &t
	}
	if err := json.Unmarshal([]byte(config), &s.Config); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(metadata), &s.Metadata); err != nil {
		return nil, err
	}
	if s.Metadata == nil {
		s.Metadata = map[string]any{}
	}
	return &s, nil
}

// CreateSession stores a new session with the hash of its token.
func (db *DB) CreateSession(ctx context.Context, s *wabsync.Session, tokenHash string) error {
	now := db.Now()
	s.CreatedAt, s.UpdatedAt = now, now
	if s.Metadata == nil {
		s.Metadata = map[string]any{}
	}
	cfg, _ := json.Marshal(s.Config)
	md, err := json.Marshal(s.Metadata)
	if err != nil {
		return err
	}
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`INSERT INTO sessions (id, name, engine, status, status_reason, config, metadata, token_hash, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.Name, s.Engine, string(s.Status), s.StatusReason, string(cfg), string(md), tokenHash, micros(now), micros(now))
		return err
	})
}

// GetSession returns one session, or NOT_FOUND.
func (db *DB) GetSession(ctx context.Context, id string) (*wabsync.Session, error) {
	s, err := scanSession(db.queryRow(ctx, (`SELECT ` + sessionCols + ` FROM sessions WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wabsync.NotFound("Session")
	}
	return s, err
}

func (tx *Tx) getSession(id string) (*wabsync.Session, error) {
	s, err := scanSession(tx.QueryRow(`SELECT `+sessionCols+` FROM sessions WHERE id = ?`+tx.db.forUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wabsync.NotFound("Session")
	}
	return s, err
}

// ListSessions returns a page of sessions, oldest first.
func (db *DB) ListSessions(ctx context.Context, f wabsync.SessionFilter) (wabsync.List[*wabsync.Session], error) {
	var where []string
	var args []any
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if f.Page.After != "" {
		where = append(where, "id > ?")
		args = append(args, f.Page.After)
	}
	q := `SELECT ` + sessionCols + ` FROM sessions`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id LIMIT ?"
	args = append(args, f.Page.Limit+1)
	rows, err := db.query(ctx, (q), args...)
	if err != nil {
		return wabsync.List[*wabsync.Session]{}, err
	}
	defer rows.Close()
	items := []*wabsync.Session{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return wabsync.List[*wabsync.Session]{}, err
		}
		items = append(items, s)
	}
	if err := rows.Err(); err != nil {
		return wabsync.List[*wabsync.Session]{}, err
	}
	return pageOf(items, f.Page.Limit, func(s *wabsync.Session) string { return s.ID }), nil
}

func pageOf[T any](items []T, limit int, key func(T) string) wabsync.List[T] {
	l := wabsync.List[T]{Items: items}
	if len(items) > limit {
		l.Items = items[:limit]
		l.HasMore = true
		c := key(items[limit-1])
		l.NextCursor = &c
	}
	return l
}

// SessionsToResume returns every session that should be running.
func (db *DB) SessionsToResume(ctx context.Context) ([]*wabsync.Session, error) {
	rows, err := db.query(ctx, (`SELECT ` + sessionCols + ` FROM sessions WHERE desired = 1 ORDER BY id`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*wabsync.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ModifySession changes a session in one transaction: fn edits the session
// (and may write more with tx). When the status or its reason changed, a
// session.status event is stored with it. It returns the stored session.
func (db *DB) ModifySession(ctx context.Context, id string, fn func(tx *Tx, s *wabsync.Session) error) (*wabsync.Session, error) {
	var out *wabsync.Session
	err := db.Update(forSession(ctx, id), func(tx *Tx) error {
		s, err := tx.ModifySession(id, fn)
		out = s
		return err
	})
	return out, err
}

// ModifySession is ModifySession inside an open transaction.
func (tx *Tx) ModifySession(id string, fn func(tx *Tx, s *wabsync.Session) error) (*wabsync.Session, error) {
	s, err := tx.getSession(id)
	if err != nil {
		return nil, err
	}
	before := *s
	if err := fn(tx, s); err != nil {
		return nil, err
	}
	now := tx.db.Now()
	s.UpdatedAt = now
	if s.Status == wabsync.StatusConnected && before.Status != wabsync.StatusConnected {
		s.ConnectedAt = &now
	}
	cfg, _ := json.Marshal(s.Config)
	md, err := json.Marshal(s.Metadata)
	if err != nil {
		return nil, err
	}
	var connected any
	if s.ConnectedAt != nil {
		connected = micros(*s.ConnectedAt)
	}
	if _, err := tx.Exec(`UPDATE sessions SET name = ?, status = ?, status_reason = ?, phone = ?, push_name = ?, device_jid = ?,
		config = ?, metadata = ?, desired = ?, updated_at = ?, connected_at = ? WHERE id = ?`,
		s.Name, string(s.Status), s.StatusReason, s.Phone, s.PushName, s.DeviceJID, string(cfg), string(md),
		b2i(s.Desired), micros(now), connected, id); err != nil {
		return nil, err
	}
	if s.Status != wabsync.StatusScanQR && before.Status == wabsync.StatusScanQR {
		if _, err := tx.Exec(`UPDATE sessions SET qr = '', qr_expires_at = 0 WHERE id = ?`, id); err != nil {
			return nil, err
		}
	}
	if s.Status != before.Status || s.StatusReason != before.StatusReason {
		if _, err := tx.AddEvent(&id, wabsync.EventSessionStatus, wabsync.SessionStatusData{
			Status: s.Status, Previous: before.Status, Reason: s.StatusReason, Phone: s.Phone, PushName: s.PushName,
		}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// SetQR stores the QR code a session shows and its session.qr event.
func (db *DB) SetQR(ctx context.Context, id, qr string, expires time.Time) error {
	return db.Update(ctx, func(tx *Tx) error {
		res, err := tx.Exec(`UPDATE sessions SET qr = ?, qr_expires_at = ? WHERE id = ?`, qr, micros(expires), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return wabsync.NotFound("Session")
		}
		_, err = tx.AddEvent(&id, wabsync.EventSessionQR, wabsync.SessionQRData{QR: qr, ExpiresAt: expires})
		return err
	})
}

// GetQR returns the QR code a session shows now, if any.
func (db *DB) GetQR(ctx context.Context, id string) (qr string, expires time.Time, err error) {
	var exp int64
	err = db.queryRow(ctx, (`SELECT qr, qr_expires_at FROM sessions WHERE id = ?`), id).Scan(&qr, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, wabsync.NotFound("Session")
	}
	return qr, fromMicros(exp), err
}

// RotateSessionToken replaces a session's token hash; the old token stops
// working at once.
func (db *DB) RotateSessionToken(ctx context.Context, id, tokenHash string) error {
	return db.Update(ctx, func(tx *Tx) error {
		res, err := tx.Exec(`UPDATE sessions SET token_hash = ?, updated_at = ? WHERE id = ?`, tokenHash, micros(db.Now()), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return wabsync.NotFound("Session")
		}
		// Other nodes drop the old token from their caches at once.
		return tx.Notify(ChanTokens, id)
	})
}

// DeleteSession removes a session and, through foreign keys, its messages,
// events, contacts, webhooks and deliveries; and its Idempotency-Key records.
//
// Mail waiting for its sandbox phone goes in the same transaction, or, when
// the mail has a database of its own (OpenMailbox), right after; mail that a
// crash or a failure in between leaves behind is dropped when the phone is
// given out again (sandbox.Network).
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	var phone string
	err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.QueryRow(`SELECT phone FROM sessions WHERE id = ?`, id).Scan(&phone); errors.Is(err, sql.ErrNoRows) {
			return wabsync.NotFound("Session")
		} else if err != nil {
			return err
		}
		if phone != "" && db.mail == nil {
			if _, err := tx.Exec(`DELETE FROM sandbox_mailbox WHERE to_phone = ?`, phone); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(`DELETE FROM sessions WHERE id = ?`, id); err != nil {
			return err
		}
		// Stored responses quote the session's messages and webhooks.
		if err := tx.deleteIdempotencyOf(id); err != nil {
			return err
		}
		return tx.Notify(ChanTokens, id)
	})
	if err == nil && phone != "" && db.mail != nil {
		// The session is gone whatever happens here: mail left behind is
		// dropped when the phone is given out again.
		if e := db.DropMail(ctx, phone); e != nil {
			db.logger.Warn("dropping a deleted session's sandbox mail", "session_id", id, "err", e)
		}
	}
	return err
}

// SessionByPhone returns the id of the session linked to phone, or "".
func (db *DB) SessionByPhone(ctx context.Context, phone string) (string, error) {
	var id string
	err := db.queryRow(ctx, (`SELECT id FROM sessions WHERE phone = ? AND engine = ? ORDER BY id LIMIT 1`), phone, wabsync.EngineSandbox).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// SetQR stores the QR code a session shows, with its session.qr event, in tx.
func (tx *Tx) SetQR(id, qr string, expires time.Time) error {
	if _, err := tx.Exec(`UPDATE sessions SET qr = ?, qr_expires_at = ? WHERE id = ?`, qr, micros(expires), id); err != nil {
		return err
	}
	_, err := tx.AddEvent(&id, wabsync.EventSessionQR, wabsync.SessionQRData{QR: qr, ExpiresAt: expires})
	return err
}
