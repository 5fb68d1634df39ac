package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/wabsync/wabsync"
)

// Node is a WabSync process sharing the database.
type Node struct {
	ID          string    `json:"id"`
	Address     string    `json:"address"`
	Capacity    int       `json:"capacity"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	Stopped     bool      `json:"stopped"`
	Sessions    int       `json:"sessions"`
	Alive       bool      `json:"alive"`
}

// Lease is a node's ownership of a session; Token fences the owner's writes.
type Lease struct {
	SessionID string
	NodeID    string
	Token     int64
	ExpiresAt time.Time
}

// ErrLeaseLost is returned for a write fenced by a lease the node no longer
// holds: another node owns the session now.
var ErrLeaseLost = errors.New("store: the session's lease is held by another node")

type fenceKey struct{}

type fence struct {
	session, node string
	token         int64
}

// WithFence returns ctx whose writes through Update are refused unless the
// node still holds the session's lease with token.
func WithFence(ctx context.Context, sessionID, nodeID string, token int64) context.Context {
	return context.WithValue(ctx, fenceKey{}, fence{sessionID, nodeID, token})
}

// checkFence verifies the job's fence inside its transaction. On PostgreSQL
// the lease row is share-locked, so a takeover waits for this commit.
func (t *Tx) checkFence(ctx context.Context) error {
	f, ok := ctx.Value(fenceKey{}).(fence)
	if !ok || t.db.leasesElsewhere {
		return nil
	}
	lock := ""
	if t.db.dialect == Postgres {
		// KEY SHARE: it holds off a new owner (leaseOwnerLock), not this
		// node's heartbeat renewing the lease (an UPDATE of expires_at).
		lock = " FOR KEY SHARE"
	}
	var one int
	err := t.QueryRow(`SELECT 1 FROM session_leases WHERE session_id = ? AND node_id = ? AND token = ?`+lock, f.session, f.node, f.token).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		var node string
		var token int64
		_ = t.QueryRow(`SELECT node_id, token FROM session_leases WHERE session_id = ?`, f.session).Scan(&node, &token)
		return fmt.Errorf("%w (fence %s/%d, lease now %q/%d)", ErrLeaseLost, f.node, f.token, node, token)
	}
	return err
}

// logBySession makes SQLite find a session's lease_log entries through the
// session's index. Left to itself it picks the index of the node's open
// entries (an equality on all its columns), which holds every session the
// node runs: each release or acquisition then scanned them all (measured:
// 20 of 34 s of CPU restarting 10,000 sessions). PostgreSQL plans from
// statistics.
func (db *DB) logBySession() string {
	if db.dialect == Postgres {
		return ""
	}
	return " INDEXED BY lease_log_session"
}

// RegisterNode records (or refreshes) this node.
func (db *DB) RegisterNode(ctx context.Context, id, address string, capacity int) error {
	now := micros(db.Now())
	return db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(`INSERT INTO nodes (id, address, capacity, started_at, heartbeat_at, stopped) VALUES (?, ?, ?, ?, ?, 0)
			ON CONFLICT (id) DO UPDATE SET address = excluded.address, capacity = excluded.capacity,
			started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped = 0`, id, address, capacity, now, now); err != nil {
			return err
		}
		// A starting process runs no session: leases left under its id by
		// an earlier process of the same id (that crashed) are free now.
		if _, err := tx.Exec(`UPDATE session_leases SET expires_at = 0 WHERE node_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE lease_log SET released_at = ? WHERE node_id = ? AND released_at IS NULL`, now, id)
		return err
	})
}

// StopNode marks a node stopped (graceful shutdown).
func (db *DB) StopNode(ctx context.Context, id string) error {
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`UPDATE nodes SET stopped = 1, heartbeat_at = ? WHERE id = ?`, micros(db.Now()), id)
		return err
	})
}

// Heartbeat renews the node and every lease it holds, and returns the
// leases it still holds.
// With single (one node on SQLite), leases that expired because a heartbeat
// came late are renewed too: no other node can have taken them.
func (db *DB) Heartbeat(ctx context.Context, nodeID string, ttl time.Duration, single bool) ([]Lease, error) {
	now := db.Now()
	var out []Lease
	err := db.UpdateNow(ctx, func(tx *Tx) error {
		out = out[:0]
		if _, err := tx.Exec(`UPDATE nodes SET heartbeat_at = ?, stopped = 0 WHERE id = ?`, micros(now), nodeID); err != nil {
			return err
		}
		exp := micros(now.Add(ttl))
		// Only leases that have not expired can be renewed: an expired lease
		// may already be someone else's.
		renew := `UPDATE session_leases SET expires_at = ? WHERE node_id = ? AND expires_at >= ?`
		if db.dialect == Postgres {
			// Fenced writes hold their lease FOR KEY SHARE, which this
			// does not wait for. Rows locked by a change of owner right now
			// are left for the next heartbeat (a third of a lease later)
			// instead of waited for: waiting could deadlock with it. (With
			// fences FOR SHARE, the lease of a session whose writes never
			// stopped was skipped at every heartbeat and lost: measured at
			// 1,000 msg/s, the session stopped and restarted every few
			// seconds.)
			renew = `UPDATE session_leases SET expires_at = ? WHERE session_id IN (
				SELECT session_id FROM session_leases WHERE node_id = ? AND expires_at >= ? FOR NO KEY UPDATE SKIP LOCKED)`
		}
		since := micros(now)
		if single {
			since = 0
		}
		if _, err := tx.Exec(renew, exp, nodeID, since); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE lease_log SET renewed_at = ? WHERE node_id = ? AND released_at IS NULL
			AND EXISTS (SELECT 1 FROM session_leases l WHERE l.session_id = lease_log.session_id AND l.node_id = lease_log.node_id
				AND l.token = lease_log.token AND l.expires_at = ?)`,
			micros(now), nodeID, exp); err != nil {
			return err
		}
		// Held: the leases renewed now, and those left for the next
		// heartbeat (locked by a change of owner) that will still run for
		// longer than until then — the node keeps running those instead of
		// stopping and restarting them under load; one not renewed by the
		// next heartbeat either is dropped before it expires.
		rows, err := tx.Query(`SELECT session_id, token, expires_at FROM session_leases WHERE node_id = ? AND (expires_at = ? OR expires_at >= ?)`,
			nodeID, exp, micros(now.Add(ttl/2)))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			l := Lease{NodeID: nodeID}
			var e int64
			if err := rows.Scan(&l.SessionID, &l.Token, &e); err != nil {
				return err
			}
			l.ExpiresAt = fromMicros(e)
			out = append(out, l)
		}
		return rows.Err()
	})
	return out, err
}

