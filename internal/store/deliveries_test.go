package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

func TestDeliveries(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	lease := time.Minute

	t.Run("FanOutFollowsFilters", func(t *testing.T) {
		s, o := MustSession(t, db), MustSession(t, db)
		recv := MustWebhook(t, db, &s, "https://example.com/1", wabsync.EventMessageReceived)
		all := MustWebhook(t, db, &s, "https://example.com/2")
		mine := MustWebhook(t, db, &o, "https://example.com/3")
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		mustEvent(t, db, s, wabsync.EventSessionStatus)
		if n := len(mustDeliveries(t, db, recv.ID)); n != 1 {
			t.Fatalf("filtered webhook: %d deliveries", n)
		}
		if n := len(mustDeliveries(t, db, all.ID)); n != 2 {
			t.Fatalf("* webhook: %d deliveries", n)
		}
		if n := len(mustDeliveries(t, db, mine.ID)); n != 0 {
			t.Fatalf("other session's webhook: %d deliveries", n)
		}
		mustDrain(t, db, now)
	})

	t.Run("ClaimLeaseAndPerWebhookRoom", func(t *testing.T) {
		s := MustSession(t, db)
		a := MustWebhook(t, db, &s, "https://example.com/a", wabsync.EventMessageReceived)
		b := MustWebhook(t, db, &s, "https://example.com/b", wabsync.EventMessageSent)
		for i := 0; i < 10; i++ {
			mustEvent(t, db, s, wabsync.EventMessageReceived)
		}
		mustEvent(t, db, s, wabsync.EventMessageSent)
		got, err := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease, MaxPerWebhook: 3})
		if err != nil {
			t.Fatal(err)
		}
		per := map[string]int{}
		for _, c := range got {
			per[c.WebhookID]++
			if len(c.Body) == 0 || len(c.Secrets) != 1 || c.URL == "" {
				t.Fatalf("claimed delivery incomplete: %+v", c.ID)
			}
		}
		if per[a.ID] != 3 || per[b.ID] != 1 {
			t.Fatalf("per webhook: %v", per)
		}
		// Claimed rows are not claimed again while the lease lasts; a full
		// webhook is left out.
		got, _ = db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease, MaxPerWebhook: 100, Room: map[string]int{a.ID: 0}})
		if len(got) != 0 {
			t.Fatalf("claimed %d with webhook a full and b's claimed", len(got))
		}
		// After the lease lapses, the claims return.
		got, _ = db.ClaimDeliveries(ctx, now.Add(lease+time.Second), store.ClaimOptions{Limit: 100, Lease: lease, MaxPerWebhook: 100})
		if len(got) != 11 {
			t.Fatalf("after the lease: claimed %d, want 11", len(got))
		}
		for _, c := range got {
			if _, err := db.RecordAttempt(ctx, c, store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: now, StatusCode: 200}, Succeeded: true}); err != nil {
				t.Fatal(err)
			}
		}
		mustDrain(t, db, now.Add(time.Hour))
	})

	t.Run("HoldParksInsteadOfClaiming", func(t *testing.T) {
		s := MustSession(t, db)
		down := MustWebhook(t, db, &s, "https://example.com/down", wabsync.EventMessageReceived)
		up := MustWebhook(t, db, &s, "https://example.com/up", wabsync.EventMessageSent)
		for i := 0; i < 5; i++ {
			mustEvent(t, db, s, wabsync.EventMessageReceived)
		}
		mustEvent(t, db, s, wabsync.EventMessageSent)
		probe := now.Add(lease / 2) // before the claim of up's delivery lapses
		// Fewer to park than MinPark and nothing to claim: no write.
		c, err := db.ClaimDue(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease,
			Room: map[string]int{up.ID: 0}, Hold: map[string]store.Hold{down.ID: {Until: probe, WebhookUpdatedAt: down.UpdatedAt}}, MinPark: 10})
		if err != nil || len(c.Deliveries) != 0 || c.Parked != 0 {
			t.Fatalf("claim %+v, %v", c, err)
		}
		// With room elsewhere the held webhook's due deliveries are parked
		// in the same claim.
		c, err = db.ClaimDue(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease,
			Hold: map[string]store.Hold{down.ID: {Until: probe, WebhookUpdatedAt: down.UpdatedAt}}, MinPark: 10})
		if err != nil || len(c.Deliveries) != 1 || c.Deliveries[0].WebhookID != up.ID || c.Parked != 5 || c.More {
			t.Fatalf("claim %+v, %v", c, err)
		}
		for _, d := range mustDeliveries(t, db, down.ID) {
			if d.Status != wabsync.DeliveryPending || !d.NextAttemptAt.Equal(probe) || len(d.Attempts) != 0 {
				t.Fatalf("held delivery %+v", d)
			}
		}
		if got, _ := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease}); len(got) != 0 {
			t.Fatalf("claimed %d parked deliveries before the probe", len(got))
		}
		// Claimed ones handed back are due at the probe too.
		got, _ := db.ClaimDeliveries(ctx, probe, store.ClaimOptions{Limit: 2, Lease: lease})
		if len(got) != 2 {
			t.Fatalf("claimed %d at the probe", len(got))
		}
		later := probe.Add(time.Minute)
		if err := db.ParkClaims(ctx, []string{got[0].ID, got[1].ID}, later); err != nil {
			t.Fatal(err)
		}
		if d, _ := db.GetDelivery(ctx, down.ID, got[0].ID); !d.NextAttemptAt.Equal(later) {
			t.Fatalf("parked claim due at %v", d.NextAttemptAt)
		}
		if got, _ := db.ClaimDeliveries(ctx, probe, store.ClaimOptions{Limit: 100, Lease: lease}); len(got) != 3 {
			t.Fatalf("claimed %d at the probe, want the 3 not handed back", len(got))
		}
		mustDrain(t, db, later.Add(lease))
	})

	t.Run("UserActionEndsHold", func(t *testing.T) {
		s := MustSession(t, db)
		down := MustWebhook(t, db, &s, "https://example.com/down", wabsync.EventMessageReceived)
		for i := 0; i < 3; i++ {
			mustEvent(t, db, s, wabsync.EventMessageReceived)
		}
		probe := now.Add(time.Hour)
		hold := map[string]store.Hold{down.ID: {Until: probe, WebhookUpdatedAt: down.UpdatedAt}}
		// Fewer than MinPark, but due for longer than ParkAfter: parked, so
		// that the log shows the probe time.
		c, err := db.ClaimDue(ctx, now.Add(2*time.Second), store.ClaimOptions{Limit: 100, Lease: lease, Hold: hold, MinPark: 10, ParkAfter: time.Second})
		if err != nil || len(c.Deliveries) != 0 || c.Parked != 3 {
			t.Fatalf("claim %+v, %v", c, err)
		}
		dls := mustDeliveries(t, db, down.ID)
		// Retry-now: claimed at once despite the hold (and its room), marked.
		if _, err := db.RetryDelivery(ctx, down.ID, dls[0].ID, nil); err != nil {
			t.Fatal(err)
		}
		c, err = db.ClaimDue(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease, Hold: hold, Room: map[string]int{down.ID: 0}})
		if err != nil || len(c.Deliveries) != 1 || c.Deliveries[0].ID != dls[0].ID || !c.Deliveries[0].Retried || c.Parked != 0 {
			t.Fatalf("claim after retry-now %+v, %v", c, err)
		}
		if _, err := db.RecordAttempt(ctx, c.Deliveries[0], store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: now, Error: "HTTP 503"},
			NextAttemptAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		// Its next claim is an ordinary one.
		got, _ := db.ClaimDeliveries(ctx, now.Add(time.Minute), store.ClaimOptions{Limit: 100, Lease: lease})
		if len(got) != 1 || got[0].Retried {
			t.Fatalf("claimed %+v after the retried attempt", got)
		}
		if err := db.ReleaseClaims(ctx, []string{got[0].ID}); err != nil {
			t.Fatal(err)
		}
		// A change to the webhook (here re-enabling it) ends the hold: its
		// deliveries are claimed, with the new updated_at.
		now = now.Add(time.Second)
		for _, on := range []bool{false, true} {
			if _, err := db.UpdateWebhook(ctx, &s, down.ID, store.WebhookPatch{Enabled: &on}); err != nil {
				t.Fatal(err)
			}
		}
		c, err = db.ClaimDue(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease, Hold: hold})
		if err != nil || len(c.Deliveries) != 3 || c.Parked != 0 || !c.Deliveries[0].WebhookUpdatedAt.After(down.UpdatedAt) {
			t.Fatalf("claim after re-enabling %+v, %v", c, err)
		}
		mustDrain(t, db, now.Add(lease))
	})

	t.Run("NewURLMakesWaitingDue", func(t *testing.T) {
		s := MustSession(t, db)
		w := MustWebhook(t, db, &s, "https://example.com/old", wabsync.EventMessageReceived)
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		c := mustClaim(t, db, now, w.ID)
		if _, err := db.RecordAttempt(ctx, c, store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: now, Error: "HTTP 503"},
			NextAttemptAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		url := "https://example.com/new"
		if _, err := db.UpdateWebhook(ctx, &s, w.ID, store.WebhookPatch{URL: &url}); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease}); len(got) != 1 || got[0].URL != url {
			t.Fatalf("claimed %+v after the new URL", got)
		}
		mustDrain(t, db, now.Add(lease))
	})

	t.Run("RecordFailureThenSuccessReleases", func(t *testing.T) {
		s := MustSession(t, db)
		w := MustWebhook(t, db, &s, "https://example.com/f")
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		got, _ := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 10, Lease: lease})
		if len(got) != 2 {
			t.Fatalf("claimed %d", len(got))
		}
		for i, c := range got {
			next := now.Add(time.Duration(i+1) * time.Hour)
			if _, err := db.RecordAttempt(ctx, c, store.AttemptResult{
				Attempt: wabsync.DeliveryAttempt{At: now, StatusCode: 500, LatencyMS: 3, Error: "HTTP 500"}, NextAttemptAt: next,
			}); err != nil {
				t.Fatal(err)
			}
		}
		d, _ := db.GetDelivery(ctx, w.ID, got[0].ID)
		if d.Status != wabsync.DeliveryPending || len(d.Attempts) != 1 || d.Attempts[0].Error != "HTTP 500" || !d.NextAttemptAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("after failure: %+v", d)
		}
		// The first falls due; its success releases the second.
		later := now.Add(time.Hour)
		db.Now = func() time.Time { return later }
		defer func() { db.Now = func() time.Time { return now } }()
		c, _ := db.ClaimDeliveries(ctx, later, store.ClaimOptions{Limit: 10, Lease: lease})
		if len(c) != 1 {
			t.Fatalf("claimed %d", len(c))
		}
		out, err := db.RecordAttempt(ctx, c[0], store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: later, StatusCode: 204}, Succeeded: true})
		if err != nil {
			t.Fatal(err)
		}
		if out.Released != 1 {
			t.Fatalf("released %d, want 1", out.Released)
		}
		d, _ = db.GetDelivery(ctx, w.ID, got[1].ID)
		if !d.NextAttemptAt.Equal(later) {
			t.Fatalf("second delivery not released: %v", d.NextAttemptAt)
		}
		d, _ = db.GetDelivery(ctx, w.ID, got[0].ID)
		if d.Status != wabsync.DeliverySucceeded || len(d.Attempts) != 2 || d.NextAttemptAt != nil {
			t.Fatalf("after success: %+v", d)
		}
		mustDrain(t, db, later)
	})

	t.Run("GiveUpMarksFailed", func(t *testing.T) {
		s := MustSession(t, db)
		w := MustWebhook(t, db, &s, "https://example.com/g")
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		c, _ := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 10, Lease: lease})
		if _, err := db.RecordAttempt(ctx, c[0], store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: now, Error: "timeout"}}); err != nil {
			t.Fatal(err)
		}
		d, _ := db.GetDelivery(ctx, w.ID, c[0].ID)
		if d.Status != wabsync.DeliveryFailed || d.NextAttemptAt != nil {
			t.Fatalf("got %+v", d)
		}
	})

	t.Run("DisableAfterWindowEmitsEvent", func(t *testing.T) {
		s := MustSession(t, db)
		bad := MustWebhook(t, db, &s, "https://example.com/bad", wabsync.EventMessageReceived)
		good := MustWebhook(t, db, &s, "https://example.com/good", wabsync.EventWebhookDisabled)
		global := MustWebhook(t, db, nil, "https://example.com/global", wabsync.EventWebhookDisabled)
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		fail := func(at time.Time) store.RecordOutcome {
			t.Helper()
			c, err := db.ClaimDeliveries(ctx, at, store.ClaimOptions{Limit: 1, Lease: lease})
			if err != nil || len(c) != 1 {
				t.Fatalf("claim: %d, %v", len(c), err)
			}
			out, err := db.RecordAttempt(ctx, c[0], store.AttemptResult{
				Attempt: wabsync.DeliveryAttempt{At: at, Error: "connection refused"}, NextAttemptAt: at.Add(time.Minute), DisableAfter: 72 * time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		if out := fail(now); out.Disabled {
			t.Fatal("disabled at the first failure")
		}
		at := now.Add(72 * time.Hour)
		db.Now = func() time.Time { return at }
		defer func() { db.Now = func() time.Time { return now } }()
		if out := fail(at); !out.Disabled {
			t.Fatal("not disabled after 3 days of failures")
		}
		w, _ := db.GetWebhook(ctx, &s, bad.ID)
		if w.Enabled || w.DisabledReason == "" {
			t.Fatalf("got %+v", w)
		}
		for _, d := range mustDeliveries(t, db, bad.ID) {
			if d.Status == wabsync.DeliveryPending && d.NextAttemptAt != nil {
				t.Fatalf("disabled webhook's delivery still due: %+v", d)
			}
		}
		for _, id := range []string{good.ID, global.ID} {
			l := mustDeliveries(t, db, id)
			if len(l) != 1 || l[0].EventType != wabsync.EventWebhookDisabled {
				t.Fatalf("webhook.disabled deliveries of %s: %+v", id, l)
			}
			ev, err := db.GetEvent(ctx, l[0].EventID)
			if err != nil {
				t.Fatal(err)
			}
			var data wabsync.Webhook
			if err := json.Unmarshal(ev.Data, &data); err != nil || data.ID != bad.ID || data.Enabled || data.Secret != "" {
				t.Fatalf("event data %s: %v", ev.Data, err)
			}
		}
		if n := len(mustDeliveries(t, db, bad.ID)); n != 2 {
			t.Fatalf("the disabled webhook got its own webhook.disabled event: %d deliveries", n)
		}
		mustDrain(t, db, at)
	})

	t.Run("TestEventGoesToOneWebhook", func(t *testing.T) {
		s := MustSession(t, db)
		a := MustWebhook(t, db, &s, "https://example.com/ta")
		b := MustWebhook(t, db, &s, "https://example.com/tb")
		ev, d, err := db.AddTestEvent(ctx, &s, a.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != wabsync.EventWebhookTest || d.WebhookID != a.ID || ev.Sequence < 1 {
			t.Fatalf("got %+v %+v", ev, d)
		}
		if len(mustDeliveries(t, db, a.ID)) != 1 || len(mustDeliveries(t, db, b.ID)) != 0 {
			t.Fatal("test event fanned out")
		}
		if _, _, err := db.AddTestEvent(ctx, nil, a.ID, nil); wabsync.ErrorCode(err) != wabsync.ENotFound {
			t.Fatalf("through the global scope: want NOT_FOUND, got %v", err)
		}
		off := false
		if _, err := db.UpdateWebhook(ctx, &s, b.ID, store.WebhookPatch{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		if _, d, err := db.AddTestEvent(ctx, &s, b.ID, nil); err != nil || d.WebhookID != b.ID {
			t.Fatalf("test of a disabled webhook: %v", err)
		}
		claimed, _ := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease})
		found := false
		for _, c := range claimed {
			found = found || c.WebhookID == b.ID
		}
		if !found {
			t.Fatal("a disabled webhook's test delivery is not claimed")
		}
		mustDrain(t, db, now.Add(lease+time.Second))
		g := MustWebhook(t, db, nil, "https://example.com/tg")
		if ev, _, err := db.AddTestEvent(ctx, nil, g.ID, nil); err != nil || ev.SessionID != nil {
			t.Fatalf("global test event: %+v, %v", ev, err)
		}
		mustDrain(t, db, now)
	})

	t.Run("ListNewestFirstAndRetry", func(t *testing.T) {
		s := MustSession(t, db)
		w := MustWebhook(t, db, &s, "https://example.com/n")
		var evs []string
		for i := 0; i < 5; i++ {
			evs = append(evs, mustEvent(t, db, s, wabsync.EventMessageReceived).ID)
		}
		var seen []string
		p := wabsync.Page{Limit: 2}
		for {
			l, err := db.ListDeliveries(ctx, w.ID, "", p)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range l.Items {
				seen = append(seen, d.EventID)
			}
			if !l.HasMore {
				break
			}
			p.After = *l.NextCursor
		}
		if len(seen) != 5 || seen[0] != evs[4] || seen[4] != evs[0] {
			t.Fatalf("order %v, events %v", seen, evs)
		}
		claimed, _ := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 100, Lease: lease})
		var c []*store.ClaimedDelivery // w's
		for _, cd := range claimed {
			if cd.WebhookID == w.ID {
				c = append(c, cd)
			}
			if _, err := db.RecordAttempt(ctx, cd, store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: now, StatusCode: 200}, Succeeded: true}); err != nil {
				t.Fatal(err)
			}
		}
		if len(c) != 5 {
			t.Fatalf("claimed %d of the webhook's 5 deliveries", len(c))
		}
		d, err := db.RetryDelivery(ctx, w.ID, c[0].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != wabsync.DeliveryPending || d.NextAttemptAt == nil || len(d.Attempts) != 1 {
			t.Fatalf("after retry: %+v", d)
		}
		if got, _ := db.ClaimDeliveries(ctx, now, store.ClaimOptions{Limit: 10, Lease: lease}); len(got) != 1 || got[0].ID != c[0].ID {
			t.Fatalf("retried delivery not due: %d", len(got))
		}
		for status, want := range map[string]int{wabsync.DeliveryPending: 1, wabsync.DeliverySucceeded: 4, wabsync.DeliveryFailed: 0} {
			l, err := db.ListDeliveries(ctx, w.ID, status, wabsync.Page{Limit: 100})
			if err != nil || len(l.Items) != want {
				t.Fatalf("status %s: %d deliveries, want %d (%v)", status, len(l.Items), want, err)
			}
		}
		if _, err := db.RetryDelivery(ctx, w.ID, "dlv_missing", nil); wabsync.ErrorCode(err) != wabsync.ENotFound {
			t.Fatalf("want NOT_FOUND, got %v", err)
		}
		if _, err := db.RetryDelivery(ctx, "whk_other", c[0].ID, nil); wabsync.ErrorCode(err) != wabsync.ENotFound {
			t.Fatalf("other webhook: want NOT_FOUND, got %v", err)
		}
	})

	t.Run("AttemptLogIsBounded", func(t *testing.T) {
		s := MustSession(t, db)
		at := now.Add(1000 * time.Hour)
		mustDrain(t, db, at)
		w := MustWebhook(t, db, &s, "https://example.com/bounded")
		mustEvent(t, db, s, wabsync.EventMessageReceived)
		var id string
		for i := 0; i < 60; i++ {
			c, _ := db.ClaimDeliveries(ctx, at, store.ClaimOptions{Limit: 10, Lease: lease})
			if len(c) == 0 {
				t.Fatalf("round %d: nothing due", i)
			}
			for _, c := range c {
				// Other deliveries (global "*" webhooks) get one attempt.
				r := store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: at, StatusCode: 200}, Succeeded: true}
				if c.WebhookID == w.ID {
					id = c.ID
					r = store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: at, StatusCode: i}, NextAttemptAt: at}
				}
				if _, err := db.RecordAttempt(ctx, c, r); err != nil {
					t.Fatal(err)
				}
			}
		}
		d, err := db.GetDelivery(ctx, w.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Attempts) != 50 || d.Attempts[49].StatusCode != 59 {
			t.Fatalf("log of %d attempts, last %+v", len(d.Attempts), d.Attempts[len(d.Attempts)-1])
		}
	})
}

// mustDrain marks everything due at now succeeded, so that subtests start
// from an empty queue.
// mustClaim claims the one due delivery of webhook id at now.
func mustClaim(tb testing.TB, db *store.DB, now time.Time, id string) *store.ClaimedDelivery {
	tb.Helper()
	got, err := db.ClaimDeliveries(context.Background(), now, store.ClaimOptions{Limit: 100, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].WebhookID != id {
		tb.Fatalf("claim: %+v, %v", got, err)
	}
	return got[0]
}

func mustDrain(tb testing.TB, db *store.DB, now time.Time) {
	tb.Helper()
	for {
		c, err := db.ClaimDeliveries(context.Background(), now, store.ClaimOptions{Limit: 100, Lease: time.Minute})
		if err != nil {
			tb.Fatal(err)
		}
		if len(c) == 0 {
			return
		}
		for _, c := range c {
			if _, err := db.RecordAttempt(context.Background(), c, store.AttemptResult{Attempt: wabsync.DeliveryAttempt{At: now, StatusCode: 200}, Succeeded: true}); err != nil {
				tb.Fatal(err)
			}
		}
	}
}
