package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/wabsync/wabsync"
)

// seqCache keeps sessions' message and event sequence counters in memory for
// the writer. Each message used to bump a counter row three to five times
// (accept, sent, received, delivered: one statement each); now a batch reads
// a session's counters once and writes them back once, just before it
// commits. A rollback forgets them; a statement of other code that reads or
// writes the counters first gets them written back and forgotten.
//
// On SQLite the writer goroutine is the only one that changes the counters,
// so one cache lives across batches. On PostgreSQL other nodes change them
// too: each batch has its own cache (lock), which reads a session's counters
// FOR UPDATE, so another node's batch waits for this one to commit.
type seqCache struct {
	m     map[string]*seqs
	dirty []string
	// lock: read the counters FOR UPDATE (PostgreSQL, where the cache lives
	// for one batch: other nodes change the counters between batches).
	lock bool
}

type seqs struct {
	msg, event int64
	dirty      bool
}

// maxSeqSessions bounds the cache; past it, it is emptied after a commit.
const maxSeqSessions = 50_000

const seqWriteBack = `UPDATE sessions SET msg_seq = ?, event_seq = ? WHERE id = ?`

// touchesSeqs reports whether q reads or writes the counters itself, or
// deletes sessions (whose counters must not outlive them).
func touchesSeqs(q string) bool {
	return strings.Contains(q, "event_seq") || strings.Contains(q, "msg_seq") || hasPrefixFold(trimSQL(q), "DELETE FROM sessions")
}

// nextSeq returns the next message (or event) sequence of a session.
func (t *Tx) nextSeq(sessionID string, event bool) (int64, error) {
	c := t.seqs
	if c == nil {
		q := `UPDATE sessions SET msg_seq = msg_seq + 1 WHERE id = ? RETURNING msg_seq`
		if event {
			q = `UPDATE sessions SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq`
		}
		var seq int64
		err := t.QueryRow(q, sessionID).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, wabsync.NotFound("Session")
		}
		return seq, err
	}
	s := c.m[sessionID]
	if s == nil {
		s = &seqs{}
		q := `SELECT msg_seq, event_seq FROM sessions WHERE id = ?`
		if c.lock {
			q += ` FOR UPDATE`
		}
		err := t.tx.QueryRowContext(t.ctx, t.db.rebind(q), sessionID).Scan(&s.msg, &s.event)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, wabsync.NotFound("Session")
		}
		if err != nil {
			return 0, err
		}
		c.m[sessionID] = s
	}
	if !s.dirty {
		s.dirty = true
		c.dirty = append(c.dirty, sessionID)
	}
	if event {
		s.event++
		return s.event, nil
	}
	s.msg++
	return s.msg, nil
}

// writeBack stores the counters changed in this transaction.
func (c *seqCache) writeBack(ctx context.Context, db *DB, tx *sql.Tx, stmts *writeStmts) error {
	if len(c.dirty) == 0 {
		return nil
	}
	var st *sql.Stmt
	if stmts != nil {
		if p, _ := stmts.lookup(seqWriteBack); p != nil {
			st = tx.StmtContext(ctx, p)
		}
	}
	for _, id := range c.dirty {
		s := c.m[id]
		if s == nil || !s.dirty {
			continue
		}
		var err error
		if st != nil {
			_, err = st.ExecContext(ctx, s.msg, s.event, id)
		} else {
			_, err = tx.ExecContext(ctx, db.rebind(seqWriteBack), s.msg, s.event, id)
		}
		if err != nil {
			return err
		}
		s.dirty = false
	}
	c.dirty = c.dirty[:0]
	return nil
}

// dirtyIDs returns the sessions whose counters changed (none for a nil
// cache).
func (c *seqCache) dirtyIDs() []string {
	if c == nil {
		return nil
	}
	return c.dirty
}

// forget empties the cache (after a rollback, or before other code uses the
// counters).
func (c *seqCache) forget() {
	clear(c.m)
	c.dirty = c.dirty[:0]
}

// committed trims the cache after a commit.
func (c *seqCache) committed() {
	if len(c.m) > maxSeqSessions {
		c.forget()
	}
}