// AcquireLease takes the session's lease for nodeID if it is free, expired
// or already this node's, with a new token. ok is false when another node
// holds it; owner then names that node.
// With steal (a single node on SQLite, restarting) any lease is taken. The
// session is marked as wanting to run in the same transaction, so that no
// node sees a held lease of a session that does not want to run.
func (db *DB) AcquireLease(ctx context.Context, sessionID, nodeID string, ttl time.Duration, steal bool) (l Lease, ok bool, owner string, err error) {
	err = db.Update(ctx, func(tx *Tx) error {
		l, ok, owner, err = tx.acquireLease(sessionID, nodeID, ttl, steal)
		if err != nil || !ok {
			return err
		}
		_, err = tx.Exec(`UPDATE sessions SET desired = 1 WHERE id = ?`, sessionID)
		return err
	})
	return l, ok, owner, err
}

// leaseOwnerLock locks the leases of these sessions (those that exist)
// before their owner changes, on PostgreSQL: FOR UPDATE, the one row lock
// that waits for the writes fenced on them (FOR KEY SHARE, checkFence) to
// commit, which an upsert's own lock (FOR NO KEY UPDATE) would not. In
// session order, as every multi-lease lock is taken.
func (tx *Tx) leaseOwnerLock(sessionIDs []any) error {
	if tx.db.dialect != Postgres || len(sessionIDs) == 0 {
		return nil
	}
	in, args := inList(sessionIDs)
	rows, err := tx.Query(`SELECT session_id FROM session_leases WHERE session_id IN (`+in+`) ORDER BY session_id FOR UPDATE`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

func (tx *Tx) acquireLease(sessionID, nodeID string, ttl time.Duration, steal bool) (Lease, bool, string, error) {
	now := tx.db.Now()
	exp := now.Add(ttl)
	cutoff := micros(now)
	if steal {
		cutoff = math.MaxInt64
	}
	if err := tx.leaseOwnerLock([]any{sessionID}); err != nil {
		return Lease{}, false, "", err
	}
	var token int64
	err := tx.QueryRow(`INSERT INTO session_leases (session_id, node_id, token, expires_at, acquired_at) VALUES (?, ?, 1, ?, ?)
		ON CONFLICT (session_id) DO UPDATE SET node_id = excluded.node_id, token = session_leases.token + 1,
			expires_at = excluded.expires_at, acquired_at = excluded.acquired_at
		WHERE session_leases.expires_at < ? OR session_leases.node_id = excluded.node_id
		RETURNING token`, sessionID, nodeID, micros(exp), micros(now), cutoff).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		var owner string
		if err := tx.QueryRow(`SELECT node_id FROM session_leases WHERE session_id = ?`, sessionID).Scan(&owner); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Lease{}, false, "", err
		}
		return Lease{}, false, owner, nil
	}
	if err != nil {
		if isForeignKeyViolation(err) {
			return Lease{}, false, "", wabsync.NotFound("Session")
		}
		return Lease{}, false, "", err
	}
	// Close this session's earlier log entries of this node (a re-acquire).
	if _, err := tx.Exec(`UPDATE lease_log`+tx.db.logBySession()+` SET released_at = ? WHERE session_id = ? AND node_id = ? AND released_at IS NULL`, micros(now), sessionID, nodeID); err != nil {
		return Lease{}, false, "", err
	}
	if _, err := tx.Exec(`INSERT INTO lease_log (id, session_id, node_id, token, acquired_at, renewed_at) VALUES (?, ?, ?, ?, ?, ?)`,
		wabsync.NewID("lease"), sessionID, nodeID, token, micros(now), micros(now)); err != nil {
		return Lease{}, false, "", err
	}
	return Lease{SessionID: sessionID, NodeID: nodeID, Token: token, ExpiresAt: exp}, true, nodeID, nil
}

