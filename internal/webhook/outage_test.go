package webhook_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
	"github.com/wabsync/wabsync/internal/webhook"
)

// outageReceiver is a receiver that answers 503 while down is set, and
// counts the events it accepted.
type outageReceiver struct {
	*Receiver
	down atomic.Bool
	mu   sync.Mutex
	ok   map[string]bool
}

func newOutageReceiver(tb testing.TB) *outageReceiver {
	tb.Helper()
	o := &outageReceiver{Receiver: MustReceiver(tb), ok: map[string]bool{}}
	o.Respond = func(_ int, r *http.Request) int {
		if o.down.Load() {
			return http.StatusServiceUnavailable
		}
		o.mu.Lock()
		o.ok[r.Header.Get("webhook-id")] = true
		o.mu.Unlock()
		return http.StatusNoContent
	}
	return o
}

// delivered counts the events accepted at least once.
func (o *outageReceiver) delivered() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ok)
}

// outageSetup returns a database on a fake clock, an outage receiver, a
// session with a webhook to it and a dispatcher with o on that clock.
func outageSetup(tb testing.TB, o webhook.Options) (*store.DB, *Clock, *outageReceiver, string, *wabsync.Webhook, *webhook.Dispatcher) {
	tb.Helper()
	db := testutil.MustOpenDB(tb)
	clock := NewClock(time.Now())
	db.Now = clock.Now
	rc := newOutageReceiver(tb)
	sid := MustSession(tb, db)
	w := MustWebhook(tb, db, &sid, rc.URL)
	o.AllowPrivate, o.Now = true, clock.Now
	return db, clock, rc, sid, w, webhook.NewDispatcher(db, o)
}

// pendingCount counts a webhook's pending deliveries.
func pendingCount(tb testing.TB, db *store.DB, webhookID string) int {
	tb.Helper()
	n := 0
	p := wabsync.Page{Limit: 1000}
	for {
		l, err := db.ListDeliveries(context.Background(), webhookID, wabsync.DeliveryPending, p)
		if err != nil {
			tb.Fatal(err)
		}
		n += len(l.Items)
		if l.NextCursor == nil {
			return n
		}
		p.After = *l.NextCursor
	}
}

// An endpoint that is down while 2,000 events pile up costs a few probes,
// not an attempt (and a write) per delivery and retry; the first probe that
// succeeds makes the whole backlog due, and it is delivered without the
// clock moving on.
func TestOutageCostsProbesAndRecoveryDrainsAtOnce(t *testing.T) {
	db, clock, rc, sid, w, d := outageSetup(t, webhook.Options{})

	// 50 events a second for 40 seconds, the dispatcher running after each
	// second's events.
	rc.down.Store(true)
	const perSecond, seconds = 50, 40
	for s := 0; s < seconds; s++ {
		mustEvents(t, db, sid, perSecond)
		MustRunOnce(t, d)
		clock.Advance(time.Second)
	}
	attempts := rc.Count()
	// Three failures open the circuit; then a probe every 5 s or so.
	if limit := 3 + 2*seconds/5; attempts > limit {
		t.Fatalf("%d attempts while the endpoint was down with %d events waiting; want at most %d (probes only)",
			attempts, perSecond*seconds, limit)
	}
	if n := pendingCount(t, db, w.ID); n != perSecond*seconds {
		t.Fatalf("%d deliveries pending, want %d", n, perSecond*seconds)
	}
	t.Logf("%d attempts while down with %d deliveries waiting", attempts, perSecond*seconds)

	// Back: the clock moves only until the first probe is made.
	rc.down.Store(false)
	for i := 0; rc.delivered() == 0; i++ {
		if i == 600 {
			t.Fatal("no probe in ten minutes")
		}
		clock.Advance(time.Second)
		MustRunOnce(t, d)
	}
	if n := rc.delivered(); n != perSecond*seconds {
		t.Fatalf("after the first success %d of %d events were delivered", n, perSecond*seconds)
	}
	if n := pendingCount(t, db, w.ID); n != 0 {
		t.Fatalf("%d deliveries still pending", n)
	}
}

// Running, the dispatcher drains a recovered endpoint's backlog without
// waiting for its poll: the success of a probe and each endpoint's room
// set off the next claims.
func TestRecoveryDrainsWithoutPolling(t *testing.T) {
	db, clock, rc, sid, w, d := outageSetup(t, webhook.Options{PollInterval: time.Hour})
	rc.down.Store(true)
	MustRun(t, db, d)

	const backlog = 2000
	for i := 0; i < backlog/100; i++ {
		mustEvents(t, db, sid, 100)
		clock.Advance(time.Second)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return rc.Count() >= 3 }, "the first attempts to fail")
	rc.down.Store(false)
	// The next probe falls due; an event wakes the dispatcher (no poll).
	clock.Advance(time.Hour)
	MustEvent(t, db, sid, wabsync.EventMessageReceived)
	testutil.Eventually(t, 60*time.Second, func() bool { return rc.delivered() == backlog+1 }, "the backlog to drain")
	testutil.Eventually(t, 10*time.Second, func() bool { return pendingCount(t, db, w.ID) == 0 }, "the last attempts to be recorded")
}

// A probe that waits for a free slot until its claim may lapse is not made
// (another worker may hold it by then); the open circuit then takes another
// probe, rather than waiting for ever for the one it let go. (Left set, the
// probe kept every claim from the endpoint: its backlog never drained.)
func TestProbeNotMadeIsTakenAgain(t *testing.T) {
	db := testutil.MustOpenDB(t)
	clock := NewClock(time.Now())
	db.Now = clock.Now
	rc := newOutageReceiver(t)
	// The other endpoint's attempt holds the one slot while the clock moves
	// past the lease of the probe queued behind it.
	other := MustReceiver(t)
	var moved atomic.Bool
	other.Respond = func(int, *http.Request) int {
		if !moved.Swap(true) {
			clock.Advance(time.Hour)
		}
		return http.StatusNoContent
	}
	sid, otherSID := MustSession(t, db), MustSession(t, db)
	w := MustWebhook(t, db, &sid, rc.URL)
	MustWebhook(t, db, &otherSID, other.URL)
	d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true, Now: clock.Now, Concurrency: 1})

	// Three failures open the circuit; the other deliveries wait for a probe.
	rc.down.Store(true)
	const events = 10
	mustEvents(t, db, sid, events)
	MustRunOnce(t, d)
	if n := rc.Count(); n != 3 {
		t.Fatalf("%d attempts while down, want 3 (then the circuit is open)", n)
	}
	// The other endpoint's delivery is due before the probe, so it is
	// claimed first, with the probe, and takes the slot first.
	MustEvent(t, db, otherSID, wabsync.EventMessageReceived)
	clock.Advance(time.Minute) // the probe falls due
	rc.down.Store(false)
	MustRunOnce(t, d)
	if !moved.Load() {
		t.Fatal("the other endpoint got no attempt")
	}
	if n := rc.delivered(); n != events {
		t.Fatalf("%d of %d events delivered after the endpoint came back", n, events)
	}
	if n := pendingCount(t, db, w.ID); n != 0 {
		t.Fatalf("%d deliveries still pending", n)
	}
}
