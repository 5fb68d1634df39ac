package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// putKeys stores n Idempotency-Key records in scope, at the db's clock.
func putKeys(tb testing.TB, db *store.DB, scope string, n int) {
	tb.Helper()
	err := db.Update(context.Background(), func(tx *store.Tx) error {
		for i := range n {
			if err := tx.PutIdempotent(scope, fmt.Sprintf("k-%d", i), "h", 201, []byte(`{}`)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// countKeys counts the records of scope ("" for all).
func countKeys(tb testing.TB, db *store.DB, scope string) int {
	tb.Helper()
	q, args := `SELECT COUNT(*) FROM idempotency_keys`, []any{}
	if scope != "" {
		q, args = q+` WHERE scope = $1`, []any{scope}
	}
	var n int
	if err := db.SQL().QueryRow(q, args...).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestPruneIdempotency: records past the 24 hours are deleted, in as many
// bounded transactions as it takes; younger ones stay.
func TestPruneIdempotency(t *testing.T) {
	db := testutil.MustOpenDB(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return t0 }
	putKeys(t, db, "send:old", 2500)
	db.Now = func() time.Time { return t0.Add(2 * time.Hour) }
	putKeys(t, db, "send:young", 3)
	db.Now = func() time.Time { return t0.Add(25 * time.Hour) }
	n, err := db.PruneIdempotency(context.Background())
	if err != nil || n != 2500 {
		t.Fatalf("pruned %d, err %v; want 2500", n, err)
	}
	if old, young := countKeys(t, db, "send:old"), countKeys(t, db, "send:young"); old != 0 || young != 3 {
		t.Fatalf("left %d old and %d young records; want 0 and 3", old, young)
	}
}

// TestDeleteSessionDeletesIdempotency: a session's records (its sends and
// its webhooks) go with it, in the same transaction; others' stay.
func TestDeleteSessionDeletesIdempotency(t *testing.T) {
	db := testutil.MustOpenDB(t)
	a := newSession(t, db, wabsync.StatusStopped)
	b := newSession(t, db, wabsync.StatusStopped)
	for _, s := range []string{store.SendScope(a.ID), store.WebhooksScope(a.ID), store.SendScope(b.ID), store.WebhooksScope("global")} {
		putKeys(t, db, s, 2)
	}
	if err := db.DeleteSession(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, db, store.SendScope(a.ID)) + countKeys(t, db, store.WebhooksScope(a.ID)); n != 0 {
		t.Fatalf("%d records of the deleted session left", n)
	}
	if n := countKeys(t, db, ""); n != 4 {
		t.Fatalf("%d records left in all, want the other session's and the global 4", n)
	}
}