// AcquireFree takes up to limit sessions that want to run and have no live
// owner. It returns the leases taken. With steal (a single node on SQLite,
// restarting) leases of other node ids are taken even if live (an earlier
// process of this node); never this node's own live leases: those belong
// to sessions running here, whose runners hold their tokens — re-taking
// one with a new token made its runner look as if it had lost it. For the
// same reason sessions for which running says true (a runner here, whose
// lease may have expired only because a heartbeat came late) are skipped.
func (db *DB) AcquireFree(ctx context.Context, nodeID string, ttl time.Duration, limit int, steal bool, running func(sessionID string) bool) ([]Lease, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.query(ctx, (`SELECT s.id FROM sessions s LEFT JOIN session_leases l ON l.session_id = s.id
		WHERE s.desired = 1 AND (l.session_id IS NULL OR l.expires_at < ? OR (? = 1 AND l.node_id <> ?)) ORDER BY s.id LIMIT ?`),
		micros(db.Now()), b2i(steal), nodeID, limit)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		if running == nil || !running(id) {
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return nil, err
	}
	var out []Lease
	err = db.Update(ctx, func(tx *Tx) error {
		out = out[:0]
		for start := 0; start < len(ids); start += bulkChunk {
			ls, err := tx.acquireFree(ids[start:min(start+bulkChunk, len(ids))], nodeID, ttl, steal)
			if err != nil {
				return err
			}
			out = append(out, ls...)
		}
		return nil
	})
	return out, err
}

// acquireFree takes the leases of ids that are free, expired or (with
// steal) another node's, in a few statements: acquireLease for many.
func (tx *Tx) acquireFree(ids []string, nodeID string, ttl time.Duration, steal bool) ([]Lease, error) {
	now := tx.db.Now()
	exp := now.Add(ttl)
	cand := make([][]any, len(ids))
	for i, id := range ids {
		cand[i] = []any{id, nodeID, micros(exp), micros(now)}
	}
	keys := make([]any, len(ids))
	for i, id := range ids {
		keys[i] = id
	}
	if err := tx.leaseOwnerLock(keys); err != nil {
		return nil, err
	}
	vals, args := valuesList("(?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT))", cand)
	args = append(args, micros(now), b2i(steal))
	// Sessions deleted since they were read fail the foreign key: they are
	// left out by joining on sessions (INSERT … SELECT).
	rows, err := tx.Query(`INSERT INTO session_leases (session_id, node_id, token, expires_at, acquired_at)
		SELECT DISTINCT v.column1, v.column2, 1, v.column3, v.column4 FROM (VALUES `+vals+`) v
		JOIN sessions s ON s.id = v.column1 WHERE true
		ON CONFLICT (session_id) DO UPDATE SET node_id = excluded.node_id, token = session_leases.token + 1,
			expires_at = excluded.expires_at, acquired_at = excluded.acquired_at
		WHERE session_leases.expires_at < ? OR (? = 1 AND session_leases.node_id <> excluded.node_id)
		RETURNING session_id, token`, args...)
	if err != nil {
		return nil, err
	}
	var out []Lease
	for rows.Next() {
		l := Lease{NodeID: nodeID, ExpiresAt: exp}
		if err := rows.Scan(&l.SessionID, &l.Token); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SessionID < out[j].SessionID })
	taken := make([]any, len(out))
	for i, l := range out {
		taken[i] = l.SessionID
	}
	in, inArgs := inList(taken)
	// Close this node's earlier log entries of these sessions (a re-acquire).
	if _, err := tx.Exec(`UPDATE lease_log`+tx.db.logBySession()+` SET released_at = ? WHERE node_id = ? AND released_at IS NULL AND session_id IN (`+in+`)`,
		append([]any{micros(now), nodeID}, inArgs...)...); err != nil {
		return nil, err
	}
	entries := make([][]any, len(out))
	for i, l := range out {
		entries[i] = []any{wabsync.NewID("lease"), l.SessionID, nodeID, l.Token, micros(now), micros(now)}
	}
	vals, args = valuesList("(?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))", entries)
	if _, err := tx.Exec(`INSERT INTO lease_log (id, session_id, node_id, token, acquired_at, renewed_at)
		SELECT DISTINCT column1, column2, column3, column4, column5, column6 FROM (VALUES `+vals+`) AS v`, args...); err != nil {
		return nil, err
	}
	return out, nil
}

