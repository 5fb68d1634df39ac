package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/wabsync/wabsync"
)

// deferredRows are the queued messages of a PostgreSQL batch, inserted in
// one statement just before it commits instead of one round trip each:
// with 30 accepts in a batch, the batch's time was mostly those 30 round
// trips. A statement of the batch that reads or writes messages first
// inserts what is pending (Tx.prepared), so every change still sees the
// ones before it.
type deferredRows struct {
	ids, sessions, directions, chats, waIDs, kinds, statuses, bodies []string
	seqs, created, updated                                           []int64
	unread                                                           []int32
}

// errDeferredConflict: a deferred message met a stored one with its
// WhatsApp id. The batch is rolled back and its changes run one by one,
// where the message gets another id (AcceptMessage).
var errDeferredConflict = errors.New("store: a batched message's WhatsApp id is taken")

func (d *deferredRows) add(m *wabsync.Message, body string) {
	d.ids = append(d.ids, m.ID)
	d.sessions = append(d.sessions, m.SessionID)
	d.seqs = append(d.seqs, m.Sequence)
	d.directions = append(d.directions, string(m.Direction))
	d.chats = append(d.chats, m.Chat)
	d.waIDs = append(d.waIDs, m.WAID)
	d.kinds = append(d.kinds, string(m.Kind))
	d.statuses = append(d.statuses, string(m.Status))
	d.unread = append(d.unread, int32(unreadOf(m)))
	d.bodies = append(d.bodies, body)
	d.created = append(d.created, micros(m.CreatedAt))
	d.updated = append(d.updated, micros(m.UpdatedAt))
}

// flush inserts the pending rows, all or none.
func (d *deferredRows) flush(ctx context.Context, tx *sql.Tx) error {
	if d == nil || len(d.ids) == 0 {
		return nil
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO messages (id, session_id, seq, direction, chat, wa_id, kind, status, unread, body, created_at, updated_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::bigint[], $12::bigint[])
		ON CONFLICT (session_id, direction, chat, wa_id) DO NOTHING`,
		d.ids, d.sessions, d.seqs, d.directions, d.chats, d.waIDs, d.kinds, d.statuses, d.unread, d.bodies, d.created, d.updated)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(d.ids)) {
		return errDeferredConflict
	}
	*d = deferredRows{}
	return nil
}

// deferMessage queues m (encoded as body) for the batch's insert and
// reports true, or reports false when tx inserts at once (SQLite, where a
// statement costs no round trip, and a change run on its own).
func (tx *Tx) deferMessage(m *wabsync.Message) (bool, error) {
	if tx.deferred == nil {
		return false, nil
	}
	body, err := encodeMessage(m)
	if err != nil {
		return false, err
	}
	tx.deferred.add(m, body)
	return true, nil
}

// flushBefore inserts the deferred messages before a statement that may
// read or change them.
func (tx *Tx) flushBefore(q string) {
	if tx.deferred == nil || len(tx.deferred.ids) == 0 || tx.err != nil || !strings.Contains(q, "messages") {
		return
	}
	if err := tx.deferred.flush(tx.ctx, tx.tx); err != nil {
		tx.err = err
	}
}
