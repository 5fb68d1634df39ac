package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wabsync/wabsync"
)

// deferredRows are the writes of a PostgreSQL batch that need no answer
// from the database — the messages it accepts or receives, the new stored
// form of messages it changed, its session events and their webhook
// deliveries, the contacts it heard from — made in one statement just
// before it commits instead of one round trip each. With the whole
// pipeline at 1,000 msg/s, one session's lane made six round trips per
// message (a SELECT, an UPDATE and an event INSERT for "sent", and as many
// for "delivered"), and fell seconds behind.
//
// Every change still sees the ones before it: the store's own reads of a
// message (getMessage, findByWAID) take it from here when the batch holds
// it (or read it ahead: PrefetchMessages), and any other statement that
// names messages, events, deliveries or contacts as a table first writes
// what is pending (flushBefore).
type deferredRows struct {
	// New messages (insertion order).
	ids, sessions, directions, chats, waIDs, kinds, statuses, bodies []string
	seqs, created, updated                                           []int64
	unread                                                           []int32
	inserted                                                         map[string]int // ids' index

	// Changed messages: the latest form of each.
	uIDs, uSessions, uStatuses, uBodies []string
	uUpdated                            []int64
	uUnread                             []int32
	changed                             map[string]int // uIDs' index

	// Messages read ahead (PrefetchMessages), as stored when read: by id,
	// and the ids of each (session, WhatsApp id) asked for.
	fetched map[string]fetchedRow
	byWAID  map[[2]string][]string

	// Contacts heard from, merged per (session, jid) as upsertContact
	// merges them.
	cSessions, cJIDs, cPhones, cLIDs, cNames []string
	cAt                                      []int64
	contact                                  map[[2]string]int

	// Session events, and their deliveries.
	eIDs, eSessions, eTypes, eBodies []string
	eSeqs, eCreated                  []int64
	dIDs, dWebhooks, dEvents, dTypes []string
	dAt                              []int64
}

type fetchedRow struct{ session, direction, body string }

// errDeferredConflict: a deferred message met a stored one with its
// WhatsApp id, or a changed message was no longer there. The batch is
// rolled back and its changes run one by one, where the message gets
// another id (AcceptMessage) or the change sees what happened.
var errDeferredConflict = errors.New("store: a batched message's WhatsApp id is taken, or a changed message is gone")

func (d *deferredRows) empty() bool {
	return len(d.ids) == 0 && len(d.uIDs) == 0 && len(d.eIDs) == 0 && len(d.dIDs) == 0 && len(d.cJIDs) == 0
}

// addContact records c as heard from by the session at at: a field left
// empty keeps what is known.
func (d *deferredRows) addContact(sessionID string, c *wabsync.ContactInfo, at int64) {
	k := [2]string{sessionID, c.JID}
	if i, ok := d.contact[k]; ok {
		for _, f := range []struct {
			to *string
			v  string
		}{{&d.cPhones[i], c.Phone}, {&d.cLIDs[i], c.LID}, {&d.cNames[i], c.PushName}} {
			if f.v != "" {
				*f.to = f.v
			}
		}
		d.cAt[i] = at
		return
	}
	if d.contact == nil {
		d.contact = map[[2]string]int{}
	}
	d.contact[k] = len(d.cJIDs)
	d.cSessions = append(d.cSessions, sessionID)
	d.cJIDs = append(d.cJIDs, c.JID)
	d.cPhones = append(d.cPhones, c.Phone)
	d.cLIDs = append(d.cLIDs, c.LID)
	d.cNames = append(d.cNames, c.PushName)
	d.cAt = append(d.cAt, at)
}

