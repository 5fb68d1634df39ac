package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notification channels between nodes (PostgreSQL LISTEN/NOTIFY). Each
// payload is a session id (outbox, events), a phone (mail) or a node id
// (leases). Polling remains the fallback everywhere.
const (
	ChanOutbox = "wabsync_outbox"
	ChanEvents = "wabsync_events"
	ChanMail   = "wabsync_mail"
	ChanLeases = "wabsync_leases"
	ChanTokens = "wabsync_tokens"
	// ChanSessions: a transaction changed the sessions table (no payload);
	// nodes empty their session cache (SessionsChanged).
	ChanSessions = "wabsync_sessions"
)

// Notify sends a notification to every node when tx commits (PostgreSQL);
// on SQLite, with a single node, it does nothing.
func (t *Tx) Notify(channel, payload string) error {
	if t.db.dialect != Postgres {
		return nil
	}
	if t.notes != nil {
		t.notes.add(channel, payload)
		return nil
	}
	_, err := t.Exec(`SELECT pg_notify(?, ?)`, channel, payload)
	return err
}

// notes are the notifications of a batch, each sent once before it commits
// (finishPG; PostgreSQL folds repeats within a transaction anyway, and this
// saves the round trips).
type notes struct {
	seen map[[2]string]bool
	list [][2]string
}

func (n *notes) add(channel, payload string) {
	k := [2]string{channel, payload}
	if n.seen[k] {
		return
	}
	if n.seen == nil {
		n.seen = map[[2]string]bool{}
	}
	n.seen[k] = true
	n.list = append(n.list, k)
}

// Listen calls fn for every notification on the channels until ctx ends,
// reconnecting after failures. It returns at once on SQLite.
func (db *DB) Listen(ctx context.Context, channels []string, fn func(channel, payload string)) {
	if db.dialect != Postgres {
		return
	}
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, channels, fn)
		if ctx.Err() != nil {
			return
		}
		db.logger.Warn("LISTEN connection lost; reconnecting", "err", redactErr(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, channels []string, fn func(channel, payload string)) error {
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	// Listening (again): what was sent before is lost, and sessions may
	// have changed meanwhile.
	db.SessionsChanged()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Channel, n.Payload)
	}
}
