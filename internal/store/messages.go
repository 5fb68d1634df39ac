package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wabsync/wabsync"
)

// MessageDecorator fills what a message shows but the store does not keep,
// such as the signed link of its media. Main sets it.
type MessageDecorator func(*wabsync.Message)

func (db *DB) decorate(m *wabsync.Message) {
	if db.Decorate != nil {
		db.Decorate(m)
	}
}

func decodeMessage(body string) (*wabsync.Message, error) {
	var m wabsync.Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// storedMessage is a message with the fields the API does not show.
type storedMessage struct {
	wabsync.Message
	BlobKey string `json:"blob_key,omitempty"`
	Ref     string `json:"media_ref,omitempty"`
}

func encodeMessage(m *wabsync.Message) (string, error) {
	sm := storedMessage{Message: *m}
	if m.Media != nil {
		sm.BlobKey, sm.Ref = m.Media.BlobKey, m.Media.Ref
		media := *m.Media
		media.URL = ""
		sm.Media = &media
	}
	b, err := json.Marshal(sm)
	return string(b), err
}

func decodeStored(body string) (*wabsync.Message, error) {
	var sm storedMessage
	if err := json.Unmarshal([]byte(body), &sm); err != nil {
		return nil, err
	}
	m := sm.Message
	if m.Media != nil {
		m.Media.BlobKey, m.Media.Ref = sm.BlobKey, sm.Ref
	}
	if m.StatusHistory == nil {
		m.StatusHistory = []wabsync.StatusChange{}
	}
	return &m, nil
}

func unreadOf(m *wabsync.Message) int {
	if m.Direction == wabsync.DirectionIn && m.Status == wabsync.MsgReceived && m.Kind != wabsync.KindReaction {
		return 1
	}
	return 0
}

// insertMessage stores a new message; it returns whether it was new and the
// stored body.
func (tx *Tx) insertMessage(m *wabsync.Message) (bool, string, error) {
	body, err := encodeMessage(m)
	if err != nil {
		return false, "", err
	}
	res, err := tx.Exec(`INSERT INTO messages (id, session_id, seq, direction, chat, wa_id, kind, status, unread, body, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, direction, chat, wa_id) DO NOTHING`,
		m.ID, m.SessionID, m.Sequence, m.Direction, m.Chat, m.WAID, m.Kind, string(m.Status), unreadOf(m), body,
		micros(m.CreatedAt), micros(m.UpdatedAt))
	if err != nil {
		return false, "", err
	}
	n, _ := res.RowsAffected()
	return n == 1, body, nil
}

// saveMessage stores a changed message; it returns the stored body.
func (tx *Tx) saveMessage(m *wabsync.Message) (string, error) {
	body, err := encodeMessage(m)
	if err != nil {
		return "", err
	}
	if tx.deferred != nil {
		tx.deferred.change(m, body)
		return body, nil
	}
	_, err = tx.Exec(`UPDATE messages SET status = ?, unread = ?, body = ?, updated_at = ? WHERE id = ?`,
		string(m.Status), unreadOf(m), body, micros(m.UpdatedAt), m.ID)
	return body, err
}

func (tx *Tx) nextMessageSeq(sessionID string) (int64, error) {
	return tx.nextSeq(sessionID, false)
}

// messageEvent stores an event whose data is the message as the API shows it.
// body is the message as just stored: without media, that is exactly what
// the API shows, and it is not encoded again.
func (tx *Tx) messageEvent(m *wabsync.Message, typ, body string) error {
	if m.Media == nil && body != "" {
		_, err := tx.addEventRaw(&m.SessionID, typ, []byte(body))
		return err
	}
	shown := *m
	if m.Media != nil {
		media := *m.Media
		shown.Media = &media
	}
	tx.db.decorate(&shown)
	_, err := tx.AddEvent(&shown.SessionID, typ, &shown)
	return err
}

// Idempotency names an Idempotency-Key record to store with a change.
type Idempotency struct {
	Scope, Key, RequestHash string
	// Response renders the response to remember, once the change has its
	// final form.
	Response func() (status int, body []byte, err error)
}

// AcceptMessage stores an outbound message as queued with the next
// sequence of its session, and the request's idempotency record, in one
// transaction. After commit the session's sender is woken.
func (db *DB) AcceptMessage(ctx context.Context, m *wabsync.Message, idem *Idempotency) error {
	_, err := db.AcceptMessageJSON(ctx, m, idem)
	return err
}

// AcceptMessageJSON is AcceptMessage that also returns the message as the
// API shows it, encoded, when that is what it stored — a message without
// media (a media message's link is signed for each view); else nil.
func (db *DB) AcceptMessageJSON(ctx context.Context, m *wabsync.Message, idem *Idempotency) (json.RawMessage, error) {
	var stored string
	err := db.Update(forSession(ctx, m.SessionID), func(tx *Tx) error {
		seq, err := tx.nextMessageSeq(m.SessionID)
		if err != nil {
			return err
		}
		now := db.Now()
		m.Sequence, m.CreatedAt, m.UpdatedAt = seq, now, now
		m.Status = wabsync.MsgQueued
		m.StatusHistory = []wabsync.StatusChange{{Status: wabsync.MsgQueued, At: now}}
		// A WhatsApp id the session already used for this chat (another
		// node picked the same one in the same millisecond) gets a new one:
		// the message must be stored, not folded into the other.
		// In a PostgreSQL batch it is inserted with the batch's others
		// before the commit; a taken id fails the batch, and this change
		// then runs on its own, here.
		deferred, body, err := tx.deferMessage(m)
		if err != nil {
			return err
		}
		for tries := 0; !deferred; tries++ {
			inserted, b, err := tx.insertMessage(m)
			if err != nil {
				return err
			}
			if inserted {
				body = b
				break
			}
			if tries == 3 {
				return fmt.Errorf("store: no unused WhatsApp id for message %s", m.ID)
			}
			m.WAID = wabsync.NewWAID()
		}
		if idem != nil {
			status, body, err := idem.Response()
			if err != nil {
				return err
			}
			if err := tx.PutIdempotent(idem.Scope, idem.Key, idem.RequestHash, status, body); err != nil {
				return err
			}
		}
		if err := tx.Notify(ChanOutbox, m.SessionID); err != nil {
			return err
		}
		if hook := db.OnMessageQueued; hook != nil {
			sid := m.SessionID
			tx.AfterCommit(func() { hook(sid) })
		}
		stored = body
		return nil
	})
	if err != nil || m.Media != nil {
		return nil, err
	}
	return json.RawMessage(stored), nil
}

// GetMessage returns a message of a session.
func (db *DB) GetMessage(ctx context.Context, sessionID, id string) (*wabsync.Message, error) {
	var body string
	err := db.queryRow(ctx, (`SELECT body FROM messages WHERE id = ? AND session_id = ?`), id, sessionID).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wabsync.NotFound("Message")
	}
	if err != nil {
		return nil, err
	}
	return decodeStored(body)
}

