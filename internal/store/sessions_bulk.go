package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/wabsync/wabsync"
)

// bulkChunk is how many sessions one bulk transaction changes: large enough
// that a restart of 10,000 sessions costs a few dozen transactions instead
// of one each, small enough to keep statements within the dialects'
// parameter limits and each transaction's locks short.
const bulkChunk = 500

// BulkStatus says what SetStatuses does besides setting the status.
type BulkStatus struct {
	// Desire marks the sessions as wanting to run.
	Desire bool
	// Release gives up the leases in the same transaction (hand-back).
	Release bool
	// Accept, when set, is asked about each session before it is changed;
	// sessions it refuses are left as they are and returned in refused.
	Accept func(*wabsync.Session) bool
}

// SetStatuses stores one transition — status st with its reason — for many
// sessions, each fenced by its lease: a session whose lease is no longer
// this node's with that token is left out, as a fenced ModifySession would
// fail. Every changed session gets its session.status event (with its next
// sequence and webhook deliveries) in the same transaction as its row. It
// works in transactions of up to bulkChunk sessions and returns the
// sessions it wrote, as stored, and those Accept refused. On error some
// chunks may have been written; they are returned too.
func (db *DB) SetStatuses(ctx context.Context, leases []Lease, st wabsync.SessionStatus, reason string, o BulkStatus) (written, refused []*wabsync.Session, err error) {
	ls := append([]Lease(nil), leases...)
	// One order everywhere: rows are locked in id order on PostgreSQL.
	sort.Slice(ls, func(i, j int) bool { return ls[i].SessionID < ls[j].SessionID })
	var mu sync.Mutex
	var wg sync.WaitGroup
	// A few chunks are queued at a time: the group-commit writer may put
	// them into one transaction, and what they hold stays bounded.
	sem := make(chan struct{}, 4)
	for start := 0; start < len(ls); start += bulkChunk {
		chunk := ls[start:min(start+bulkChunk, len(ls))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var w, r []*wabsync.Session
			e := db.Update(ctx, func(tx *Tx) error {
				var err error
				w, r, err = tx.setStatuses(chunk, st, reason, o)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if e != nil {
				if err == nil {
					err = e
				}
				return
			}
			written = append(written, w...)
			refused = append(refused, r...)
		}()
	}
	wg.Wait()
	return written, refused, err
}

// A bulk statement's text depends on how many rows it carries, and the
// SQLite writer prepares (and keeps) each text it meets: the lists are
// padded to one of a few lengths, so that each statement has few texts.
var padSizes = [...]int{1, 8, 64, 512}

func padLen(n int) int {
	for _, s := range padSizes {
		if n <= s {
			return s
		}
	}
	return n
}

func placeholders(n int) string {
	return "?" + strings.Repeat(",?", n-1)
}

// inList returns the placeholders of an IN list of ids and its arguments,
// padded by repeating the last id (which changes nothing in an IN list).
func inList(ids []any) (string, []any) {
	n := padLen(len(ids))
	args := make([]any, n)
	copy(args, ids)
	for i := len(ids); i < n; i++ {
		args[i] = ids[len(ids)-1]
	}
	return placeholders(n), args
}

// valuesList returns a VALUES list of rows, each written as row (its
// placeholders), and their arguments, padded by repeating the last row: the
// statement must not mind identical rows (it selects DISTINCT from them, or
// is an UPDATE … FROM, which uses one of identical matches).
func valuesList(row string, rows [][]any) (string, []any) {
	n := padLen(len(rows))
	var b strings.Builder
	args := make([]any, 0, n*len(rows[0]))
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
		args = append(args, rows[min(i, len(rows)-1)]...)
	}
	return b.String(), args
}

// seqScanner scans a session row followed by its event_seq.
type seqScanner struct {
	rows *sql.Rows
	seq  *int64
}

func (s seqScanner) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.seq)...) }

