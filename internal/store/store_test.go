package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

func TestMigrate(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	t.Run("Idempotent", func(t *testing.T) {
		n, err := db.Migrate(ctx)
		if err != nil || n != 0 {
			t.Fatalf("second migrate: applied %d, err %v", n, err)
		}
	})
	t.Run("RefusesNewerSchema", func(t *testing.T) {
		if err := db.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(`INSERT INTO wabsync_schema_version (version_id, is_applied) VALUES (9999, true)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Migrate(ctx); !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("want ErrSchemaTooNew, got %v", err)
		}
	})
}

func TestGroupCommit(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusStopped)
	// Many concurrent changes, some failing: the failures fail alone and
	// every good change commits exactly once.
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = db.Update(ctx, func(tx *store.Tx) error {
				if i%10 == 0 {
					if _, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"i": i}); err != nil {
						return err
					}
					return errors.New("boom")
				}
				_, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"i": i})
				return err
			})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if (i%10 == 0) != (err != nil) {
			t.Fatalf("change %d: err %v", i, err)
		}
	}
	evs, err := db.ListEvents(ctx, s.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 180 {
		t.Fatalf("want 180 events, got %d", len(evs))
	}
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d: sequences must be gapless", i, ev.Sequence)
		}
	}
}

func TestTokens(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	gen, err := db.EnsureAdminToken(ctx, "")
	if err != nil || gen == "" {
		t.Fatalf("first start must generate a token: %q %v", gen, err)
	}
	again, err := db.EnsureAdminToken(ctx, "")
	if err != nil || again != "" {
		t.Fatalf("second start must not generate: %q %v", again, err)
	}
	p, err := db.Authenticate(ctx, gen)
	if err != nil || !p.Admin {
		t.Fatalf("generated token: %+v %v", p, err)
	}
	if _, err := db.Authenticate(ctx, gen+"x"); wabsync.ErrorCode(err) != wabsync.EUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := db.EnsureAdminToken(ctx, "WBA|configured-token-1234567890"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, gen); wabsync.ErrorCode(err) != wabsync.EUnauthorized {
		t.Fatalf("a configured token replaces the generated one: %v", err)
	}
}

// TestCancelledChangesAreLeftOut: a change whose caller gave up before it
// ran is not written and fails with the caller's error, and the changes
// batched with it commit as usual.
func TestCancelledChangesAreLeftOut(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusStopped)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := ctx
			if i%2 == 1 {
				c = cancelled
			}
			errs[i] = db.Update(c, func(tx *store.Tx) error {
				_, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"i": i})
				return err
			})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			t.Fatalf("change %d failed: %v", i, err)
		}
		if i%2 == 1 && !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled change %d: err %v", i, err)
		}
	}
	evs, err := db.ListEvents(ctx, s.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 50 {
		t.Fatalf("%d events written; want the 50 not cancelled", len(evs))
	}
}

// TestCloseTwice: closing a database again does nothing (shutdown paths may
// close it twice).
func TestCloseTwice(t *testing.T) {
	db := testutil.MustOpenDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
}

// TestLongChangeEndsItsBatch: changes queued behind a change that took
// longer than a batch's time go in the next transaction — all of them, once.
func TestLongChangeEndsItsBatch(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusStopped)
	event := func(i int, before func()) {
		if err := db.Update(ctx, func(tx *store.Tx) error {
			if before != nil {
				before()
			}
			_, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"i": i})
			return err
		}); err != nil {
			t.Error(err)
		}
	}
	// A gate holds the writer while a long change and many short ones
	// queue up behind it, in that order.
	release, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); event(-2, func() { close(started); <-release }) }()
	<-started
	before := db.WriterStats()
	go func() { defer wg.Done(); event(-1, func() { time.Sleep(40 * time.Millisecond) }) }() // past maxBatchWork(PG)
	time.Sleep(20 * time.Millisecond)
	const n = 50
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); event(i, nil) }()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	after := db.WriterStats()
	if got := after.Changes - before.Changes; got != n+2 {
		t.Fatalf("%d changes committed, want %d", got, n+2)
	}
	// gate; long; the rest — not gate; long and the rest together.
	if b := after.Batches - before.Batches; b < 3 {
		t.Fatalf("the changes queued behind a long one went in its transaction (%d batches)", b)
	}
	evs, err := db.ListEvents(ctx, s.ID, 0, 1000)
	if err != nil || len(evs) != n+2 {
		t.Fatalf("%d events (%v), want %d", len(evs), err, n+2)
	}
}

// TestForegroundBeforeBackground: a change a request waits for runs before
// background changes that were queued earlier.
func TestForegroundBeforeBackground(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	var mu sync.Mutex
	var order []string
	change := func(ctx context.Context, name string, before func()) {
		if err := db.Update(ctx, func(tx *store.Tx) error {
			if before != nil {
				before()
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	release, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); change(ctx, "gate", func() { close(started); <-release }) }()
	<-started
	for i := range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); change(store.Background(ctx), fmt.Sprint("bg", i), nil) }()
	}
	time.Sleep(30 * time.Millisecond) // queued before the request's change
	wg.Add(1)
	go func() { defer wg.Done(); change(ctx, "request", nil) }()
	time.Sleep(30 * time.Millisecond)
	close(release)
	wg.Wait()
	if len(order) != 22 || order[0] != "gate" || order[1] != "request" {
		t.Fatalf("order %v: the request's change did not go first", order)
	}
}

// Two messages of a session to one chat that were given the same WhatsApp
// id (two nodes, one millisecond) are both stored: the second gets a new id
// rather than being dropped as a duplicate.
func TestAcceptKeepsMessageWithTakenWAID(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusConnected)
	waID := wabsync.NewWAID()
	var ids []string
	for range 2 {
		m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: s.ID, Direction: wabsync.DirectionOut, Chat: "15550000002@s.whatsapp.net",
			WAID: waID, To: "+15550000002", Kind: wabsync.KindText, Text: "hi"}
		if err := db.AcceptMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	first, err := db.GetMessage(ctx, s.ID, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	second, err := db.GetMessage(ctx, s.ID, ids[1])
	if err != nil {
		t.Fatalf("the second message was not stored: %v", err)
	}
	if first.WAID != waID || second.WAID == waID || second.WAID == "" {
		t.Fatalf("WhatsApp ids %q and %q; want %q and a new one", first.WAID, second.WAID, waID)
	}
}

// "sending" is written with the outcome: at the time the sender took the
// message, or, when a receipt overtakes the sender, at the receipt's time.
func TestSendingRecordedWithOutcome(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusConnected)
	accept := func() *wabsync.Message {
		m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: s.ID, Direction: wabsync.DirectionOut, Chat: "15550000002@s.whatsapp.net",
			WAID: wabsync.NewWAID(), To: "+15550000002", Kind: wabsync.KindText, Text: "hi"}
		if err := db.AcceptMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
		return m
	}
	history := func(id string) []wabsync.StatusChange {
		m, err := db.GetMessage(ctx, s.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		return m.StatusHistory
	}
	want := func(h []wabsync.StatusChange, sts ...wabsync.MessageStatus) {
		t.Helper()
		if len(h) != len(sts) {
			t.Fatalf("history %+v, want %v", h, sts)
		}
		for i, st := range sts {
			if h[i].Status != st || (i > 0 && h[i].At.Before(h[i-1].At)) {
				t.Fatalf("history %+v, want %v in time order", h, sts)
			}
		}
	}

	m := accept()
	began := db.Now()
	time.Sleep(5 * time.Millisecond)
	if err := db.MarkSent(ctx, s.ID, m.ID, time.Time{}, began); err != nil {
		t.Fatal(err)
	}
	h := history(m.ID)
	want(h, wabsync.MsgQueued, wabsync.MsgSending, wabsync.MsgSent)
	if h[1].At.Sub(began).Abs() > time.Microsecond || !h[2].At.After(h[1].At) {
		t.Fatalf("sending at %v, sent at %v; want sending at %v and sent later", h[1].At, h[2].At, began)
	}

	// A receipt before the sender recorded the outcome.
	m = accept()
	if err := db.ApplyReceipt(ctx, s.ID, []string{m.WAID}, wabsync.MsgDelivered, db.Now()); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkSent(ctx, s.ID, m.ID, time.Time{}, began); err != nil {
		t.Fatal(err)
	}
	want(history(m.ID), wabsync.MsgQueued, wabsync.MsgSending, wabsync.MsgSent, wabsync.MsgDelivered)

	m = accept()
	if err := db.MarkFailed(ctx, s.ID, m.ID, "NOT_ON_WHATSAPP", "no", time.Time{}); err != nil {
		t.Fatal(err)
	}
	want(history(m.ID), wabsync.MsgQueued, wabsync.MsgSending, wabsync.MsgFailed)
}

// newSession creates a sandbox session named "a" in status st.
func newSession(tb testing.TB, db *store.DB, st wabsync.SessionStatus) *wabsync.Session {
	tb.Helper()
	s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: "a", Engine: wabsync.EngineSandbox, Status: st}
	if err := db.CreateSession(context.Background(), s, store.HashToken(store.NewSessionToken())); err != nil {
		tb.Fatal(err)
	}
	return s
}
