package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/wabsync/wabsync"
)

// OpenMailbox gives the sandbox network's mail a database of its own on
// SQLite: a file next to the main one ("wabsync.db" → "wabsync-sandbox.db"),
// with its own writer. The sandbox stands for WhatsApp's servers, whose
// traffic does not go through the gateway's store either: this way it does
// not share the gateway's commits (every sandbox message is mail twice —
// the message and its receipt — each stored and deleted). Mail left in the
// main database by an older version is moved over. On PostgreSQL it does
// nothing: nodes share the mail through the one database.
func (db *DB) OpenMailbox(ctx context.Context) error {
	if db.dialect != SQLite || db.mail != nil {
		return nil
	}
	path := strings.TrimSuffix(db.path, ".db") + "-sandbox.db"
	// Its commits are not synced one by one: the mail survives a crash of
	// the process (the kernel still writes it) but not a power loss, as
	// the sandbox is for development and tests. Synced, its fsyncs queued
	// on the disk with the gateway's own and slowed every request's.
	mail, err := Open(ctx, "sqlite://"+path, Options{Logger: db.logger, CrashSafeOnly: true})
	if err != nil {
		return fmt.Errorf("sandbox mailbox: %w", err)
	}
	mail.Now = db.Now
	mail.leasesElsewhere = true
	// The same schema as the main file (only sandbox_mailbox is used).
	if _, err := mail.Migrate(ctx); err != nil {
		mail.Close()
		return fmt.Errorf("sandbox mailbox: %w", err)
	}
	if err := db.moveMail(ctx, mail); err != nil {
		mail.Close()
		return fmt.Errorf("sandbox mailbox: %w", err)
	}
	db.mail = mail
	return nil
}

// moveMail moves the mail kept in db to mail, oldest first, keeping ids.
func (db *DB) moveMail(ctx context.Context, mail *DB) error {
	for {
		rows, err := db.query(ctx, `SELECT id, to_phone, body, created_at FROM sandbox_mailbox ORDER BY id LIMIT 500`)
		if err != nil {
			return err
		}
		type row struct {
			id, to, body string
			at           int64
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.to, &r.body, &r.at); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(batch) == 0 {
			return err
		}
		if err := mail.Update(ctx, func(tx *Tx) error {
			for _, r := range batch {
				if _, err := tx.Exec(`INSERT INTO sandbox_mailbox (id, to_phone, body, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
					r.id, r.to, r.body, r.at); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := db.Update(ctx, func(tx *Tx) error {
			for _, r := range batch {
				if _, err := tx.Exec(`DELETE FROM sandbox_mailbox WHERE id = ?`, r.id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
}

// mailbox is the database that keeps the sandbox mail.
func (db *DB) mailbox() *DB {
	if db.mail != nil {
		return db.mail
	}
	return db
}

// DropMail removes the mail waiting for phone (its session is gone).
func (db *DB) DropMail(ctx context.Context, phone string) error {
	return db.mailbox().Update(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`DELETE FROM sandbox_mailbox WHERE to_phone = ?`, phone)
		return err
	})
}

// PutMail stores a sandbox network packet for phone (sandbox.Mailbox).
func (db *DB) PutMail(ctx context.Context, toPhone string, body []byte) error {
	return db.ReplaceMail(ctx, nil, []string{toPhone}, [][]byte{body})
}

// PutMails stores several packets in one transaction, in order: bodies[i]
// for phone to[i].
func (db *DB) PutMails(ctx context.Context, to []string, bodies [][]byte) error {
	return db.ReplaceMail(ctx, nil, to, bodies)
}

// ReplaceMail removes the delivered packets done and stores bodies[i] for
// phone to[i], in order, in one transaction.
func (db *DB) ReplaceMail(ctx context.Context, done []string, to []string, bodies [][]byte) error {
	if len(done) == 0 && len(to) == 0 {
		return nil
	}
	db = db.mailbox()
	return db.Update(Background(ctx), func(tx *Tx) error {
		if len(done) > 0 {
			q := `DELETE FROM sandbox_mailbox WHERE id IN (?` + strings.Repeat(",?", len(done)-1) + `)`
			args := make([]any, len(done))
			for i, id := range done {
				args[i] = id
			}
			if _, err := tx.Exec(q, args...); err != nil {
				return err
			}
		}
		now := micros(db.Now())
		notified := map[string]bool{}
		ids := make([]string, len(to))
		for i := range to {
			ids[i] = wabsync.NewID("mail") // in order: the mail is read in id order
		}
		if db.dialect == Postgres {
			// One statement, where one a packet was a round trip each.
			texts := make([]string, len(bodies))
			for i, b := range bodies {
				texts[i] = string(b)
			}
			if _, err := tx.Exec(`INSERT INTO sandbox_mailbox (id, to_phone, body, created_at)
				SELECT v.id, v.phone, v.body, ? FROM unnest(?::text[], ?::text[], ?::text[]) AS v(id, phone, body)`,
				now, ids, to, texts); err != nil {
				return err
			}
		} else {
			for i, phone := range to {
				if _, err := tx.Exec(`INSERT INTO sandbox_mailbox (id, to_phone, body, created_at) VALUES (?, ?, ?, ?)`,
					ids[i], phone, string(bodies[i]), now); err != nil {
					return err
				}
			}
		}
		for _, phone := range to {
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
	rows, err := db.mailbox().query(ctx, (`SELECT id, body FROM sandbox_mailbox WHERE to_phone = ? ORDER BY id LIMIT ?`), toPhone, limit)
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

// PhoneInUse reports whether a sandbox session is linked to phone.
func (db *DB) PhoneInUse(ctx context.Context, phone string) (bool, error) {
	id, err := db.SessionByPhone(ctx, phone)
	return id != "", err
}
