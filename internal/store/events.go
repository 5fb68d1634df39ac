package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/wabsync/wabsync"
)

// AddEvent stores an event of the session (or a global one with a nil
// session) with the next sequence number, and one pending delivery for each
// enabled webhook that wants it — all in tx. After commit the store's OnEvent
// hook sees it.
func (tx *Tx) AddEvent(sessionID *string, typ string, data any) (*wabsync.Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return tx.addEventRaw(sessionID, typ, raw)
}

// addEventRaw is AddEvent with the data already in JSON.
func (tx *Tx) addEventRaw(sessionID *string, typ string, raw json.RawMessage) (*wabsync.Event, error) {
	ev, err := tx.insertEvent(sessionID, typ, raw)
	if err != nil {
		return nil, err
	}
	if err := tx.addDeliveries(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// insertEvent stores an event with the next sequence of its scope, without
// deliveries, tells other nodes, and hands it to the OnEvent hook after
// commit.
func (tx *Tx) insertEvent(sessionID *string, typ string, raw json.RawMessage) (*wabsync.Event, error) {
	var err error
	now := tx.db.Now()
	var seq int64
	if sessionID != nil {
		seq, err = tx.nextSeq(*sessionID, true)
	} else {
		err = tx.QueryRow(`INSERT INTO counters (name, value) VALUES ('global_event_seq', 1)
			ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value`).Scan(&seq)
	}
	if err != nil {
		return nil, err
	}
	ev := &wabsync.Event{ID: wabsync.NewID("evt"), Type: typ, SessionID: sessionID, Sequence: seq, CreatedAt: now, Data: raw}
	body, err := encodeEvent(ev)
	if err != nil {
		return nil, err
	}
	if tx.deferred != nil && sessionID != nil {
		tx.deferred.addEvent(ev, body)
	} else if _, err := tx.Exec(`INSERT INTO events (id, session_id, seq, type, body, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		ev.ID, sessionID, seq, typ, string(body), micros(now)); err != nil {
		return nil, err
	}
	if sessionID != nil && !tx.notified[*sessionID] {
		// Other nodes' SSE streams and delivery workers look now.
		if err := tx.Notify(ChanEvents, *sessionID); err != nil {
			return nil, err
		}
		if tx.notified == nil {
			tx.notified = map[string]bool{}
		}
		tx.notified[*sessionID] = true
	}
	if hook := tx.db.OnEvent; hook != nil {
		tx.AfterCommit(func() { hook(ev) })
	}
	return ev, nil
}

// encodeEvent is json.Marshal(ev) without encoding and checking the data a
// second time: data was just made by json.Marshal. (The events of a message
// are the bulk of what the writer encodes.)
func encodeEvent(ev *wabsync.Event) ([]byte, error) {
	if !plainJSONString(ev.ID) || !plainJSONString(ev.Type) || (ev.SessionID != nil && !plainJSONString(*ev.SessionID)) {
		return json.Marshal(ev)
	}
	b := make([]byte, 0, len(ev.Data)+160)
	b = append(b, `{"id":"`...)
	b = append(b, ev.ID...)
	b = append(b, `","type":"`...)
	b = append(b, ev.Type...)
	b = append(b, `","session_id":`...)
	if ev.SessionID == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = append(b, *ev.SessionID...)
		b = append(b, '"')
	}
	b = append(b, `,"sequence":`...)
	b = strconv.AppendInt(b, ev.Sequence, 10)
	b = append(b, `,"created_at":`...)
	t, err := ev.CreatedAt.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b = append(b, t...)
	b = append(b, `,"data":`...)
	if len(ev.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, ev.Data...)
	}
	return append(b, '}'), nil
}

// plainJSONString reports whether s needs no escaping in JSON (ids and
// event types always do not; anything else takes the slow path).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// addDeliveries queues ev for every enabled webhook of its session and
// every global one whose filter matches.
func (tx *Tx) addDeliveries(ev *wabsync.Event) error {
	targets, err := tx.webhookTargets(ev.SessionID, ev.Type)
	if err != nil {
		return err
	}
	if len(targets) > 0 {
		tx.dueDeliveries()
	}
	now := micros(ev.CreatedAt)
	for _, wh := range targets {
		if tx.deferred != nil && ev.SessionID != nil {
			tx.deferred.addDelivery(wabsync.NewID("dlv"), wh, ev)
			continue
		}
		if _, err := tx.Exec(`INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)`, wabsync.NewID("dlv"), wh, ev.ID, ev.Type, now, now, now); err != nil {
			return err
		}
	}
	return nil
}

// eventsMatch reports whether a webhook's stored filter (a JSON array of
// types or "*") accepts typ, without decoding JSON on the hot path.
func eventsMatch(filter, typ string) bool {
	return strings.Contains(filter, `"*"`) || strings.Contains(filter, `"`+typ+`"`)
}

// ListEvents returns up to limit events of a session with a sequence above
// after, in order.
func (db *DB) ListEvents(ctx context.Context, sessionID string, after int64, limit int) ([]*wabsync.Event, error) {
	rows, err := db.query(ctx, (`SELECT body FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?`), sessionID, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*wabsync.Event
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var ev wabsync.Event
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			return nil, err
		}
		out = append(out, &ev)
	}
	return out, rows.Err()
}

// GetEvent returns one stored event by id.
func (db *DB) GetEvent(ctx context.Context, id string) (*wabsync.Event, error) {
	var body string
	err := db.queryRow(ctx, (`SELECT body FROM events WHERE id = ?`), id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wabsync.NotFound("Event")
	}
	if err != nil {
		return nil, err
	}
	var ev wabsync.Event
	return &ev, json.Unmarshal([]byte(body), &ev)
}

// LatestEventSeq returns the sequence of a session's newest event.
func (db *DB) LatestEventSeq(ctx context.Context, sessionID string) (int64, error) {
	var seq int64
	err := db.queryRow(ctx, (`SELECT event_seq FROM sessions WHERE id = ?`), sessionID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, wabsync.NotFound("Session")
	}
	return seq, err
}
