package store

import (
	"context"
	"database/sql"
	"errors"
)

// Setting returns a server-wide setting, creating it with make() the first
// time. Every node gets the same value.
func (db *DB) Setting(ctx context.Context, name string, make func() string) (string, error) {
	var v string
	err := db.queryRow(ctx, (`SELECT value FROM settings WHERE name = ?`), name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	err = db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(`INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, make()); err != nil {
			return err
		}
		return tx.QueryRow(`SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	})
	return v, err
}
