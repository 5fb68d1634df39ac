package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
	"github.com/wabsync/wabsync/internal/webhook"
)

// storedBody returns the event exactly as stored.
func storedBody(tb testing.TB, db *store.DB, id string) []byte {
	tb.Helper()
	ev, err := db.GetEvent(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	return b
}

func TestDeliverSigned(t *testing.T) {
	db := testutil.MustOpenDB(t)
	rc := MustReceiver(t)
	sid := MustSession(t, db)
	w := MustWebhook(t, db, &sid, rc.URL+"/hook")
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true})
	MustRun(t, db, d)
	ctx := context.Background()

	ev := MustEvent(t, db, sid, wabsync.EventMessageReceived)
	testutil.Eventually(t, 10*time.Second, func() bool { return rc.Count() == 1 }, "the delivery")
	req := rc.Requests()[0]
	t.Run("StockLibraryVerifies", func(t *testing.T) {
		wh, _ := standardwebhooks.NewWebhook(w.Secret)
		if err := wh.Verify(req.Body, req.Header); err != nil {
			t.Fatalf("verify: %v", err)
		}
	})
	t.Run("Headers", func(t *testing.T) {
		if got := req.Header.Get("webhook-id"); got != ev.ID {
			t.Fatalf("webhook-id %q, want the event id %q", got, ev.ID)
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if ua := req.Header.Get("User-Agent"); len(ua) < 7 || ua[:7] != "WabSync" {
			t.Fatalf("User-Agent %q", ua)
		}
		ts, _ := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
		if d := time.Since(time.Unix(ts, 0)); d < -time.Minute || d > time.Minute {
			t.Fatalf("webhook-timestamp %d is not now", ts)
		}
	})
	t.Run("BodyIsTheStoredEvent", func(t *testing.T) {
		var got wabsync.Event
		if err := json.Unmarshal(req.Body, &got); err != nil {
			t.Fatal(err)
		}
		if got.ID != ev.ID || got.Type != ev.Type || got.Sequence != ev.Sequence || *got.SessionID != sid {
			t.Fatalf("body %s", req.Body)
		}
		if !bytes.Equal(req.Body, storedBody(t, db, ev.ID)) {
			t.Fatalf("body %s differs from the stored event", req.Body)
		}
	})
	t.Run("LogRecordsTheAttempt", func(t *testing.T) {
		var l []*wabsync.Delivery
		testutil.Eventually(t, 5*time.Second, func() bool {
			l = MustDeliveries(t, db, w.ID)
			return len(l) == 1 && l[0].Status == wabsync.DeliverySucceeded
		}, "the delivery to be recorded")
		a := l[0].Attempts
		if len(a) != 1 || a[0].StatusCode != 200 || a[0].Error != "" || l[0].NextAttemptAt != nil {
			t.Fatalf("delivery %+v", l[0])
		}
	})
	t.Run("RotationSignsWithBoth", func(t *testing.T) {
		rotated, err := db.RotateWebhookSecret(ctx, &sid, w.ID, webhook.NewSecret(), 24*time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		MustEvent(t, db, sid, wabsync.EventMessageSent)
		testutil.Eventually(t, 10*time.Second, func() bool { return rc.Count() == 2 }, "the second delivery")
		req := rc.Requests()[1]
		for name, s := range map[string]string{"Old": w.Secret, "New": rotated.Secret} {
			wh, _ := standardwebhooks.NewWebhook(s)
			if err := wh.Verify(req.Body, req.Header); err != nil {
				t.Fatalf("%s secret: %v", name, err)
			}
		}
	})
}

func TestRetries(t *testing.T) {
	db := testutil.MustOpenDB(t)
	clock := NewClock(time.Now())
	db.Now = clock.Now
	rc := MustReceiver(t)
	const failures = 4
	rc.Respond = func(n int, _ *http.Request) int {
		if n <= failures {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	}
	sid := MustSession(t, db)
	w := MustWebhook(t, db, &sid, rc.URL)
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, Now: clock.Now})
	ev := MustEvent(t, db, sid, wabsync.EventMessageReceived)

	t.Run("GrowingDelaysUntilSuccess", func(t *testing.T) {
		var delays []time.Duration
		for i := 0; i <= failures; i++ {
			before := clock.Now()
			if n := MustRunOnce(t, d); n != 1 {
				t.Fatalf("round %d: %d attempts", i, n)
			}
			if n := MustRunOnce(t, d); n != 0 {
				t.Fatalf("round %d: retried before its time (%d attempts)", i, n)
			}
			dl := MustDeliveries(t, db, w.ID)[0]
			if i == failures {
				if dl.Status != wabsync.DeliverySucceeded || dl.NextAttemptAt != nil {
					t.Fatalf("after the receiver recovered: %+v", dl)
				}
				break
			}
			if dl.Status != wabsync.DeliveryPending || dl.NextAttemptAt == nil {
				t.Fatalf("round %d: %+v", i, dl)
			}
			delay := dl.NextAttemptAt.Sub(before)
			nominal := webhook.DefaultSchedule[i]
			if delay < time.Duration(float64(nominal)*(1-webhook.Jitter)) || delay > time.Duration(float64(nominal)*(1+webhook.Jitter)) {
				t.Fatalf("round %d: delay %v, schedule says %v ± %v", i, delay, nominal, webhook.Jitter)
			}
			if len(delays) > 0 && delay <= delays[len(delays)-1] {
				t.Fatalf("delays do not grow: %v then %v", delays, delay)
			}
			delays = append(delays, delay)
			clock.Advance(delay - time.Second)
			if n := MustRunOnce(t, d); n != 0 {
				t.Fatalf("round %d: retried a second early", i)
			}
			clock.Set(*dl.NextAttemptAt)
		}
		if rc.Count() != failures+1 {
			t.Fatalf("receiver got %d requests", rc.Count())
		}
	})
	t.Run("DeliveryLogListsEveryAttempt", func(t *testing.T) {
		dl := MustDeliveries(t, db, w.ID)[0]
		if len(dl.Attempts) != failures+1 {
			t.Fatalf("%d attempts in the log", len(dl.Attempts))
		}
		for i, a := range dl.Attempts {
			want := 500
			if i == failures {
				want = 204
			}
			if a.StatusCode != want || (want == 500) != (a.Error == "HTTP 500") || a.At.IsZero() {
				t.Fatalf("attempt %d: %+v", i, a)
			}
			if i > 0 && !a.At.After(dl.Attempts[i-1].At) {
				t.Fatalf("attempt times do not grow: %+v", dl.Attempts)
			}
		}
	})
	t.Run("SameIDAndValidSignatureOnEveryAttempt", func(t *testing.T) {
		wh, _ := standardwebhooks.NewWebhook(w.Secret)
		for i, r := range rc.Requests() {
			if r.Header.Get("webhook-id") != ev.ID {
				t.Fatalf("attempt %d: webhook-id %q", i, r.Header.Get("webhook-id"))
			}
			// The fake clock is days ahead by now: the stock library's
			// five-minute tolerance is about real time, so check the
			// signature alone here.
			if err := wh.VerifyIgnoringTimestamp(r.Body, r.Header); err != nil {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
	})
	t.Run("RetryNowDeliversAgain", func(t *testing.T) {
		dl := MustDeliveries(t, db, w.ID)[0]
		if _, err := db.RetryDelivery(context.Background(), w.ID, dl.ID, nil); err != nil {
			t.Fatal(err)
		}
		if n := MustRunOnce(t, d); n != 1 {
			t.Fatalf("%d attempts", n)
		}
		dl = MustDeliveries(t, db, w.ID)[0]
		if rc.Count() != failures+2 || dl.Status != wabsync.DeliverySucceeded || len(dl.Attempts) != failures+2 {
			t.Fatalf("receiver got %d; delivery %+v", rc.Count(), dl)
		}
	})
	t.Run("GivesUpAfterRetryFor", func(t *testing.T) {
		rc.Respond = func(int, *http.Request) int { return http.StatusBadGateway }
		s := MustSession(t, db)
		w := MustWebhook(t, db, &s, rc.URL)
		start := clock.Now()
		MustEvent(t, db, s, wabsync.EventMessageReceived)
		for i := 0; i < 40; i++ {
			MustRunOnce(t, d)
			dl := MustDeliveries(t, db, w.ID)[0]
			if dl.Status == wabsync.DeliveryFailed {
				last := dl.Attempts[len(dl.Attempts)-1].At
				if last.Sub(start) < 72*time.Hour {
					t.Fatalf("gave up after %v, before three days", last.Sub(start))
				}
				return
			}
			clock.Set(*dl.NextAttemptAt)
		}
		t.Fatal("still retrying after 40 attempts")
	})
}

func TestSlowReceiverDoesNotDelayOthers(t *testing.T) {
	db := testutil.MustOpenDB(t)
	release := make(chan struct{})
	var inflight, peak atomic.Int64
	slow := MustReceiver(t)
	slow.Respond = func(int, *http.Request) int {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inflight.Add(-1)
		return 200
	}
	fast := MustReceiver(t)
	sid := MustSession(t, db)
	MustWebhook(t, db, &sid, slow.URL, wabsync.EventMessageReceived)
	MustWebhook(t, db, &sid, fast.URL, wabsync.EventMessageSent)
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, PerEndpoint: 4, Concurrency: 8, QueuePerEndpoint: 16, MaxHeld: 64})
	MustRun(t, db, d)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	for i := 0; i < 100; i++ {
		MustEvent(t, db, sid, wabsync.EventMessageReceived)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return inflight.Load() == 4 }, "the slow receiver to hold 4 requests")
	start := time.Now()
	for i := 0; i < 10; i++ {
		MustEvent(t, db, sid, wabsync.EventMessageSent)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return fast.Count() == 10 }, "the fast receiver's deliveries")
	t.Logf("fast endpoint got 10 deliveries in %v while the slow one held %d", time.Since(start), inflight.Load())
	if p := peak.Load(); p > 4 {
		t.Fatalf("slow endpoint had %d requests in flight, bound is 4", p)
	}
	unblock()
	testutil.Eventually(t, 20*time.Second, func() bool { return slow.Count() == 100 }, "the slow receiver's backlog")
}

