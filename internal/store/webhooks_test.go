package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// MustSession creates a session for the test.
func MustSession(tb testing.TB, db *store.DB) string {
	tb.Helper()
	s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: "s", Engine: wabsync.EngineSandbox, Status: wabsync.StatusStopped}
	if err := db.CreateSession(context.Background(), s, store.HashToken(store.NewSessionToken())); err != nil {
		tb.Fatal(err)
	}
	return s.ID
}

// MustWebhook creates an enabled webhook of session sid (nil: global).
func MustWebhook(tb testing.TB, db *store.DB, sid *string, url string, events ...string) *wabsync.Webhook {
	tb.Helper()
	if len(events) == 0 {
		events = []string{"*"}
	}
	w := &wabsync.Webhook{SessionID: sid, URL: url, Events: events, Enabled: true, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	if err := db.CreateWebhook(context.Background(), w, nil); err != nil {
		tb.Fatal(err)
	}
	return w
}

func TestWebhooks(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	sid := MustSession(t, db)
	other := MustSession(t, db)

	t.Run("CreateAndGet", func(t *testing.T) {
		w := MustWebhook(t, db, &sid, "https://example.com/a", wabsync.EventMessageReceived)
		got, err := db.GetWebhook(ctx, &sid, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.URL != w.URL || len(got.Events) != 1 || !got.Enabled || *got.SessionID != sid {
			t.Fatalf("got %+v", got)
		}
		if got.Secret != "" {
			t.Fatal("a read returned the secret")
		}
	})
	t.Run("ErrSessionNotFound", func(t *testing.T) {
		missing := "ses_missing"
		w := &wabsync.Webhook{SessionID: &missing, URL: "https://example.com", Events: []string{"*"}, Secret: "whsec_x"}
		if err := db.CreateWebhook(ctx, w, nil); wabsync.ErrorCode(err) != wabsync.ENotFound {
			t.Fatalf("want NOT_FOUND, got %v", err)
		}
	})
	t.Run("OtherScopeIsNotFound", func(t *testing.T) {
		w := MustWebhook(t, db, &sid, "https://example.com/b")
		for name, scope := range map[string]*string{"OtherSession": &other, "Global": nil} {
			if _, err := db.GetWebhook(ctx, scope, w.ID); wabsync.ErrorCode(err) != wabsync.ENotFound {
				t.Fatalf("%s: want NOT_FOUND, got %v", name, err)
			}
			if _, err := db.UpdateWebhook(ctx, scope, w.ID, store.WebhookPatch{}); wabsync.ErrorCode(err) != wabsync.ENotFound {
				t.Fatalf("%s: update: want NOT_FOUND, got %v", name, err)
			}
			if err := db.DeleteWebhook(ctx, scope, w.ID); wabsync.ErrorCode(err) != wabsync.ENotFound {
				t.Fatalf("%s: delete: want NOT_FOUND, got %v", name, err)
			}
		}
		g := MustWebhook(t, db, nil, "https://example.com/global")
		if _, err := db.GetWebhook(ctx, &sid, g.ID); wabsync.ErrorCode(err) != wabsync.ENotFound {
			t.Fatalf("global webhook through a session: want NOT_FOUND, got %v", err)
		}
	})
	t.Run("ListPages", func(t *testing.T) {
		s := MustSession(t, db)
		var ids []string
		for i := 0; i < 5; i++ {
			ids = append(ids, MustWebhook(t, db, &s, "https://example.com/l").ID)
		}
		var seen []string
		p := wabsync.Page{Limit: 2}
		for {
			l, err := db.ListWebhooks(ctx, &s, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range l.Items {
				seen = append(seen, w.ID)
			}
			if !l.HasMore {
				break
			}
			p.After = *l.NextCursor
		}
		if len(seen) != 5 {
			t.Fatalf("want 5, got %v", seen)
		}
		for i := range ids {
			if seen[i] != ids[i] {
				t.Fatalf("order: %v vs %v", seen, ids)
			}
		}
	})
	t.Run("UpdateDisablePausesEnableReleases", func(t *testing.T) {
		s := MustSession(t, db)
		w := MustWebhook(t, db, &s, "https://example.com/u")
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		off := false
		got, err := db.UpdateWebhook(ctx, &s, w.ID, store.WebhookPatch{Enabled: &off, Events: []string{wabsync.EventMessageSent}})
		if err != nil {
			t.Fatal(err)
		}
		if got.Enabled || got.DisabledReason != "" || got.Events[0] != wabsync.EventMessageSent {
			t.Fatalf("got %+v", got)
		}
		l := mustDeliveries(t, db, w.ID)
		if len(l) != 1 || l[0].Status != wabsync.DeliveryPending || l[0].NextAttemptAt != nil {
			t.Fatalf("disabled webhook's delivery should be paused: %+v", l[0])
		}
		on := true
		got, err = db.UpdateWebhook(ctx, &s, w.ID, store.WebhookPatch{Enabled: &on})
		if err != nil {
			t.Fatal(err)
		}
		if !got.Enabled || got.DisabledReason != "" {
			t.Fatalf("got %+v", got)
		}
		if l := mustDeliveries(t, db, w.ID); l[0].NextAttemptAt == nil {
			t.Fatal("enabled webhook's delivery should be due")
		}
	})
	t.Run("DeleteTakesDeliveries", func(t *testing.T) {
		s := MustSession(t, db)
		w := MustWebhook(t, db, &s, "https://example.com/d")
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		if err := db.DeleteWebhook(ctx, &s, w.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetWebhook(ctx, &s, w.ID); wabsync.ErrorCode(err) != wabsync.ENotFound {
			t.Fatalf("want NOT_FOUND, got %v", err)
		}
		if l := mustDeliveries(t, db, w.ID); len(l) != 0 {
			t.Fatalf("deliveries left: %d", len(l))
		}
	})
	t.Run("RotateKeepsOldSecretForGrace", func(t *testing.T) {
		w := MustWebhook(t, db, &sid, "https://example.com/r")
		now := db.Now()
		got, err := db.RotateWebhookSecret(ctx, &sid, w.ID, "whsec_new", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Secret != "whsec_new" {
			t.Fatalf("rotation returned secret %q", got.Secret)
		}
		sec, err := db.WebhookSecrets(ctx, w.ID, now.Add(30*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(sec) != 2 || sec[0] != "whsec_new" || sec[1] != w.Secret {
			t.Fatalf("in grace: %d secrets", len(sec))
		}
		sec, _ = db.WebhookSecrets(ctx, w.ID, now.Add(2*time.Hour))
		if len(sec) != 1 || sec[0] != "whsec_new" {
			t.Fatalf("after grace: %d secrets", len(sec))
		}
	})
}

func mustEvent(tb testing.TB, db *store.DB, sid string, typ string) *wabsync.Event {
	tb.Helper()
	var ev *wabsync.Event
	err := db.Update(context.Background(), func(tx *store.Tx) error {
		var err error
		ev, err = tx.AddEvent(&sid, typ, map[string]string{"k": "v"})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

func mustDeliveries(tb testing.TB, db *store.DB, webhookID string) []*wabsync.Delivery {
	tb.Helper()
	l, err := db.ListDeliveries(context.Background(), webhookID, "", wabsync.Page{Limit: 100})
	if err != nil {
		tb.Fatal(err)
	}
	return l.Items
}

// The dispatcher is woken (OnDeliveries) once per change that queued
// deliveries or made some due again, and not by events no webhook wants.
func TestDeliveriesWakeTheDispatcher(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	var wakes atomic.Int32
	db.OnDeliveries = func() { wakes.Add(1) }
	sid := MustSession(t, db)
	expect := func(step string, n int32) {
		t.Helper()
		if got := wakes.Swap(0); got != n {
			t.Fatalf("%s: %d wake-ups, want %d", step, got, n)
		}
	}

	mustEvent(t, db, sid, wabsync.EventMessageReceived)
	expect("an event for no webhook", 0)

	w := MustWebhook(t, db, &sid, "https://example.com/a", wabsync.EventMessageReceived)
	MustWebhook(t, db, nil, "https://example.com/b", "*")
	expect("creating webhooks", 0)
	mustEvent(t, db, sid, wabsync.EventMessageSent) // only the global one wants it
	expect("an event for one webhook", 1)
	mustEvent(t, db, sid, wabsync.EventMessageReceived) // both want it: one wake
	expect("an event for two webhooks", 1)

	if _, _, err := db.AddTestEvent(ctx, &sid, w.ID, nil); err != nil {
		t.Fatal(err)
	}
	expect("a test event", 1)

	off, on := false, true
	if _, err := db.UpdateWebhook(ctx, &sid, w.ID, store.WebhookPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	expect("disabling", 0)
	if _, err := db.UpdateWebhook(ctx, &sid, w.ID, store.WebhookPatch{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	expect("enabling again", 1)

	d := mustDeliveries(t, db, w.ID)[0]
	if _, err := db.RetryDelivery(ctx, w.ID, d.ID, nil); err != nil {
		t.Fatal(err)
	}
	expect("a retry", 1)

	// A rolled-back change wakes nothing.
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.AddEvent(&sid, wabsync.EventMessageReceived, map[string]string{}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	expect("a failed change", 0)
}