// fencedIDs returns the ids of the sessions (sorted by id) whose lease is
// still held by the node with the token given: the fence of every session
// at once. On PostgreSQL the lease rows are locked so that no takeover
// commits before this transaction (FOR UPDATE when they are to be deleted).
func (tx *Tx) fencedIDs(leases []Lease, forDelete bool) ([]any, error) {
	want := make(map[string]int64, len(leases))
	all := make([]any, 0, len(leases))
	for _, l := range leases {
		want[l.SessionID] = l.Token
		all = append(all, l.SessionID)
	}
	in, args := inList(all)
	lock := ""
	if tx.db.dialect == Postgres {
		lock = " FOR KEY SHARE" // as checkFence
		if forDelete {
			lock = " FOR UPDATE"
		}
	}
	rows, err := tx.Query(`SELECT session_id, token FROM session_leases WHERE node_id = ? AND session_id IN (`+in+`) ORDER BY session_id`+lock,
		append([]any{leases[0].NodeID}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id string
		var token int64
		if err := rows.Scan(&id, &token); err != nil {
			return nil, err
		}
		if t, ok := want[id]; ok && t == token {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

// setStatuses is SetStatuses for one chunk (sorted by session id) in tx.
func (tx *Tx) setStatuses(leases []Lease, st wabsync.SessionStatus, reason string, o BulkStatus) (written, refused []*wabsync.Session, err error) {
	if len(leases) == 0 {
		return nil, nil, nil
	}
	node := leases[0].NodeID
	ids, err := tx.fencedIDs(leases, o.Release)
	if err != nil || len(ids) == 0 {
		return nil, nil, err
	}
	in, inArgs := inList(ids)
	rows, err := tx.Query(`SELECT `+sessionCols+`, event_seq FROM sessions WHERE id IN (`+in+`) ORDER BY id`+tx.db.forUpdate(), inArgs...)
	if err != nil {
		return nil, nil, err
	}
	type change struct {
		s    *wabsync.Session
		prev wabsync.SessionStatus
		seq  int64 // the event's sequence; 0: status and reason unchanged
	}
	var changes []change
	for rows.Next() {
		var seq int64
		s, err := scanSession(seqScanner{rows, &seq})
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		if o.Accept != nil && !o.Accept(s) {
			refused = append(refused, s)
			continue
		}
		c := change{s: s, prev: s.Status}
		if s.Status != st || s.StatusReason != reason {
			c.seq = seq + 1
		}
		changes = append(changes, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if len(changes) == 0 {
		return nil, refused, nil
	}
	now := tx.db.Now()
	var bumped, same []any
	for _, c := range changes {
		c.s.Status, c.s.StatusReason, c.s.UpdatedAt = st, reason, now
		if o.Desire {
			c.s.Desired = true
		}
		if c.seq > 0 {
			bumped = append(bumped, c.s.ID)
		} else {
			same = append(same, c.s.ID)
		}
		written = append(written, c.s)
	}
	// Leaving scan_qr clears the QR code (as ModifySession does); the bulk
	// statuses are never scan_qr nor connected (connected_at is not set here).
	set := `UPDATE sessions SET status = ?, status_reason = ?, updated_at = ?, qr = '', qr_expires_at = 0`
	if o.Desire {
		set += `, desired = 1`
	}
	for _, group := range []struct {
		ids  []any
		bump string
	}{{bumped, `, event_seq = event_seq + 1`}, {same, ``}} {
		if len(group.ids) == 0 {
			continue
		}
		gin, gargs := inList(group.ids)
		if _, err := tx.Exec(set+group.bump+` WHERE id IN (`+gin+`)`, append([]any{string(st), reason, micros(now)}, gargs...)...); err != nil {
			return nil, nil, err
		}
	}
	var evs []*wabsync.Event
	for _, c := range changes {
		if c.seq == 0 {
			continue
		}
		raw, err := json.Marshal(wabsync.SessionStatusData{Status: st, Previous: c.prev, Reason: reason, Phone: c.s.Phone, PushName: c.s.PushName})
		if err != nil {
			return nil, nil, err
		}
		id := c.s.ID
		evs = append(evs, &wabsync.Event{ID: wabsync.NewID("evt"), Type: wabsync.EventSessionStatus, SessionID: &id, Sequence: c.seq, CreatedAt: now, Data: raw})
	}
	if err := tx.insertEvents(evs); err != nil {
		return nil, nil, err
	}
	if o.Release {
		// By session id alone: the rows were checked (and, on PostgreSQL,
		// locked) above; with node_id SQLite would scan the node's index.
		if _, err := tx.Exec(`DELETE FROM session_leases WHERE session_id IN (`+in+`)`, inArgs...); err != nil {
			return nil, nil, err
		}
		if _, err := tx.Exec(`UPDATE lease_log`+tx.db.logBySession()+` SET released_at = ? WHERE node_id = ? AND released_at IS NULL AND session_id IN (`+in+`)`,
			append([]any{micros(now), node}, inArgs...)...); err != nil {
			return nil, nil, err
		}
		if err := tx.Notify(ChanLeases, node); err != nil {
			return nil, nil, err
		}
	}
	return written, refused, nil
}

// insertEvents stores events of sessions whose sequences were already
// taken, with their webhook deliveries, in a few statements, and does what
// AddEvent does after: notify other nodes, and the OnEvent hook after commit.
func (tx *Tx) insertEvents(evs []*wabsync.Event) error {
	if len(evs) == 0 {
		return nil
	}
	rows := make([][]any, 0, len(evs))
	sessions := make([]any, 0, len(evs))
	for _, ev := range evs {
		body, err := encodeEvent(ev)
		if err != nil {
			return err
		}
		rows = append(rows, []any{ev.ID, *ev.SessionID, ev.Sequence, ev.Type, string(body), micros(ev.CreatedAt)})
		sessions = append(sessions, *ev.SessionID)
	}
	vals, args := valuesList("(?, ?, CAST(? AS BIGINT), ?, ?, CAST(? AS BIGINT))", rows)
	if _, err := tx.Exec(`INSERT INTO events (id, session_id, seq, type, body, created_at)
		SELECT DISTINCT column1, column2, column3, column4, column5, column6 FROM (VALUES `+vals+`) AS v`, args...); err != nil {
		return err
	}
	if err := tx.addDeliveriesBulk(evs, sessions); err != nil {
		return err
	}
	if tx.db.dialect == Postgres {
		if tx.notified == nil {
			tx.notified = map[string]bool{}
		}
		var fresh []any
		for _, id := range sessions {
			if !tx.notified[id.(string)] {
				tx.notified[id.(string)] = true
				fresh = append(fresh, id)
			}
		}
		if len(fresh) > 0 {
			if _, err := tx.Exec(`SELECT pg_notify(?, id) FROM sessions WHERE id IN (`+placeholders(len(fresh))+`)`,
				append([]any{ChanEvents}, fresh...)...); err != nil {
				return err
			}
		}
	}
	if hook := tx.db.OnEvent; hook != nil {
		tx.AfterCommit(func() {
			for _, ev := range evs {
				hook(ev)
			}
		})
	}
	return nil
}

// addDeliveriesBulk is addDeliveries for many events of the given sessions:
// the webhooks are read once.
func (tx *Tx) addDeliveriesBulk(evs []*wabsync.Event, sessions []any) error {
	in, args := inList(sessions)
	rows, err := tx.Query(`SELECT id, session_id, events FROM webhooks WHERE enabled = 1 AND (session_id IS NULL OR session_id IN (`+in+`))`, args...)
	if err != nil {
		return err
	}
	type hook struct {
		id, events string
		session    sql.NullString
	}
	var hooks []hook
	for rows.Next() {
		var h hook
		if err := rows.Scan(&h.id, &h.session, &h.events); err != nil {
			rows.Close()
			return err
		}
		hooks = append(hooks, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(hooks) == 0 {
		return err
	}
	var batch [][]any
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		vals, args := valuesList("(?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))", batch)
		batch = batch[:0]
		tx.dueDeliveries()
		_, err := tx.Exec(`INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)
			SELECT DISTINCT column1, column2, column3, column4, 'pending', column5, column6, column7 FROM (VALUES `+vals+`) AS v`, args...)
		return err
	}
	for _, ev := range evs {
		now := micros(ev.CreatedAt)
		for _, h := range hooks {
			if h.session.Valid && h.session.String != *ev.SessionID || !eventsMatch(h.events, ev.Type) {
				continue
			}
			batch = append(batch, []any{wabsync.NewID("dlv"), h.id, ev.ID, ev.Type, now, now, now})
			if len(batch) == bulkChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// StatusItem is one session's transition for SetStatusEach.
type StatusItem struct {
	Lease  Lease // the session and the lease that fences the write
	Status wabsync.SessionStatus
	Reason string
	// Phone and PushName replace the stored ones when not empty.
	Phone, PushName string
}

// SetStatusEach stores transitions of many different sessions, each with
// its own status and reason, as ModifySession would one by one (fenced by
// each lease, the session.status event in the same transaction) but in
// transactions of up to bulkChunk sessions: for the bursts of engines
// connecting at once after a restart. It returns one error per item, nil
// when it was stored. Status may not be scan_qr.
func (db *DB) SetStatusEach(ctx context.Context, items []StatusItem) []error {
	errs := make([]error, len(items))
	for start := 0; start < len(items); start += bulkChunk {
		chunk := items[start:min(start+bulkChunk, len(items))]
		var out []error
		err := db.Update(ctx, func(tx *Tx) error {
			var err error
			out, err = tx.setStatusEach(chunk)
			return err
		})
		for i := range chunk {
			if err != nil {
				errs[start+i] = err
			} else {
				errs[start+i] = out[i]
			}
		}
	}
	return errs
}

func (tx *Tx) setStatusEach(items []StatusItem) ([]error, error) {
	errs := make([]error, len(items))
	leases := make([]Lease, len(items))
	at := make(map[string]int, len(items))
	for i, it := range items {
		if it.Status == wabsync.StatusScanQR {
			return nil, errors.New("store: SetStatusEach cannot store scan_qr")
		}
		if _, dup := at[it.Lease.SessionID]; dup {
			return nil, errors.New("store: SetStatusEach got a session twice")
		}
		leases[i], at[it.Lease.SessionID] = it.Lease, i
		errs[i] = fmt.Errorf("%w (fence %s/%d)", ErrLeaseLost, it.Lease.NodeID, it.Lease.Token)
	}
	ids, err := tx.fencedIDs(leases, false)
	if err != nil || len(ids) == 0 {
		return errs, err
	}
	in, inArgs := inList(ids)
	rows, err := tx.Query(`SELECT id, status, status_reason, phone, push_name, event_seq, connected_at FROM sessions WHERE id IN (`+
		in+`) ORDER BY id`+tx.db.forUpdate(), inArgs...)
	if err != nil {
		return nil, err
	}
	now := tx.db.Now()
	var set [][]any
	var evs []*wabsync.Event
	for rows.Next() {
		var id, status, reason, phone, push string
		var seq int64
		var connected sql.NullInt64
		if err := rows.Scan(&id, &status, &reason, &phone, &push, &seq, &connected); err != nil {
			rows.Close()
			return nil, err
		}
		i := at[id]
		it := items[i]
		errs[i] = nil
		prev := wabsync.SessionStatus(status)
		if it.Phone != "" {
			phone = it.Phone
		}
		if it.PushName != "" {
			push = it.PushName
		}
		if it.Status == wabsync.StatusConnected && prev != wabsync.StatusConnected {
			connected = sql.NullInt64{Int64: micros(now), Valid: true}
		}
		if it.Status != prev || it.Reason != reason {
			seq++
			raw, err := json.Marshal(wabsync.SessionStatusData{Status: it.Status, Previous: prev, Reason: it.Reason, Phone: phone, PushName: push})
			if err != nil {
				rows.Close()
				return nil, err
			}
			evs = append(evs, &wabsync.Event{ID: wabsync.NewID("evt"), Type: wabsync.EventSessionStatus, SessionID: &items[i].Lease.SessionID,
				Sequence: seq, CreatedAt: now, Data: raw})
		}
		var c any
		if connected.Valid {
			c = connected.Int64
		}
		set = append(set, []any{id, string(it.Status), it.Reason, phone, push, c, seq})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return errs, nil
	}
	vals, args := valuesList("(?, ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT))", set)
	// status is never scan_qr here: the QR code goes, as ModifySession
	// clears it when a session leaves scan_qr (it is empty otherwise).
	if _, err := tx.Exec(`UPDATE sessions SET status = v.column2, status_reason = v.column3, phone = v.column4, push_name = v.column5,
		connected_at = v.column6, event_seq = v.column7, updated_at = ?, qr = '', qr_expires_at = 0
		FROM (VALUES `+vals+`) AS v WHERE sessions.id = v.column1`, append([]any{micros(now)}, args...)...); err != nil {
		return nil, err
	}
	if err := tx.insertEvents(evs); err != nil {
		return nil, err
	}
	return errs, nil
}