func TestDisableAfterFailingForDays(t *testing.T) {
	db := testutil.MustOpenDB(t)
	clock := NewClock(time.Now())
	db.Now = clock.Now
	bad := MustReceiver(t)
	bad.Respond = func(int, *http.Request) int { return http.StatusServiceUnavailable }
	good := MustReceiver(t)
	sid := MustSession(t, db)
	wb := MustWebhook(t, db, &sid, bad.URL, wabsync.EventMessageReceived)
	wg := MustWebhook(t, db, &sid, good.URL, wabsync.EventWebhookDisabled)
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, Now: clock.Now})

	MustEvent(t, db, sid, wabsync.EventMessageReceived)
	start := clock.Now()
	for i := 0; i < 40; i++ {
		MustRunOnce(t, d)
		got, _ := db.GetWebhook(context.Background(), &sid, wb.ID)
		if !got.Enabled {
			if since := clock.Now().Sub(start); since < 72*time.Hour {
				t.Fatalf("disabled after %v", since)
			}
			if got.DisabledReason == "" {
				t.Fatal("no disabled_reason")
			}
			break
		}
		dl := MustDeliveries(t, db, wb.ID)[0]
		if dl.NextAttemptAt == nil {
			t.Fatalf("delivery %+v has no next attempt while its webhook is enabled", dl)
		}
		clock.Set(*dl.NextAttemptAt)
	}
	if good.Count() != 1 {
		t.Fatalf("the other endpoint got %d requests, want the webhook.disabled event", good.Count())
	}
	var ev wabsync.Event
	if err := json.Unmarshal(good.Requests()[0].Body, &ev); err != nil {
		t.Fatal(err)
	}
	var data wabsync.Webhook
	json.Unmarshal(ev.Data, &data)
	if ev.Type != wabsync.EventWebhookDisabled || data.ID != wb.ID {
		t.Fatalf("event %+v", ev)
	}
	if l := MustDeliveries(t, db, wg.ID); len(l) != 1 || l[0].Status != wabsync.DeliverySucceeded {
		t.Fatalf("good endpoint's deliveries %+v", l)
	}
	// Nothing more goes to the disabled endpoint.
	n := bad.Count()
	MustEvent(t, db, sid, wabsync.EventMessageReceived)
	clock.Advance(24 * time.Hour)
	MustRunOnce(t, d)
	if bad.Count() != n {
		t.Fatal("a disabled endpoint got a delivery")
	}
}

