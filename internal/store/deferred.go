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

// deferMessage queues m for the batch's insert and reports true with its
// stored body, or reports false when tx inserts at once (SQLite, where a
// statement costs no round trip, and a change run on its own).
func (tx *Tx) deferMessage(m *wabsync.Message) (bool, string, error) {
	if tx.deferred == nil {
		return false, "", nil
	}
	body, err := encodeMessage(m)
	if err != nil {
		return false, "", err
	}
	tx.deferred.add(m, body)
	return true, body, nil
}

// flushBefore inserts the deferred messages before a statement that may
// read or change them.
func (tx *Tx) flushBefore(q string) {
	if tx.deferred == nil || len(tx.deferred.ids) == 0 || tx.err != nil || !strings.Contains(q, "messages") {
		return
	}
	if err := finishPG(tx.ctx, tx.tx, tx.deferred, nil, nil); err != nil {
		tx.err = err
	}
}

// pgBatchTail is what a PostgreSQL batch does before it commits, in one
// statement (one round trip, where it took three): insert the deferred
// messages, write the sequence counters back, and send the notifications.
// The data-modifying parts run whether or not the final SELECT reads them;
// the notifications run because it does.
const pgBatchTail = `WITH m AS (
	INSERT INTO messages (id, session_id, seq, direction, chat, wa_id, kind, status, unread, body, created_at, updated_at)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::bigint[], $12::bigint[])
	ON CONFLICT (session_id, direction, chat, wa_id) DO NOTHING RETURNING 1
), s AS (
	UPDATE sessions SET msg_seq = v.msg, event_seq = v.event
	FROM unnest($13::text[], $14::bigint[], $15::bigint[]) AS v(id, msg, event) WHERE sessions.id = v.id RETURNING 1
), n AS (
	SELECT pg_notify(c, p) FROM unnest($16::text[], $17::text[]) AS n(c, p)
)
SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM n)`

// finishPG runs pgBatchTail for a batch's deferred messages d, counters c
// and notifications nts (any may be nil or empty); all of d is inserted or
// none (errDeferredConflict).
func finishPG(ctx context.Context, tx *sql.Tx, d *deferredRows, c *seqCache, nts *notes) error {
	if d == nil {
		d = &deferredRows{}
	}
	var ids []string
	var msg, event []int64
	for _, id := range c.dirtyIDs() {
		if s := c.m[id]; s != nil && s.dirty {
			ids = append(ids, id)
			msg = append(msg, s.msg)
			event = append(event, s.event)
		}
	}
	var chans, payloads []string
	if nts != nil {
		for _, k := range nts.list {
			chans = append(chans, k[0])
			payloads = append(payloads, k[1])
		}
	}
	if len(d.ids) == 0 && len(ids) == 0 && len(chans) == 0 {
		return nil
	}
	// pgx sends a nil slice as NULL, which unnest takes as no rows too.
	var inserted, notified int64
	err := tx.QueryRowContext(ctx, pgBatchTail,
		d.ids, d.sessions, d.seqs, d.directions, d.chats, d.waIDs, d.kinds, d.statuses, d.unread, d.bodies, d.created, d.updated,
		ids, msg, event, chans, payloads).Scan(&inserted, &notified)
	if err != nil {
		return err
	}
	if inserted != int64(len(d.ids)) {
		return errDeferredConflict
	}
	*d = deferredRows{}
	if c != nil { // ids came from c: written back
		for _, id := range ids {
			c.m[id].dirty = false
		}
		c.dirty = c.dirty[:0]
	}
	return nil
}