// GetMessageAny returns a message of any session (signed media links).
func (db *DB) GetMessageAny(ctx context.Context, id string) (*wabsync.Message, error) {
	var body string
	err := db.queryRow(ctx, (`SELECT body FROM messages WHERE id = ?`), id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wabsync.NotFound("Message")
	}
	if err != nil {
		return nil, err
	}
	return decodeStored(body)
}

// FindByWAID returns a session's message with WhatsApp id waID (either
// direction), or nil.
func (db *DB) FindByWAID(ctx context.Context, sessionID, waID string) (*wabsync.Message, error) {
	rows, err := db.query(ctx, `SELECT id, body FROM messages WHERE session_id = ? AND wa_id = ?`, sessionID, waID)
	if err != nil {
		return nil, err
	}
	first, body, err := firstByID(rows)
	if err != nil || first == "" {
		return nil, err
	}
	return decodeStored(body)
}

// findByWAID returns the session's message with WhatsApp id waID (of the
// given direction, if not empty), the oldest if several chats have one.
func (tx *Tx) findByWAID(sessionID, waID string, direction string) (*wabsync.Message, error) {
	q := `SELECT id, body FROM messages WHERE session_id = ? AND wa_id = ?`
	args := []any{sessionID, waID}
	if direction != "" {
		q += ` AND direction = ?`
		args = append(args, direction)
	}
	var first, body string
	if ids, ok := tx.deferred.readAhead(sessionID, waID); ok {
		for _, id := range ids {
			if r := tx.deferred.fetched[id]; (direction == "" || r.direction == direction) && (first == "" || id < first) {
				first = id
			}
		}
		if first != "" {
			body, _ = tx.deferred.stored(sessionID, first)
		}
	} else {
		rows, err := tx.queryOwn(q+tx.db.forUpdate(), args...)
		if err != nil {
			return nil, err
		}
		if first, body, err = firstByID(rows); err != nil {
			return nil, err
		}
	}
	if d := tx.deferred; d != nil {
		// What the batch changed or has yet to insert.
		if b, ok := d.latest(sessionID, first); ok {
			body = b
		}
		for i, id := range d.ids {
			if d.sessions[i] == sessionID && d.waIDs[i] == waID && (direction == "" || d.directions[i] == direction) && (first == "" || id < first) {
				first, body = id, d.bodies[i]
			}
		}
	}
	if first == "" {
		return nil, nil
	}
	return decodeStored(body)
}

