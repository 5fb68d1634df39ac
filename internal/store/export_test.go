package store

import (
	"context"
	"time"
)

// ForSessionForTest routes ctx's changes to the writer lane of a session,
// as the store's session-scoped changes are.
var ForSessionForTest = forSession

// QueuedForTest reports how many requests' changes wait in the lane ctx
// routes to.
func QueuedForTest(db *DB, ctx context.Context) int { return len(db.writer.laneOf(ctx).ch) }

// SetSessionTTLForTest sets how long the session cache serves an entry
// without a notification; call it before the cache is used.
func SetSessionTTLForTest(db *DB, d time.Duration) { db.sessions.ttl = d }
