package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// Notifications of a batch reach listeners once each, after commit, and
// those of a change that fails are not sent (PostgreSQL; SQLite has one
// node and none).
func TestNotificationsOfABatch(t *testing.T) {
	testutil.RequirePostgres(t)
	db := testutil.MustOpenDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[string]int{}
	go db.Listen(ctx, []string{store.ChanOutbox, store.ChanMail}, func(ch, payload string) {
		mu.Lock()
		got[ch+" "+payload]++
		mu.Unlock()
	})
	count := func(k string) int {
		mu.Lock()
		defer mu.Unlock()
		return got[k]
	}
	// The listener is up once a probe notification arrives.
	testutil.Eventually(t, 10*time.Second, func() bool {
		_ = db.Update(ctx, func(tx *store.Tx) error { return tx.Notify(store.ChanMail, "probe") })
		return count(store.ChanMail+" probe") > 0
	}, "the listener to start")

	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = db.Update(ctx, func(tx *store.Tx) error {
				if err := tx.Notify(store.ChanOutbox, "ses_a"); err != nil {
					return err
				}
				if i%10 == 0 {
					return tx.Notify(store.ChanOutbox, "ses_b")
				}
				if i == 7 {
					if err := tx.Notify(store.ChanOutbox, "ses_failed"); err != nil {
						return err
					}
					return context.Canceled // this change fails: nothing of it is sent
				}
				return nil
			})
		}()
	}
	wg.Wait()
	testutil.Eventually(t, 10*time.Second, func() bool {
		return count(store.ChanOutbox+" ses_a") > 0 && count(store.ChanOutbox+" ses_b") > 0
	}, "the batch's notifications")
	time.Sleep(200 * time.Millisecond)
	if n := count(store.ChanOutbox + " ses_failed"); n != 0 {
		t.Fatalf("a failed change's notification was sent %d times", n)
	}
}
