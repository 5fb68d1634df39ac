package store

import "context"

// ForSessionForTest routes ctx's changes to the writer lane of a session,
// as the store's session-scoped changes are.
var ForSessionForTest = forSession

// QueuedForTest reports how many requests' changes wait in the lane ctx
// routes to.
func QueuedForTest(db *DB, ctx context.Context) int { return len(db.writer.laneOf(ctx).ch) }

const PGSessionTTLForTest = pgSessionTTL