// ReleaseLease gives up a lease (only if it is still this node's with token).
func (db *DB) ReleaseLease(ctx context.Context, sessionID, nodeID string, token int64) error {
	now := micros(db.Now())
	return db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(`DELETE FROM session_leases WHERE session_id = ? AND node_id = ? AND token = ?`, sessionID, nodeID, token); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE lease_log`+tx.db.logBySession()+` SET released_at = ? WHERE session_id = ? AND node_id = ? AND token = ? AND released_at IS NULL`, now, sessionID, nodeID, token); err != nil {
			return err
		}
		return tx.Notify(ChanLeases, nodeID)
	})
}

// LeaseOwner returns the node that holds a live lease on the session and
// its address, or "" when nobody does.
func (db *DB) LeaseOwner(ctx context.Context, sessionID string) (nodeID, address string, err error) {
	err = db.queryRow(ctx, (`SELECT l.node_id, n.address FROM session_leases l JOIN nodes n ON n.id = l.node_id
		WHERE l.session_id = ? AND l.expires_at >= ?`), sessionID, micros(db.Now())).Scan(&nodeID, &address)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	return nodeID, address, err
}

// ClusterCounts returns how many sessions want to run and how many nodes
// are alive (heartbeat within aliveWithin, not stopped).
func (db *DB) ClusterCounts(ctx context.Context, aliveWithin time.Duration) (desired, alive int, err error) {
	if err = db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE desired = 1`).Scan(&desired); err != nil {
		return
	}
	err = db.queryRow(ctx, (`SELECT COUNT(*) FROM nodes WHERE stopped = 0 AND heartbeat_at >= ?`),
		micros(db.Now().Add(-aliveWithin))).Scan(&alive)
	return
}

// ListNodes returns every node known, with its live session count.
func (db *DB) ListNodes(ctx context.Context, aliveWithin time.Duration) ([]Node, error) {
	now := db.Now()
	rows, err := db.query(ctx, (`SELECT n.id, n.address, n.capacity, n.started_at, n.heartbeat_at, n.stopped,
		(SELECT COUNT(*) FROM session_leases l WHERE l.node_id = n.id AND l.expires_at >= ?)
		FROM nodes n ORDER BY n.id`), micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Node{}
	for rows.Next() {
		var n Node
		var started, hb int64
		var stopped int
		if err := rows.Scan(&n.ID, &n.Address, &n.Capacity, &started, &hb, &stopped, &n.Sessions); err != nil {
			return nil, err
		}
		n.StartedAt, n.HeartbeatAt, n.Stopped = fromMicros(started), fromMicros(hb), stopped == 1
		n.Alive = !n.Stopped && now.Sub(n.HeartbeatAt) <= aliveWithin
		out = append(out, n)
	}
	return out, rows.Err()
}

// LeaseLogEntry is one holding of a lease, for checking that no session ran
// on two nodes at once.
type LeaseLogEntry struct {
	SessionID  string
	NodeID     string
	Token      int64
	AcquiredAt time.Time
	RenewedAt  time.Time
	ReleasedAt *time.Time
}

// LeaseLog returns the whole lease log, by session then time.
func (db *DB) LeaseLog(ctx context.Context) ([]LeaseLogEntry, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT session_id, node_id, token, acquired_at, renewed_at, released_at FROM lease_log ORDER BY session_id, acquired_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LeaseLogEntry
	for rows.Next() {
		var e LeaseLogEntry
		var a, r int64
		var rel sql.NullInt64
		if err := rows.Scan(&e.SessionID, &e.NodeID, &e.Token, &a, &r, &rel); err != nil {
			return nil, err
		}
		e.AcquiredAt, e.RenewedAt = fromMicros(a), fromMicros(r)
		if rel.Valid {
			t := fromMicros(rel.Int64)
			e.ReleasedAt = &t
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func isForeignKeyViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return contains(s, "FOREIGN KEY constraint failed") || contains(s, "SQLSTATE 23503")
}

// UndesiredOwned returns the sessions this node holds that no longer want
// to run (disconnected or logged out through another node).
func (db *DB) UndesiredOwned(ctx context.Context, nodeID string) ([]string, error) {
	rows, err := db.query(ctx, (`SELECT l.session_id FROM session_leases l JOIN sessions s ON s.id = l.session_id
		WHERE l.node_id = ? AND s.desired = 0`), nodeID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