func TestRecoveryReleasesBacklog(t *testing.T) {
	db := testutil.MustOpenDB(t)
	clock := NewClock(time.Now())
	db.Now = clock.Now
	var down atomic.Bool
	down.Store(true)
	rc := MustReceiver(t)
	rc.Respond = func(int, *http.Request) int {
		if down.Load() {
			return http.StatusBadGateway
		}
		return http.StatusOK
	}
	sid := MustSession(t, db)
	w := MustWebhook(t, db, &sid, rc.URL)
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, Now: clock.Now})
	// Events pile up while the receiver is down, each with its own backoff.
	for i := 0; i < 10; i++ {
		MustEvent(t, db, sid, wabsync.EventMessageReceived)
		MustRunOnce(t, d)
		clock.Advance(10 * time.Minute)
	}
	down.Store(false)
	// The endpoint failed often enough for its circuit to open: nothing is
	// attempted until its next probe (within an eighth of the outage so
	// far). The probe's success makes the whole backlog due at once: from
	// then on the clock does not move, and everything is delivered.
	MustEvent(t, db, sid, wabsync.EventMessageReceived)
	attempts := 0
	for i := 0; attempts == 0; i++ {
		if i > 30 {
			t.Fatal("no probe within 30 minutes of an outage of 100")
		}
		clock.Advance(time.Minute)
		attempts = MustRunOnce(t, d)
	}
	for i := 0; i < 10 && attempts < 11; i++ {
		attempts += MustRunOnce(t, d)
	}
	if attempts < 11 {
		t.Fatalf("%d attempts after the probe succeeded: the backlog was not released", attempts)
	}
	for _, dl := range MustDeliveries(t, db, w.ID) {
		if dl.Status != wabsync.DeliverySucceeded {
			t.Fatalf("delivery %+v", dl)
		}
	}
}

