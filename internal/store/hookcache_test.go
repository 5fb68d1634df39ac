package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// TestEventsFollowWebhookChanges: whichever webhooks exist, are enabled and
// want the type when an event is stored get a delivery of it — also when
// the webhooks change in between events, in the same batch, or in a change
// that rolls back.
func TestEventsFollowWebhookChanges(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusStopped)
	event := func() {
		t.Helper()
		if err := db.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"x": 1})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(w *wabsync.Webhook) int {
		t.Helper()
		l, err := db.ListDeliveries(ctx, w.ID, "", wabsync.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	event() // no webhooks yet
	w := &wabsync.Webhook{ID: wabsync.NewID("whk"), SessionID: &s.ID, URL: "https://example.com/a", Events: []string{"*"}, Enabled: true, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	if err := db.CreateWebhook(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	event()
	if n := count(w); n != 1 {
		t.Fatalf("after create: %d deliveries, want 1", n)
	}
	off := false
	if _, err := db.UpdateWebhook(ctx, &s.ID, w.ID, store.WebhookPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	event()
	if n := count(w); n != 1 {
		t.Fatalf("after disable: %d deliveries, want still 1", n)
	}
	on := true
	if _, err := db.UpdateWebhook(ctx, &s.ID, w.ID, store.WebhookPatch{Enabled: &on, Events: []string{wabsync.EventMessageSent}}); err != nil {
		t.Fatal(err)
	}
	event()
	if n := count(w); n != 1 {
		t.Fatalf("after filtering the type out: %d deliveries, want still 1", n)
	}
	if _, err := db.UpdateWebhook(ctx, &s.ID, w.ID, store.WebhookPatch{Events: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	// A change that creates a webhook and an event, then fails: nothing of
	// it stays, and the next event goes only to the webhook that exists.
	ghost := &wabsync.Webhook{ID: wabsync.NewID("whk"), SessionID: &s.ID, URL: "https://example.com/b", Events: []string{"*"}, Enabled: true}
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(`INSERT INTO webhooks (id, session_id, url, events, enabled, description, disabled_reason, secret, created_at, updated_at)
			VALUES (?, ?, ?, '["*"]', 1, '', '', 'x', 0, 0)`, ghost.ID, s.ID, ghost.URL); err != nil {
			return err
		}
		if _, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"x": 2}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	event()
	if n := count(w); n != 2 {
		t.Fatalf("after the failed change: %d deliveries, want 2", n)
	}
	if err := db.DeleteWebhook(ctx, &s.ID, w.ID); err != nil {
		t.Fatal(err)
	}
	event() // must not refer to the deleted webhook
}
