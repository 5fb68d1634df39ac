package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// AcquireFree takes sessions with no lease, an expired one or (stealing, on
// a single node) another node id's live one — never this node's own live
// lease, whose runner holds its token — and logs each holding.
func TestAcquireFree(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	for _, n := range []string{"me", "old"} {
		if err := db.RegisterNode(ctx, n, "http://"+n, 10); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]string{}
	for _, name := range []string{"free", "own", "other", "expired", "late", "undesired"} {
		s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: name, Engine: wabsync.EngineSandbox, Status: wabsync.StatusStopped}
		if err := db.CreateSession(ctx, s, store.HashToken(store.NewSessionToken())); err != nil {
			t.Fatal(err)
		}
		ids[name] = s.ID
		if name != "undesired" {
			if err := db.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.Exec(`UPDATE sessions SET desired = 1 WHERE id = ?`, s.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	take := func(id, node string, ttl time.Duration) store.Lease {
		l, ok, _, err := db.AcquireLease(ctx, id, node, ttl, false)
		if err != nil || !ok {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		return l
	}
	own := take(ids["own"], "me", time.Minute)
	take(ids["other"], "old", time.Minute)
	take(ids["expired"], "old", -time.Second)
	// This node's lease expired (a late heartbeat) while its runner runs.
	late := take(ids["late"], "me", -time.Second)
	running := func(id string) bool { return id == ids["late"] }

	got := func(steal bool) map[string]store.Lease {
		ls, err := db.AcquireFree(ctx, "me", time.Minute, 100, steal, running)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]store.Lease{}
		for _, l := range ls {
			if l.NodeID != "me" || l.Token == 0 {
				t.Fatalf("lease %+v", l)
			}
			m[l.SessionID] = l
		}
		return m
	}
	first := got(false)
	if len(first) != 2 || first[ids["free"]].Token != 1 || first[ids["expired"]].Token != 2 {
		t.Fatalf("without stealing took %v, want free (token 1) and expired (token 2)", first)
	}
	second := got(true)
	if len(second) != 1 || second[ids["other"]].Token != 2 {
		t.Fatalf("stealing took %v, want only other's", second)
	}
	if again := got(true); len(again) != 0 {
		t.Fatalf("took %v again: this node's own live leases must stay as they are", again)
	}
	if n, _, _ := db.LeaseOwner(ctx, ids["own"]); n != "me" {
		t.Fatalf("own owned by %q", n)
	}
	log, err := db.LeaseLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]int64{}
	for _, e := range log {
		if e.ReleasedAt == nil {
			if _, dup := open[e.SessionID]; dup && e.NodeID == "me" {
				t.Fatalf("two open log entries of me for %s", e.SessionID)
			}
			if e.NodeID == "me" {
				open[e.SessionID] = e.Token
			}
		}
	}
	if open[ids["own"]] != own.Token || open[ids["late"]] != late.Token || open[ids["free"]] != 1 || open[ids["other"]] != 2 || open[ids["expired"]] != 2 {
		t.Fatalf("open log entries of me: %v", open)
	}
}
