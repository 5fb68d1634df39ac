package store

import "database/sql"

// hookCache keeps the enabled webhooks' ids, scopes and event filters for
// the writer, so that storing an event does not read the webhooks table to
// learn that there is nothing to deliver (or the same few rows) every time.
//
// On PostgreSQL, where other nodes change webhooks too, a batch keeps one
// for its own time (Tx.hooks): its events then see the webhooks as they
// were when its first event was stored, a few milliseconds at most, as if
// they had been stored that much earlier. Without it every event read the
// table: the largest share of a lane's round trips with the whole pipeline
// at 1,000 msg/s (36,000 reads in 12 s).
//
// Otherwise SQLite only, and used only inside the writer's transactions, where every
// change to webhooks runs too: a statement that may change the table (or
// delete a session, whose webhooks go with it) drops the cache at once, the
// next event reloads it inside its transaction (so it sees that
// transaction's own changes), and a rollback drops it again.
type hookCache struct {
	valid bool
	hooks []cachedHook
}

type cachedHook struct {
	id, sessionID string // sessionID "" for a global webhook
	events        string
}

// writesWebhooks reports whether statement q may change which webhooks
// exist, are enabled, or what they want.
func writesWebhooks(q string) bool {
	q = trimSQL(q)
	return hasPrefixFold(q, "UPDATE webhooks") || hasPrefixFold(q, "DELETE FROM webhooks") ||
		hasPrefixFold(q, "INSERT INTO webhooks") || hasPrefixFold(q, "DELETE FROM sessions") || hasPrefixFold(q, "WITH")
}

// webhookTargets returns the enabled webhooks that want events of type typ
// of the session (nil: a global event).
func (tx *Tx) webhookTargets(sessionID *string, typ string) ([]string, error) {
	c := tx.hooks
	if c == nil {
		c = tx.db.hooks
	}
	if c == nil {
		return tx.queryWebhookTargets(sessionID, typ)
	}
	if !c.valid {
		rows, err := tx.Query(`SELECT id, COALESCE(session_id, ''), events FROM webhooks WHERE enabled = 1`)
		if err != nil {
			return nil, err
		}
		var hooks []cachedHook
		for rows.Next() {
			var h cachedHook
			if err := rows.Scan(&h.id, &h.sessionID, &h.events); err != nil {
				rows.Close()
				return nil, err
			}
			hooks = append(hooks, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		c.hooks, c.valid = hooks, true
	}
	var targets []string
	for _, h := range c.hooks {
		if h.sessionID != "" && (sessionID == nil || *sessionID != h.sessionID) {
			continue
		}
		if eventsMatch(h.events, typ) {
			targets = append(targets, h.id)
		}
	}
	return targets, nil
}

func (tx *Tx) queryWebhookTargets(sessionID *string, typ string) ([]string, error) {
	var rows *sql.Rows
	var err error
	if sessionID != nil {
		rows, err = tx.Query(`SELECT id, events FROM webhooks WHERE enabled = 1 AND (session_id = ? OR session_id IS NULL)`, *sessionID)
	} else {
		rows, err = tx.Query(`SELECT id, events FROM webhooks WHERE enabled = 1 AND session_id IS NULL`)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var targets []string
	for rows.Next() {
		var id, events string
		if err := rows.Scan(&id, &events); err != nil {
			return nil, err
		}
		if eventsMatch(events, typ) {
			targets = append(targets, id)
		}
	}
	return targets, rows.Err()
}
