package store

import "testing"

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