func TestEventFilters(t *testing.T) {
	db := testutil.MustOpenDB(t)
	recv, all, global, other := MustReceiver(t), MustReceiver(t), MustReceiver(t), MustReceiver(t)
	sid, oid := MustSession(t, db), MustSession(t, db)
	MustWebhook(t, db, &sid, recv.URL, wabsync.EventMessageReceived, wabsync.EventMessageRead)
	MustWebhook(t, db, &sid, all.URL, "*")
	MustWebhook(t, db, nil, global.URL, wabsync.EventSessionStatus)
	MustWebhook(t, db, &oid, other.URL, "*")
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true})
	for _, typ := range []string{wabsync.EventMessageReceived, wabsync.EventSessionStatus, wabsync.EventMessageSent, wabsync.EventMessageRead} {
		MustEvent(t, db, sid, typ)
	}
	MustEvent(t, db, oid, wabsync.EventSessionStatus)
	MustRunOnce(t, d)
	types := func(rc *Receiver) map[string]int {
		out := map[string]int{}
		for _, r := range rc.Requests() {
			var ev wabsync.Event
			json.Unmarshal(r.Body, &ev)
			out[ev.Type]++
		}
		return out
	}
	for name, tc := range map[string]struct {
		rc   *Receiver
		want map[string]int
	}{
		"ExactTypes":         {recv, map[string]int{wabsync.EventMessageReceived: 1, wabsync.EventMessageRead: 1}},
		"Star":               {all, map[string]int{wabsync.EventMessageReceived: 1, wabsync.EventSessionStatus: 1, wabsync.EventMessageSent: 1, wabsync.EventMessageRead: 1}},
		"GlobalEverySession": {global, map[string]int{wabsync.EventSessionStatus: 2}},
		"OtherSessionOnly":   {other, map[string]int{wabsync.EventSessionStatus: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			got := types(tc.rc)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestCrashedWorkerClaimsReturn(t *testing.T) {
	db := testutil.MustOpenDB(t)
	clock := NewClock(time.Now())
	db.Now = clock.Now
	rc := MustReceiver(t)
	sid := MustSession(t, db)
	MustWebhook(t, db, &sid, rc.URL)
	for i := 0; i < 5; i++ {
		MustEvent(t, db, sid, wabsync.EventMessageReceived)
	}
	// A worker claims the deliveries and dies before attempting them.
	const lease = 2 * time.Minute
	claimed, err := db.ClaimDeliveries(context.Background(), clock.Now(), store.ClaimOptions{Limit: 100, Lease: lease})
	if err != nil || len(claimed) != 5 {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, Now: clock.Now, Lease: lease})
	t.Run("HeldWhileTheLeaseLasts", func(t *testing.T) {
		clock.Advance(lease - time.Second)
		if n := MustRunOnce(t, d); n != 0 || rc.Count() != 0 {
			t.Fatalf("%d attempts on claimed deliveries", n)
		}
	})
	t.Run("DeliveredAfterTheLeaseLapses", func(t *testing.T) {
		clock.Advance(2 * time.Second)
		if n := MustRunOnce(t, d); n != 5 || rc.Count() != 5 {
			t.Fatalf("%d attempts, receiver got %d", n, rc.Count())
		}
	})
}

func TestCloseHandsBackHeldDeliveries(t *testing.T) {
	db := testutil.MustOpenDB(t)
	release := make(chan struct{})
	rc := MustReceiver(t)
	rc.Respond = func(int, *http.Request) int { <-release; return 200 }
	sid := MustSession(t, db)
	w := MustWebhook(t, db, &sid, rc.URL)
	for i := 0; i < 20; i++ {
		MustEvent(t, db, sid, wabsync.EventMessageReceived)
	}
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, PerEndpoint: 2})
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return rc.Count() == 2 }, "two requests in flight")
	go func() { time.Sleep(100 * time.Millisecond); close(release) }()
	d.Close()
	<-done
	// The two in flight were recorded; the other 18 are claimable at once.
	succeeded := 0
	for _, dl := range MustDeliveries(t, db, w.ID) {
		if dl.Status == wabsync.DeliverySucceeded {
			succeeded++
		}
	}
	if succeeded != 2 {
		t.Fatalf("%d succeeded, want the 2 in flight", succeeded)
	}
	d2 := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true})
	if n := MustRunOnce(t, d2); n != 18 {
		t.Fatalf("the next worker made %d attempts, want 18", n)
	}
}

