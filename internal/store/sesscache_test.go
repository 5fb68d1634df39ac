package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// TestCachedSession: a cached read never shows a session older than the last
// change that returned to its caller, on either database.
func TestCachedSession(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: "a", Engine: wabsync.EngineSandbox, Status: wabsync.StatusStopped,
		Metadata: map[string]any{"k": "v"}}
	if err := db.CreateSession(ctx, s, store.HashToken(store.NewSessionToken())); err != nil {
		t.Fatal(err)
	}
	got, err := db.CachedSession(ctx, s.ID)
	if err != nil || got.Name != "a" {
		t.Fatalf("first read: %+v, %v", got, err)
	}
	t.Run("CopyIsPrivate", func(t *testing.T) {
		got.Metadata["k"] = "changed by a caller"
		got.Name = "changed by a caller"
		again, err := db.CachedSession(ctx, s.ID)
		if err != nil || again.Name != "a" || again.Metadata["k"] != "v" {
			t.Fatalf("a caller's change leaked into the cache: %+v, %v", again, err)
		}
	})
	t.Run("ChangesShowAtOnce", func(t *testing.T) {
		for i := range 20 {
			name := fmt.Sprintf("name-%d", i)
			if _, err := db.ModifySession(ctx, s.ID, func(tx *store.Tx, s *wabsync.Session) error {
				s.Name, s.Status, s.StatusReason = name, wabsync.StatusStarting, name
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			got, err := db.CachedSession(ctx, s.ID)
			if err != nil || got.Name != name || got.StatusReason != name {
				t.Fatalf("after change %d: %+v, %v", i, got, err)
			}
		}
	})
	t.Run("ConcurrentReadersSeeEveryCommittedChange", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := db.CachedSession(ctx, s.ID); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		for i := range 50 {
			reason := fmt.Sprintf("reason-%d", i)
			if _, err := db.ModifySession(ctx, s.ID, func(tx *store.Tx, s *wabsync.Session) error {
				s.StatusReason = reason
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got, err := db.CachedSession(ctx, s.ID); err != nil || got.StatusReason != reason {
				t.Fatalf("change %d not seen: %+v, %v", i, got, err)
			}
		}
		close(stop)
		wg.Wait()
	})
	t.Run("DeletedIsNotFound", func(t *testing.T) {
		if _, err := db.CachedSession(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSession(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CachedSession(ctx, s.ID); wabsync.ErrorCode(err) != wabsync.ENotFound {
			t.Fatalf("deleted session still served: %v", err)
		}
	})
}

// A cached session is served for the cache's lifetime at most (on
// PostgreSQL, in case a notification of another node's change is missed):
// past it, a change made behind the store's back is seen.
func TestCachedSessionLifetime(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	store.SetSessionTTLForTest(db, 100*time.Millisecond)
	s := newSession(t, db, wabsync.StatusConnected)
	if _, err := db.CachedSession(ctx, s.ID); err != nil { // cached now
		t.Fatal(err)
	}
	// Not through a change of the store: nothing empties the cache.
	if _, err := db.SQL().ExecContext(ctx, `UPDATE sessions SET name = 'behind' WHERE id = '`+s.ID+`'`); err != nil {
		t.Fatal(err)
	}
	if got, err := db.CachedSession(ctx, s.ID); err != nil || got.Name == "behind" {
		t.Fatalf("at once: %v, %v; want the cached session", got, err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		got, err := db.CachedSession(ctx, s.ID)
		return err == nil && got.Name == "behind"
	}, "the cached session expired")
}
