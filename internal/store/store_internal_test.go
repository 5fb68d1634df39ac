package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritesSessions(t *testing.T) {
	for q, want := range map[string]bool{
		`UPDATE sessions SET msg_seq = msg_seq + 1 WHERE id = ? RETURNING msg_seq`:       false,
		`UPDATE sessions SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq`: false,
		`UPDATE sessions SET qr = ?, qr_expires_at = ? WHERE id = ?`:                     false,
		`SELECT id FROM sessions WHERE id = ?`:                                           false,
		`INSERT INTO messages (id) VALUES (?)`:                                           false,
		`UPDATE session_leases SET expires_at = ?`:                                       false,
		`UPDATE sessions SET name = ?, status = ? WHERE id = ?`:                          true,
		"\n\t\tupdate sessions set status = 'stopped'":                                   true,
		`UPDATE sessions SET desired = 1 WHERE id = ?`:                                   true,
		`DELETE FROM sessions WHERE id = ?`:                                              true,
		`INSERT INTO sessions (id) VALUES (?)`:                                           true,
		`WITH x AS (SELECT 1) UPDATE sessions SET status = 'x'`:                          true,
	} {
		if got := writesSessions(q); got != want {
			t.Errorf("writesSessions(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestWAIDLookupUsesIndex: finding a message by WhatsApp id is an index
// search, never a walk over the session's messages (which is what SQLite's
// planner chose when the query sorted by id).
func TestWAIDLookupUsesIndex(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "plan.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT id, body FROM messages WHERE session_id = ? AND wa_id = ?`,
		`SELECT id, body FROM messages WHERE session_id = ? AND wa_id = ? AND direction = ?`,
	} {
		rows, err := db.read.Query(`EXPLAIN QUERY PLAN `+q, "s", "w", "in")
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if !strings.Contains(joined, "USING INDEX messages_wa_id (session_id=? AND wa_id=?") {
			t.Errorf("%s\nplan: %s", q, joined)
		}
	}
}