func TestFailures(t *testing.T) {
	db := testutil.MustOpenDB(t)
	sid := MustSession(t, db)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()
	target := MustReceiver(t)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	slow := MustReceiver(t)
	slow.Respond = func(int, *http.Request) int { time.Sleep(time.Second); return 200 }
	for name, tc := range map[string]struct {
		url, want string
		opts      webhook.Options
		rc        *Receiver // must get no request
	}{
		"PrivateTargetRefused": {url: target.URL, want: "address not allowed (private, loopback, link-local or reserved)", opts: webhook.Options{AllowPrivate: false}, rc: target},
		"ConnectionRefused":    {url: closedURL, want: "connection refused", opts: webhook.Options{AllowPrivate: true}},
		"RedirectNotFollowed":  {url: redirect.URL, want: "HTTP 302 (redirects are not followed)", opts: webhook.Options{AllowPrivate: true}, rc: target},
		"Timeout":              {url: slow.URL, want: "timeout", opts: webhook.Options{AllowPrivate: true, Timeout: 200 * time.Millisecond}},
	} {
		t.Run(name, func(t *testing.T) {
			w := MustWebhook(t, db, &sid, tc.url, wabsync.EventWebhookTest)
			if _, _, err := db.AddTestEvent(context.Background(), &sid, w.ID, nil); err != nil {
				t.Fatal(err)
			}
			before := 0
			if tc.rc != nil {
				before = tc.rc.Count()
			}
			MustRunOnce(t, webhook.NewDispatcher(db, tc.opts))
			dl := MustDeliveries(t, db, w.ID)[0]
			if len(dl.Attempts) != 1 || dl.Attempts[0].Error != tc.want || dl.Status != wabsync.DeliveryPending || dl.NextAttemptAt == nil {
				t.Fatalf("delivery %+v, want error %q", dl, tc.want)
			}
			if tc.rc != nil && tc.rc.Count() != before {
				t.Fatal("the target got a request")
			}
			off := false
			db.UpdateWebhook(context.Background(), &sid, w.ID, store.WebhookPatch{Enabled: &off})
		})
	}
}