func (d *deferredRows) add(m *wabsync.Message, body string) {
	if d.inserted == nil {
		d.inserted = map[string]int{}
	}
	d.inserted[m.ID] = len(d.ids)
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

// change records m's new stored form: in its pending insert if the batch
// made it, else as the batch's latest change of it.
func (d *deferredRows) change(m *wabsync.Message, body string) {
	if i, ok := d.inserted[m.ID]; ok {
		d.statuses[i], d.unread[i], d.bodies[i], d.updated[i] = string(m.Status), int32(unreadOf(m)), body, micros(m.UpdatedAt)
		return
	}
	if i, ok := d.changed[m.ID]; ok {
		d.uStatuses[i], d.uUnread[i], d.uBodies[i], d.uUpdated[i] = string(m.Status), int32(unreadOf(m)), body, micros(m.UpdatedAt)
		return
	}
	if d.changed == nil {
		d.changed = map[string]int{}
	}
	d.changed[m.ID] = len(d.uIDs)
	d.uIDs = append(d.uIDs, m.ID)
	d.uSessions = append(d.uSessions, m.SessionID)
	d.uStatuses = append(d.uStatuses, string(m.Status))
	d.uUnread = append(d.uUnread, int32(unreadOf(m)))
	d.uBodies = append(d.uBodies, body)
	d.uUpdated = append(d.uUpdated, micros(m.UpdatedAt))
}

// latest returns the stored body of message id of session sessionID as the
// batch left it, if the batch made or changed it.
func (d *deferredRows) latest(sessionID, id string) (string, bool) {
	if i, ok := d.inserted[id]; ok && d.sessions[i] == sessionID {
		return d.bodies[i], true
	}
	if i, ok := d.changed[id]; ok && d.uSessions[i] == sessionID {
		return d.uBodies[i], true
	}
	return "", false
}

// stored returns message id of session sessionID as the batch knows it:
// as the batch left it, or as read ahead.
func (d *deferredRows) stored(sessionID, id string) (string, bool) {
	if b, ok := d.latest(sessionID, id); ok {
		return b, true
	}
	if r, ok := d.fetched[id]; ok && r.session == sessionID {
		return r.body, true
	}
	return "", false
}

// PrefetchMessages reads the session's messages with these ids or
// WhatsApp ids in one statement, locked as the store's own lookups lock
// them, ahead of a change that looks up each in turn (getMessage,
// findByWAID), which then costs no round trip. It does something only in a
// PostgreSQL batch, where each lookup is a round trip (the sender's batch
// of 32 messages took 27 ms, one lookup after the other); elsewhere a
// lookup costs microseconds.
func (tx *Tx) PrefetchMessages(sessionID string, ids, waIDs []string) error {
	d := tx.deferred
	if d == nil || len(ids) == 0 && len(waIDs) == 0 {
		return nil
	}
	if len(ids) > maxPrefetch {
		ids = ids[:maxPrefetch]
	}
	if len(waIDs) > maxPrefetch {
		waIDs = waIDs[:maxPrefetch]
	}
	if d.fetched == nil {
		d.fetched, d.byWAID = map[string]fetchedRow{}, map[[2]string][]string{}
	}
	for _, w := range waIDs {
		k := [2]string{sessionID, w}
		if _, ok := d.byWAID[k]; !ok {
			d.byWAID[k] = []string{}
		}
	}
	// One statement for each kind of key, each planned for its own keys
	// (pgx's exec mode: the unnamed statement, in the same single round
	// trip), not by a plan cached on the connection: one made while the
	// table was nearly empty looked up the session alone and filtered its
	// messages by WhatsApp id, so each call read all of the session's
	// messages (measured with auto_explain: 4–6 ms a call, about half of
	// PostgreSQL's time, and growing with the session).
	for _, q := range []struct {
		key  string
		keys []string
	}{{"id", ids}, {"wa_id", waIDs}} {
		if len(q.keys) == 0 {
			continue
		}
		rows, err := tx.queryOwn(`SELECT id, wa_id, direction, body FROM messages WHERE session_id = ? AND `+q.key+` = ANY(?) ORDER BY id FOR UPDATE`,
			pgx.QueryExecModeExec, sessionID, q.keys)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, waID, dir, body string
			if err := rows.Scan(&id, &waID, &dir, &body); err != nil {
				rows.Close()
				return err
			}
			d.fetched[id] = fetchedRow{session: sessionID, direction: dir, body: body}
			k := [2]string{sessionID, waID}
			if have, ok := d.byWAID[k]; ok && !slices.Contains(have, id) {
				d.byWAID[k] = append(have, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// readAhead returns the ids of the session's stored messages with WhatsApp
// id waID, if PrefetchMessages asked for them (d may be nil).
func (d *deferredRows) readAhead(sessionID, waID string) ([]string, bool) {
	if d == nil {
		return nil, false
	}
	ids, ok := d.byWAID[[2]string{sessionID, waID}]
	return ids, ok
}

// maxPrefetch bounds the ids of one PrefetchMessages.
const maxPrefetch = 1000

func (d *deferredRows) addEvent(ev *wabsync.Event, body []byte) {
	d.eIDs = append(d.eIDs, ev.ID)
	d.eSessions = append(d.eSessions, *ev.SessionID)
	d.eSeqs = append(d.eSeqs, ev.Sequence)
	d.eTypes = append(d.eTypes, ev.Type)
	d.eBodies = append(d.eBodies, string(body))
	d.eCreated = append(d.eCreated, micros(ev.CreatedAt))
}

func (d *deferredRows) addDelivery(id, webhook string, ev *wabsync.Event) {
	d.dIDs = append(d.dIDs, id)
	d.dWebhooks = append(d.dWebhooks, webhook)
	d.dEvents = append(d.dEvents, ev.ID)
	d.dTypes = append(d.dTypes, ev.Type)
	d.dAt = append(d.dAt, micros(ev.CreatedAt))
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

// flushBefore writes what the batch deferred before a statement that may
// read or change it.
func (tx *Tx) flushBefore(q string) {
	if tx.deferred == nil || tx.deferred.empty() || tx.err != nil {
		return
	}
	if !refersTo(q, "messages") && !refersTo(q, "events") && !refersTo(q, "deliveries") && !refersTo(q, "contacts") {
		return
	}
	if err := finishPG(tx.ctx, tx.tx, tx.deferred, nil, nil); err != nil {
		tx.err = err
	}
}

// refersTo reports whether statement q names table (after FROM, INTO,
// UPDATE or JOIN), not merely a column or a word of that name: the
// webhooks' "events" column is no reason to write the batch's events.
func refersTo(q, table string) bool {
	for from := 0; ; {
		i := strings.Index(q[from:], table)
		if i < 0 {
			return false
		}
		i += from
		from = i + len(table)
		if i > 0 && isIdent(q[i-1]) || from < len(q) && isIdent(q[from]) {
			continue
		}
		// The word before it, past quotes and a schema ("public"."messages").
		w := strings.TrimRight(q[:i], "\"")
		if strings.HasSuffix(w, ".") {
			w = strings.TrimRight(w[:len(w)-1], "\"")
			for len(w) > 0 && isIdent(w[len(w)-1]) {
				w = w[:len(w)-1]
			}
			w = strings.TrimRight(w, "\"")
		}
		w = strings.TrimRight(w, " \t\r\n")
		j := len(w)
		for j > 0 && isIdent(w[j-1]) {
			j--
		}
		switch strings.ToUpper(w[j:]) {
		case "FROM", "INTO", "UPDATE", "JOIN":
			return true
		}
	}
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// queryOwn runs a read of messages whose caller completes it from the
// batch's deferred rows itself (getMessage, findByWAID): those need not be
// written first.
func (tx *Tx) queryOwn(q string, args ...any) (*sql.Rows, error) {
	if tx.deferred == nil {
		return tx.Query(q, args...)
	}
	if tx.err != nil {
		return nil, tx.err
	}
	return tx.tx.QueryContext(tx.ctx, tx.db.rebind(q), args...)
}

// pgBatchTail is what a PostgreSQL batch does before it commits, in one
// statement (one round trip): insert the deferred messages, store the
// messages it changed, insert its events and their deliveries, store the
// contacts it heard from, write the
// sequence counters back, and send the notifications. The data-modifying
// parts run whether or not the final SELECT reads them (and a delivery's
// foreign key is checked at the end of the statement, when its event is
// there); the notifications run because it does. A message the batch both
// inserts and changes is inserted in its changed form (deferredRows.change),
// as one statement cannot change the rows it inserts.
const pgBatchTail = `WITH m AS (
	INSERT INTO messages (id, session_id, seq, direction, chat, wa_id, kind, status, unread, body, created_at, updated_at)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::bigint[], $12::bigint[])
	ON CONFLICT (session_id, direction, chat, wa_id) DO NOTHING RETURNING 1
), s AS (
	UPDATE sessions SET msg_seq = v.msg, event_seq = v.event
	FROM unnest($13::text[], $14::bigint[], $15::bigint[]) AS v(id, msg, event) WHERE sessions.id = v.id RETURNING 1
), n AS (
	SELECT pg_notify(c, p) FROM unnest($16::text[], $17::text[]) AS n(c, p)
), u AS (
	UPDATE messages SET status = v.status, unread = v.unread, body = v.body, updated_at = v.updated
	FROM unnest($18::text[], $19::text[], $20::int[], $21::text[], $22::bigint[]) AS v(id, status, unread, body, updated)
	WHERE messages.id = v.id RETURNING 1
), e AS (
	INSERT INTO events (id, session_id, seq, type, body, created_at)
	SELECT * FROM unnest($23::text[], $24::text[], $25::bigint[], $26::text[], $27::text[], $28::bigint[])
	RETURNING 1
), dl AS (
	INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)
	SELECT v.id, v.wh, v.ev, v.typ, 'pending', v.at, v.at, v.at
	FROM unnest($29::text[], $30::text[], $31::text[], $32::text[], $33::bigint[]) AS v(id, wh, ev, typ, at)
	RETURNING 1
), ct AS (
	INSERT INTO contacts (session_id, jid, phone, lid, push_name, updated_at)
	SELECT * FROM unnest($34::text[], $35::text[], $36::text[], $37::text[], $38::text[], $39::bigint[])
	` + contactMerge + `
	RETURNING 1
)
SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM n), (SELECT count(*) FROM u)`

// finishPG runs pgBatchTail for a batch's deferred rows d, counters c and
// notifications nts (any may be nil or empty); all of d is written or none
// (errDeferredConflict).
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
	if d.empty() && len(ids) == 0 && len(chans) == 0 {
		return nil
	}
	// pgx sends a nil slice as NULL, which unnest takes as no rows too.
	var inserted, notified, changed int64
	// Planned each time with the tables as they are (pgx's exec mode, one
	// round trip as before), not by a plan cached on the connection: one
	// made while messages was nearly empty found the messages to change
	// by reading the whole table (seen with auto_explain: 12 ms a batch
	// 20 s into a run, and growing with the table).
	err := tx.QueryRowContext(ctx, pgBatchTail, pgx.QueryExecModeExec,
		d.ids, d.sessions, d.seqs, d.directions, d.chats, d.waIDs, d.kinds, d.statuses, d.unread, d.bodies, d.created, d.updated,
		ids, msg, event, chans, payloads,
		d.uIDs, d.uStatuses, d.uUnread, d.uBodies, d.uUpdated,
		d.eIDs, d.eSessions, d.eSeqs, d.eTypes, d.eBodies, d.eCreated,
		d.dIDs, d.dWebhooks, d.dEvents, d.dTypes, d.dAt,
		d.cSessions, d.cJIDs, d.cPhones, d.cLIDs, d.cNames, d.cAt).Scan(&inserted, &notified, &changed)
	if err != nil {
		return err
	}
	if inserted != int64(len(d.ids)) || changed != int64(len(d.uIDs)) {
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
