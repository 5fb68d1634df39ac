package store

import (
	"context"
	"strings"

	"github.com/wabsync/wabsync"
)

// PutMail stores a sandbox network packet for phone (sandbox.Mailbox).
func (db *DB) PutMail(ctx context.Context, toPhone string, body []byte) error {
	return db.Update(Background(ctx), func(tx *Tx) error {
		if _, err := tx.Exec(`INSERT INTO sandbox_mailbox (id, to_phone, body, created_at) VALUES (?, ?, ?, ?)`,
			wabsync.NewID("mail"), toPhone, string(body), micros(db.Now())); err != nil {
			return err
		}
		return tx.Notify(ChanMail, toPhone)
	})
}

// PutMails stores several packets in one transaction, in order: bodies[i]
// for phone to[i].
func (db *DB) PutMails(ctx context.Context, to []string, bodies [][]byte) error {
	if len(to) == 0 {
		return nil
	}
	return db.Update(Background(ctx), func(tx *Tx) error {
		now := micros(db.Now())
		notified := map[string]bool{}
		for i, phone := range to {
			if _, err := tx.Exec(`INSERT INTO sandbox_mailbox (id, to_phone, body, created_at) VALUES (?, ?, ?, ?)`,
				wabsync.NewID("mail"), phone, string(bodies[i]), now); err != nil {
				return err
			}
			if !notified[phone] {
				notified[phone] = true
				if err := tx.Notify(ChanMail, phone); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// TakeMail returns up to limit packets for phone, oldest first.
func (db *DB) TakeMail(ctx context.Context, toPhone string, limit int) ([]string, [][]byte, error) {
	rows, err := db.query(ctx, (`SELECT id, body FROM sandbox_mailbox WHERE to_phone = ? ORDER BY id LIMIT ?`), toPhone, limit)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var ids []string
	var bodies [][]byte
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			return nil, nil, err
		}
		ids = append(ids, id)
		bodies = append(bodies, []byte(body))
	}
	return ids, bodies, rows.Err()
}

// DeleteMail removes delivered packets.
func (db *DB) DeleteMail(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	q := `DELETE FROM sandbox_mailbox WHERE id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return db.Update(Background(ctx), func(tx *Tx) error {
		_, err := tx.Exec(q, args...)
		return err
	})
}

// PhoneInUse reports whether a sandbox session is linked to phone.
func (db *DB) PhoneInUse(ctx context.Context, phone string) (bool, error) {
	id, err := db.SessionByPhone(ctx, phone)
	return id != "", err
}