// The claim loop is woken by what can make a delivery claimable — not by
// every record — so each of these must wake it (the poll is an hour).
func TestWakesWithoutPolling(t *testing.T) {
	t.Run("AFailureAlreadyDueIsRetried", func(t *testing.T) {
		// The attempt outlasts its backoff: its failure is due when it is
		// recorded, and nothing else happens.
		db := testutil.MustOpenDB(t)
		clock := NewClock(time.Now())
		db.Now = clock.Now
		rc := MustReceiver(t)
		rc.Respond = func(n int, _ *http.Request) int {
			if n == 1 {
				clock.Advance(time.Minute) // the first retry is due in 5 s
				return http.StatusServiceUnavailable
			}
			return http.StatusNoContent
		}
		sid := MustSession(t, db)
		w := MustWebhook(t, db, &sid, rc.URL)
		d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, Now: clock.Now, PollInterval: time.Hour})
		MustRun(t, db, d)
		MustEvent(t, db, sid, wabsync.EventMessageReceived)
		testutil.Eventually(t, 20*time.Second, func() bool {
			l := MustDeliveries(t, db, w.ID)
			return len(l) == 1 && l[0].Status == wabsync.DeliverySucceeded
		}, "the retry to succeed")
		if n := rc.Count(); n != 2 {
			t.Fatalf("%d attempts, want 2", n)
		}
	})
	t.Run("HeldDeliveriesRecordedMakeRoom", func(t *testing.T) {
		// Eight held at most: claims stop until records make room.
		db := testutil.MustOpenDB(t)
		rc := MustReceiver(t)
		sid := MustSession(t, db)
		const webhooks, events = 4, 20
		var ids []string
		for i := 0; i < webhooks; i++ {
			ids = append(ids, MustWebhook(t, db, &sid, rc.URL).ID)
		}
		d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, PerEndpoint: 2, QueuePerEndpoint: 4,
			MaxHeld: 8, PollInterval: time.Hour})
		MustRun(t, db, d)
		mustEvents(t, db, sid, events)
		testutil.Eventually(t, 30*time.Second, func() bool {
			for _, id := range ids {
				if pendingCount(t, db, id) != 0 {
					return false
				}
			}
			return true
		}, "every delivery to be made and recorded")
		if n := rc.Count(); n < webhooks*events {
			t.Fatalf("%d attempts for %d deliveries", n, webhooks*events)
		}
	})
}
