package store

import (
	"context"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wabsync/wabsync"
)

// sessionCache keeps session rows read by CachedSession, so that the hot
// request paths (every GET /sessions/{id}, every send) do not read SQLite for
// a row that rarely changes.
//
// It is correct without knowing which session a write touched: every
// committed transaction that wrote the sessions table (other than the
// sequence counters and the QR, which CachedSession does not return) bumps
// the epoch and empties the cache before its caller hears of the commit, and
// an entry is used only while the epoch it was read under is current. A read
// that raced a write is stored under the old epoch and never served.
//
// On PostgreSQL other nodes change sessions too: a transaction that wrote
// the table also notifies every node (ChanSessions), whose cache is then
// emptied (SessionsChanged) — a few milliseconds after the commit, as if
// the read had come that much earlier. In case a notification is missed
// (the LISTEN connection was lost: Listen empties the cache when it is
// back), an entry is also used for ttl at most.
type sessionCache struct {
	epoch atomic.Uint64
	m     sync.Map      // session id → *cachedSession
	ttl   time.Duration // 0: for ever (SQLite)
}

type cachedSession struct {
	s     *wabsync.Session
	epoch uint64
	read  time.Time
}

// pgSessionTTL bounds how long a session row read on PostgreSQL is served
// from memory when no notification says it changed.
const pgSessionTTL = 2 * time.Second

// SessionsChanged empties the session cache: another node changed a session
// (ChanSessions).
func (db *DB) SessionsChanged() {
	if db.sessions != nil {
		db.sessions.invalidate()
	}
}

func (c *sessionCache) invalidate() {
	c.epoch.Add(1)
	c.m.Clear()
}

// writesSessions reports whether statement q may change a column that
// CachedSession returns. Unknown writes to the table count as changes, so a
// new statement can make the cache miss more, never serve stale rows.
func writesSessions(q string) bool {
	q = trimSQL(q)
	switch {
	case strings.HasPrefix(q, "UPDATE sessions SET msg_seq"),
		strings.HasPrefix(q, "UPDATE sessions SET event_seq"),
		strings.HasPrefix(q, "UPDATE sessions SET qr = "),
		strings.HasPrefix(q, "UPDATE sessions SET qr="):
		return false
	}
	return hasPrefixFold(q, "UPDATE sessions") || hasPrefixFold(q, "DELETE FROM sessions") ||
		hasPrefixFold(q, "INSERT INTO sessions") || hasPrefixFold(q, "WITH")
}

// trimSQL drops the leading white space of a statement (cheaply: most have
// none or a little).
func trimSQL(q string) string {
	for len(q) > 0 && (q[0] == ' ' || q[0] == '\n' || q[0] == '\t' || q[0] == '\r') {
		q = q[1:]
	}
	return q
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// CachedSession is GetSession served from memory when the row has not
// changed since it was last read (see sessionCache).
// The caller may change the returned session: it is a copy.
func (db *DB) CachedSession(ctx context.Context, id string) (*wabsync.Session, error) {
	c := db.sessions
	if c == nil {
		return db.GetSession(ctx, id)
	}
	epoch := c.epoch.Load()
	if v, ok := c.m.Load(id); ok {
		if e := v.(*cachedSession); e.epoch == epoch && (c.ttl == 0 || time.Since(e.read) < c.ttl) {
			return copySession(e.s), nil
		}
	}
	read := time.Now()
	s, err := db.GetSession(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.epoch.Load() == epoch {
		c.m.Store(id, &cachedSession{s: copySession(s), epoch: epoch, read: read})
	}
	return s, nil
}

func copySession(s *wabsync.Session) *wabsync.Session {
	cp := *s
	cp.Metadata = maps.Clone(s.Metadata)
	if s.ConnectedAt != nil {
		t := *s.ConnectedAt
		cp.ConnectedAt = &t
	}
	return &cp
}
