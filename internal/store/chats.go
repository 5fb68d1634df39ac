package store

import (
	"context"

	"github.com/wabsync/wabsync"
)

func (tx *Tx) upsertContact(sessionID string, c *wabsync.ContactInfo) error {
	if tx.deferred != nil {
		tx.deferred.addContact(sessionID, c, micros(tx.db.Now()))
		return nil
	}
	_, err := tx.Exec(`INSERT INTO contacts (session_id, jid, phone, lid, push_name, updated_at) VALUES (?, ?, ?, ?, ?, ?) `+contactMerge,
		sessionID, c.JID, c.Phone, c.LID, c.PushName, micros(tx.db.Now()))
	return err
}

// contactMerge ends an INSERT into contacts: a contact heard from again
// keeps what it is known by where the new row leaves a field empty
// (upsertContact, and a PostgreSQL batch's closing statement).
const contactMerge = `ON CONFLICT (session_id, jid) DO UPDATE SET
	phone = CASE WHEN excluded.phone <> '' THEN excluded.phone ELSE contacts.phone END,
	lid = CASE WHEN excluded.lid <> '' THEN excluded.lid ELSE contacts.lid END,
	push_name = CASE WHEN excluded.push_name <> '' THEN excluded.push_name ELSE contacts.push_name END,
	updated_at = excluded.updated_at`

// ListContacts returns a page of the contacts a session has heard from.
func (db *DB) ListContacts(ctx context.Context, sessionID string, p wabsync.Page) (wabsync.List[*wabsync.ContactInfo], error) {
	rows, err := db.query(ctx, (`SELECT jid, phone, lid, push_name, updated_at FROM contacts
		WHERE session_id = ? AND jid > ? ORDER BY jid LIMIT ?`), sessionID, p.After, p.Limit+1)
	if err != nil {
		return wabsync.List[*wabsync.ContactInfo]{}, err
	}
	defer rows.Close()
	items := []*wabsync.ContactInfo{}
	for rows.Next() {
		var c wabsync.ContactInfo
		var up int64
		if err := rows.Scan(&c.JID, &c.Phone, &c.LID, &c.PushName, &up); err != nil {
			return wabsync.List[*wabsync.ContactInfo]{}, err
		}
		c.LastSeen = fromMicros(up)
		items = append(items, &c)
	}
	if err := rows.Err(); err != nil {
		return wabsync.List[*wabsync.ContactInfo]{}, err
	}
	return pageOf(items, p.Limit, func(c *wabsync.ContactInfo) string { return c.JID }), nil
}

// ListChats returns a page of a session's chats, most recent first, each
// with its last message and unread count. The cursor is the id of the last
// chat's last message.
func (db *DB) ListChats(ctx context.Context, sessionID string, p wabsync.Page) (wabsync.List[*wabsync.Chat], error) {
	q := `SELECT chat, MAX(id) AS last_id, SUM(unread) FROM messages WHERE session_id = ? GROUP BY chat`
	args := []any{sessionID}
	if p.After != "" {
		q += ` HAVING MAX(id) < ?`
		args = append(args, p.After)
	}
	q += ` ORDER BY last_id DESC LIMIT ?`
	args = append(args, p.Limit+1)
	rows, err := db.query(ctx, (q), args...)
	if err != nil {
		return wabsync.List[*wabsync.Chat]{}, err
	}
	type row struct {
		chat, last string
		unread     int
	}
	var rs []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.chat, &r.last, &r.unread); err != nil {
			rows.Close()
			return wabsync.List[*wabsync.Chat]{}, err
		}
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return wabsync.List[*wabsync.Chat]{}, err
	}
	items := []*wabsync.Chat{}
	for _, r := range rs {
		m, err := db.GetMessage(ctx, sessionID, r.last)
		if err != nil {
			return wabsync.List[*wabsync.Chat]{}, err
		}
		db.decorate(m)
		items = append(items, &wabsync.Chat{JID: r.chat, LastMessage: m, UnreadCount: r.unread, UpdatedAt: m.UpdatedAt})
	}
	return pageOf(items, p.Limit, func(c *wabsync.Chat) string { return c.LastMessage.ID }), nil
}
