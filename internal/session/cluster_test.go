package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/engine/sandbox"
	"github.com/wabsync/wabsync/internal/session"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// On a single node (SQLite; on PostgreSQL the same node alone), the takeover
// loop must not take the lease of a session that runs here: with a new token, the runner's own one looked lost and
// the session was stopped and started again every few seconds ("lease
// lost; stopping the session here"). Here a session that wants to run but
// cannot start (its engine is unknown) keeps the loop looking for room
// every round, next to a running session with a lower id.
func TestSingleNodeKeepsItsOwnLeases(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	for _, s := range [][3]string{{"ses_0001", wabsync.EngineSandbox, "+15557770001"}, {"ses_0002", "gone", "+15557770002"}} {
		if err := seedSession(db, s[0], s[1], s[2]); err != nil {
			t.Fatal(err)
		}
	}
	m := session.NewManager(session.Options{DB: db, Factories: map[string]wabsync.EngineFactory{wabsync.EngineSandbox: sandbox.NewNetwork(db, sandbox.Options{})},
		NodeID: "solo", SingleNode: db.Dialect() == store.SQLite, LeaseTTL: 3 * time.Second})
	if err := m.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	testutil.Eventually(t, 10*time.Second, func() bool {
		s, err := db.GetSession(ctx, "ses_0001")
		return err == nil && s.Status == wabsync.StatusConnected
	}, "the session connects")
	holdings := func() map[string]int {
		log, err := db.LeaseLog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, e := range log {
			n[e.SessionID]++
		}
		return n
	}
	// Rounds of the loop pass (each holds a lease once more: the unknown
	// engine's session, or, with the bug, the running one).
	testutil.Eventually(t, 20*time.Second, func() bool {
		m.Kick()
		n := holdings()
		return n["ses_0001"]+n["ses_0002"] >= 8
	}, "the cluster loop runs several rounds")
	if n := holdings()["ses_0001"]; n != 1 {
		t.Fatalf("the running session's lease was taken %d times, want once", n)
	}
	if s, _ := db.GetSession(ctx, "ses_0001"); s.Status != wabsync.StatusConnected {
		t.Fatalf("the running session is %s (%s)", s.Status, s.StatusReason)
	}
	if m.Engine("ses_0001") == nil {
		t.Fatal("the running session stopped")
	}
}