// firstByID returns the row with the smallest id of (id, body) rows, or
// "". (Sorting in SQL would make SQLite's planner walk the session's
// messages in id order instead of using the WhatsApp id index.)
func firstByID(rows *sql.Rows) (first, body string, err error) {
	defer rows.Close()
	for rows.Next() {
		var id, b string
		if err := rows.Scan(&id, &b); err != nil {
			return "", "", err
		}
		if first == "" || id < first {
			first, body = id, b
		}
	}
	return first, body, rows.Err()
}

func (tx *Tx) getMessage(sessionID, id string) (*wabsync.Message, error) {
	if d := tx.deferred; d != nil {
		// Made, changed or read ahead by the batch, which read (and on
		// PostgreSQL locked) what it changed.
		if body, ok := d.stored(sessionID, id); ok {
			return decodeStored(body)
		}
	}
	rows, err := tx.queryOwn(`SELECT body FROM messages WHERE id = ? AND session_id = ?`+tx.db.forUpdate(), id, sessionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var body string
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, wabsync.NotFound("Message")
	}
	if err := rows.Scan(&body); err != nil {
		return nil, err
	}
	return decodeStored(body)
}

// ListMessages returns a page of a session's messages, newest first.
func (db *DB) ListMessages(ctx context.Context, sessionID string, f wabsync.MessageFilter) (wabsync.List[*wabsync.Message], error) {
	where := []string{"session_id = ?"}
	args := []any{sessionID}
	if f.Chat != "" {
		where = append(where, "chat = ?")
		args = append(args, f.Chat)
	}
	if f.Direction != "" {
		where = append(where, "direction = ?")
		args = append(args, f.Direction)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if f.Since != nil {
		where = append(where, "created_at >= ?")
		args = append(args, micros(*f.Since))
	}
	if f.Until != nil {
		where = append(where, "created_at < ?")
		args = append(args, micros(*f.Until))
	}
	if f.Page.After != "" {
		where = append(where, "id < ?")
		args = append(args, f.Page.After)
	}
	args = append(args, f.Page.Limit+1)
	rows, err := db.query(ctx, (`SELECT body FROM messages WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id DESC LIMIT ?`), args...)
	if err != nil {
		return wabsync.List[*wabsync.Message]{}, err
	}
	defer rows.Close()
	items := []*wabsync.Message{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return wabsync.List[*wabsync.Message]{}, err
		}
		m, err := decodeStored(body)
		if err != nil {
			return wabsync.List[*wabsync.Message]{}, err
		}
		items = append(items, m)
	}
	if err := rows.Err(); err != nil {
		return wabsync.List[*wabsync.Message]{}, err
	}
	return pageOf(items, f.Page.Limit, func(m *wabsync.Message) string { return m.ID }), nil
}

