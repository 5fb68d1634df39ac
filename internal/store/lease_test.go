package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// twoNodes opens two stores (two nodes) on one new, migrated PostgreSQL
// database; the test is skipped without PostgreSQL.
func twoNodes(t *testing.T) (a, b *store.DB) {
	t.Helper()
	u := testutil.NewPostgresDatabase(t, testutil.RequirePostgres(t))
	open := func() *store.DB {
		db, err := store.Open(context.Background(), u, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return db
	}
	return open(), open()
}

// On PostgreSQL a write fenced on a session's lease holds the lease row
// while it commits. That must hold off a new owner, and must not hold off
// the owner's own heartbeat: a session whose writes never stop (a steady
// stream of messages) lost its lease when every heartbeat found the row
// locked and skipped it.
func TestLeaseUnderFencedWrites(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	for node, db := range map[string]*store.DB{"n1": a, "n2": b} {
		if err := db.RegisterNode(ctx, node, "127.0.0.1:1", 10); err != nil {
			t.Fatal(err)
		}
	}
	s := newSession(t, a, wabsync.StatusConnected)
	const ttl = time.Second
	l, ok, _, err := a.AcquireLease(ctx, s.ID, "n1", ttl, false)
	if err != nil || !ok {
		t.Fatalf("acquiring: %v, %v", ok, err)
	}

	// n1's write in flight: its fence check has locked the lease.
	fenced := store.WithFence(ctx, s.ID, "n1", l.Token)
	release := holdLane(t, a, fenced)
	time.Sleep(20 * time.Millisecond)
	held, err := a.Heartbeat(ctx, "n1", ttl, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].SessionID != s.ID || !held[0].ExpiresAt.After(l.ExpiresAt) {
		t.Fatalf("heartbeat during a fenced write: held %+v, want the lease renewed past %v", held, l.ExpiresAt)
	}

	// Once the lease has expired, n2 may take it, but not before n1's
	// write in flight has committed.
	time.Sleep(time.Until(held[0].ExpiresAt) + 10*time.Millisecond)
	type took struct {
		l   store.Lease
		ok  bool
		err error
	}
	taken := make(chan took, 1)
	go func() {
		l, ok, _, err := b.AcquireLease(ctx, s.ID, "n2", ttl, false)
		taken <- took{l, ok, err}
	}()
	select {
	case r := <-taken:
		t.Fatalf("n2 took the lease (%+v) while a write fenced on n1's was in flight", r)
	case <-time.After(300 * time.Millisecond):
	}
	if err := release(); err != nil {
		t.Fatalf("n1's fenced write, begun while its lease was valid: %v", err)
	}
	r := <-taken
	if r.err != nil || !r.ok || r.l.Token != l.Token+1 {
		t.Fatalf("n2 taking the expired lease: %+v", r)
	}
	// n1's next fenced write is refused.
	err = a.Update(fenced, func(*store.Tx) error { return nil })
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("n1 writing after the takeover: %v, want ErrLeaseLost", err)
	}
}