// Outbox returns up to limit messages of a session still to send, in order.
func (db *DB) Outbox(ctx context.Context, sessionID string, limit int) ([]*wabsync.Message, error) {
	rows, err := db.query(ctx, (`SELECT body FROM messages WHERE session_id = ? AND status IN ('queued', 'sending') ORDER BY seq LIMIT ?`), sessionID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*wabsync.Message
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		m, err := decodeStored(body)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func setStatus(m *wabsync.Message, st wabsync.MessageStatus, at time.Time) {
	m.Status = st
	m.StatusHistory = append(m.StatusHistory, wabsync.StatusChange{Status: st, At: at})
	m.UpdatedAt = at
}

// statusEvent is the event type of an outbound status.
func statusEvent(st wabsync.MessageStatus) string {
	switch st {
	case wabsync.MsgSent:
		return wabsync.EventMessageSent
	case wabsync.MsgDelivered:
		return wabsync.EventMessageDelivered
	case wabsync.MsgRead:
		return wabsync.EventMessageRead
	case wabsync.MsgPlayed:
		return wabsync.EventMessagePlayed
	case wabsync.MsgFailed:
		return wabsync.EventMessageFailed
	}
	return ""
}

// advance moves an outbound message forward to st, recording each status it
// passes (a receipt may come before the sender recorded "sent") with its
// event. Moving backwards or out of failed does nothing.
//
// "sending" is not stored on its own: the sender does not write before the
// network call (the WhatsApp id, fixed at accept, is what makes a resend
// after a crash safe), so a message leaving "queued" gets "sending" in its
// history here, at began (when the sender took it; zero: at), in the same
// write as what follows it.
func (tx *Tx) advance(m *wabsync.Message, st wabsync.MessageStatus, at, began time.Time) (bool, error) {
	if m.Status == wabsync.MsgFailed || st.Rank() <= m.Status.Rank() {
		return false, nil
	}
	steps := []wabsync.MessageStatus{wabsync.MsgSent, wabsync.MsgDelivered, wabsync.MsgRead, wabsync.MsgPlayed}
	if st == wabsync.MsgFailed {
		steps = []wabsync.MessageStatus{wabsync.MsgFailed}
	}
	// A receipt carries the time the other side saw the message, which may
	// be before this side recorded "sent": the history never goes back in time.
	last := func() time.Time { return m.StatusHistory[len(m.StatusHistory)-1].At }
	if m.Status == wabsync.MsgQueued {
		if began.IsZero() || began.After(at) {
			began = at
		}
		if len(m.StatusHistory) > 0 && began.Before(last()) {
			began = last()
		}
		setStatus(m, wabsync.MsgSending, began)
	}
	if len(m.StatusHistory) > 0 && at.Before(last()) {
		at = last()
	}
	for _, s := range steps {
		if s.Rank() <= m.Status.Rank() || s.Rank() > st.Rank() {
			continue
		}
		if s == wabsync.MsgPlayed && st != wabsync.MsgPlayed {
			continue
		}
		setStatus(m, s, at)
		body, err := tx.saveMessage(m)
		if err != nil {
			return false, err
		}
		if err := tx.messageEvent(m, statusEvent(s), body); err != nil {
			return false, err
		}
	}
	return true, nil
}

// MarkSent records that WhatsApp accepted the message (at: WhatsApp's
// timestamp; zero: now). began is when the sender took it from the outbox
// (its "sending" time; zero: now).
func (db *DB) MarkSent(ctx context.Context, sessionID, id string, at, began time.Time) error {
	return db.Update(forSession(ctx, sessionID), func(tx *Tx) error { return tx.MarkSent(sessionID, id, at, began) })
}

// MarkSent is MarkSent inside an open transaction.
func (tx *Tx) MarkSent(sessionID, id string, at, began time.Time) error {
	m, err := tx.getMessage(sessionID, id)
	if err != nil {
		return err
	}
	if at.IsZero() {
		at = tx.db.Now()
	}
	ts := at
	m.Timestamp = &ts
	_, err = tx.advance(m, wabsync.MsgSent, tx.db.Now(), began)
	return err
}

// MarkFailed records that a message cannot be sent, with why; began is as
// for MarkSent.
func (db *DB) MarkFailed(ctx context.Context, sessionID, id, code, msg string, began time.Time) error {
	return db.Update(forSession(ctx, sessionID), func(tx *Tx) error { return tx.MarkFailed(sessionID, id, code, msg, began) })
}

// MarkFailed is MarkFailed inside an open transaction.
func (tx *Tx) MarkFailed(sessionID, id, code, msg string, began time.Time) error {
	m, err := tx.getMessage(sessionID, id)
	if err != nil {
		return err
	}
	if m.Status.Final() {
		return nil
	}
	m.Error = &wabsync.MessageError{Code: code, Message: msg}
	_, err = tx.advance(m, wabsync.MsgFailed, tx.db.Now(), began)
	return err
}

// ApplyReceipt moves the session's outbound messages with these WhatsApp
// ids forward to status (delivered, read or played).
func (db *DB) ApplyReceipt(ctx context.Context, sessionID string, waIDs []string, st wabsync.MessageStatus, at time.Time) error {
	return db.Update(forSession(ctx, sessionID), func(tx *Tx) error { return tx.ApplyReceipt(sessionID, waIDs, st, at) })
}

// ApplyReceipt is ApplyReceipt inside an open transaction.
func (tx *Tx) ApplyReceipt(sessionID string, waIDs []string, st wabsync.MessageStatus, at time.Time) error {
	for _, w := range waIDs {
		m, err := tx.findByWAID(sessionID, w, wabsync.DirectionOut)
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		if at.IsZero() {
			at = tx.db.Now()
		}
		if _, err := tx.advance(m, st, at, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

// StoreInbound stores a received message unless the session already has it
// (same chat and WhatsApp id), and emits message.received. It reports
// whether the message was new.
func (db *DB) StoreInbound(ctx context.Context, m *wabsync.Message, contact *wabsync.ContactInfo) (bool, error) {
	var inserted bool
	err := db.Update(forSession(ctx, m.SessionID), func(tx *Tx) error {
		var err error
		inserted, err = tx.StoreInbound(m, contact)
		return err
	})
	return inserted, err
}

// StoreInbound is StoreInbound inside an open transaction.
func (tx *Tx) StoreInbound(m *wabsync.Message, contact *wabsync.ContactInfo) (bool, error) {
	existing, err := tx.findByWAID(m.SessionID, m.WAID, wabsync.DirectionIn)
	if err != nil {
		return false, err
	}
	if existing != nil && existing.Chat == m.Chat {
		return false, nil
	}
	seq, err := tx.nextMessageSeq(m.SessionID)
	if err != nil {
		return false, err
	}
	now := tx.db.Now()
	m.ID = wabsync.NewID("msg")
	m.Sequence, m.CreatedAt, m.UpdatedAt = seq, now, now
	if m.Status == "" {
		m.Status = wabsync.MsgReceived
	}
	m.StatusHistory = []wabsync.StatusChange{{Status: wabsync.MsgReceived, At: now}}
	if m.Status == wabsync.MsgRead {
		m.StatusHistory = append(m.StatusHistory, wabsync.StatusChange{Status: wabsync.MsgRead, At: now})
	}
	// In a PostgreSQL batch the insert waits for the batch's end; the
	// lookup above sees the batch's own (findByWAID). Should this chat have
	// the message already while the lookup found another chat's, older, the
	// batch's insert fails, and the change then runs on its own, here,
	// where the message is not stored again.
	ok, body, err := tx.deferMessage(m)
	if err == nil && !ok {
		ok, body, err = tx.insertMessage(m)
	}
	if err != nil || !ok {
		return false, err
	}
	if contact != nil {
		if err := tx.upsertContact(m.SessionID, contact); err != nil {
			return false, err
		}
	}
	typ := wabsync.EventMessageReceived
	if m.Error != nil && m.Error.Code == "UNDECRYPTABLE" {
		typ = wabsync.EventMessageUndecryptable
	}
	return true, tx.messageEvent(m, typ, body)
}

// ModifyByWAID changes the session's message with WhatsApp id waID (the
// target of a reaction, edit or revoke) and emits typ with it. It returns
// nil when there is no such message.
func (db *DB) ModifyByWAID(ctx context.Context, sessionID, waID, typ string, fn func(m *wabsync.Message)) (*wabsync.Message, error) {
	var out *wabsync.Message
	err := db.Update(forSession(ctx, sessionID), func(tx *Tx) error {
		var err error
		out, err = tx.ModifyByWAID(sessionID, waID, typ, fn)
		return err
	})
	return out, err
}

// ModifyByWAID is ModifyByWAID inside an open transaction.
func (tx *Tx) ModifyByWAID(sessionID, waID, typ string, fn func(m *wabsync.Message)) (*wabsync.Message, error) {
	m, err := tx.findByWAID(sessionID, waID, "")
	if err != nil || m == nil {
		return nil, err
	}
	fn(m)
	m.UpdatedAt = tx.db.Now()
	body, err := tx.saveMessage(m)
	if err != nil {
		return nil, err
	}
	return m, tx.messageEvent(m, typ, body)
}

// FindByWAID is FindByWAID inside an open transaction.
func (tx *Tx) FindByWAID(sessionID, waID string) (*wabsync.Message, error) {
	return tx.findByWAID(sessionID, waID, "")
}

// ModifyMessage changes a message by id and emits typ (if not empty).
func (db *DB) ModifyMessage(ctx context.Context, sessionID, id, typ string, fn func(m *wabsync.Message) error) (*wabsync.Message, error) {
	var out *wabsync.Message
	err := db.Update(forSession(ctx, sessionID), func(tx *Tx) error {
		m, err := tx.getMessage(sessionID, id)
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
		m.UpdatedAt = db.Now()
		body, err := tx.saveMessage(m)
		if err != nil {
			return err
		}
		out = m
		if typ == "" {
			return nil
		}
		return tx.messageEvent(m, typ, body)
	})
	return out, err
}

// MarkInboundRead marks a received message and the unread ones before it in
// its chat read, emitting message.read for each. It returns the messages
// changed (to tell WhatsApp).
func (db *DB) MarkInboundRead(ctx context.Context, sessionID, chat string, upToID string, waIDs []string) ([]*wabsync.Message, error) {
	var changed []*wabsync.Message
	err := db.Update(forSession(ctx, sessionID), func(tx *Tx) error {
		var err error
		changed, err = tx.MarkInboundRead(sessionID, chat, upToID, waIDs)
		return err
	})
	return changed, err
}

// MarkInboundRead is MarkInboundRead inside an open transaction.
func (tx *Tx) MarkInboundRead(sessionID, chat string, upToID string, waIDs []string) ([]*wabsync.Message, error) {
	db := tx.db
	var changed []*wabsync.Message
	err := func() error {
		var rows *sql.Rows
		var err error
		if upToID != "" {
			rows, err = tx.Query(`SELECT body FROM messages WHERE session_id = ? AND chat = ? AND direction = 'in' AND unread = 1 AND id <= ? ORDER BY id LIMIT 1000`+tx.db.forUpdate(), sessionID, chat, upToID)
		} else {
			if len(waIDs) == 0 {
				return nil
			}
			q := `SELECT body FROM messages WHERE session_id = ? AND direction = 'in' AND unread = 1 AND wa_id IN (?` + strings.Repeat(",?", len(waIDs)-1) + `) ORDER BY id` + tx.db.forUpdate()
			args := []any{sessionID}
			for _, w := range waIDs {
				args = append(args, w)
			}
			rows, err = tx.Query(q, args...)
		}
		if err != nil {
			return err
		}
		var ms []*wabsync.Message
		for rows.Next() {
			var body string
			if err := rows.Scan(&body); err != nil {
				rows.Close()
				return err
			}
			m, err := decodeStored(body)
			if err != nil {
				rows.Close()
				return err
			}
			ms = append(ms, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := db.Now()
		for _, m := range ms {
			setStatus(m, wabsync.MsgRead, now)
			body, err := tx.saveMessage(m)
			if err != nil {
				return err
			}
			if err := tx.messageEvent(m, wabsync.EventMessageRead, body); err != nil {
				return err
			}
			changed = append(changed, m)
		}
		return nil
	}()
	return changed, err
}

// SetMediaBlob records that a message's media bytes are now in the blob store.
func (db *DB) SetMediaBlob(ctx context.Context, id, blobKey string) error {
	return db.Update(ctx, func(tx *Tx) error {
		var body, sessionID string
		// Locked: its change is written when the batch ends (PostgreSQL),
		// and must not overwrite one made meanwhile in another lane.
		if err := tx.QueryRow(`SELECT body, session_id FROM messages WHERE id = ?`+tx.db.forUpdate(), id).Scan(&body, &sessionID); err != nil {
			return err
		}
		m, err := decodeStored(body)
		if err != nil {
			return err
		}
		if m.Media == nil {
			return nil
		}
		m.Media.BlobKey = blobKey
		_, err = tx.saveMessage(m)
		return err
	})
}
