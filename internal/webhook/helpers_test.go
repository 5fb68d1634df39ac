package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/webhook"
)

// Clock is a fake clock that moves only when told.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t.UTC()} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t.UTC()
	c.mu.Unlock()
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Request is one request a Receiver got.
type Request struct {
	Header http.Header
	Body   []byte
}

// Receiver is a webhook endpoint on 127.0.0.1 that records what it gets and
// answers with what Respond says (200 when nil).
type Receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Request
	// Respond picks the status for the n-th request (from 1).
	Respond func(n int, r *http.Request) int
	got     chan struct{}
}

// MustReceiver starts a Receiver for the test.
func MustReceiver(tb testing.TB) *Receiver {
	tb.Helper()
	rc := &Receiver{got: make(chan struct{}, 1024)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, Request{Header: r.Header.Clone(), Body: body})
		n := len(rc.requests)
		respond := rc.Respond
		rc.mu.Unlock()
		status := http.StatusOK
		if respond != nil {
			status = respond(n, r)
		}
		w.WriteHeader(status)
		select {
		case rc.got <- struct{}{}:
		default:
		}
	}))
	tb.Cleanup(rc.Close)
	return rc
}

// Requests returns a copy of what the receiver got so far.
func (rc *Receiver) Requests() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Request(nil), rc.requests...)
}

// Count returns how many requests the receiver got.
func (rc *Receiver) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

// MustSession creates a session.
func MustSession(tb testing.TB, db *store.DB) string {
	tb.Helper()
	s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: "s", Engine: wabsync.EngineSandbox, Status: wabsync.StatusStopped}
	if err := db.CreateSession(context.Background(), s, store.HashToken(store.NewSessionToken())); err != nil {
		tb.Fatal(err)
	}
	return s.ID
}

// MustWebhook creates an enabled webhook of session sid (nil: global) with a
// new secret, and returns it with the secret.
func MustWebhook(tb testing.TB, db *store.DB, sid *string, url string, events ...string) *wabsync.Webhook {
	tb.Helper()
	if len(events) == 0 {
		events = []string{"*"}
	}
	w := &wabsync.Webhook{SessionID: sid, URL: url, Events: events, Enabled: true, Secret: webhook.NewSecret()}
	if err := db.CreateWebhook(context.Background(), w, nil); err != nil {
		tb.Fatal(err)
	}
	return w
}

// MustEvent stores an event of session sid.
func MustEvent(tb testing.TB, db *store.DB, sid string, typ string) *wabsync.Event {
	tb.Helper()
	var ev *wabsync.Event
	err := db.Update(context.Background(), func(tx *store.Tx) error {
		var err error
		ev, err = tx.AddEvent(&sid, typ, map[string]string{"hello": "world"})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

// MustDeliveries lists a webhook's deliveries, newest first.
func MustDeliveries(tb testing.TB, db *store.DB, webhookID string) []*wabsync.Delivery {
	tb.Helper()
	l, err := db.ListDeliveries(context.Background(), webhookID, "", wabsync.Page{Limit: 100})
	if err != nil {
		tb.Fatal(err)
	}
	return l.Items
}

// MustRunOnce runs the dispatcher once and returns the attempts it made.
func MustRunOnce(tb testing.TB, d *webhook.Dispatcher) int {
	tb.Helper()
	n, err := d.RunOnce(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// MustRun runs d in the background until the test ends, woken by db's
// events.
func MustRun(tb testing.TB, db *store.DB, d *webhook.Dispatcher) {
	tb.Helper()
	db.OnDeliveries = d.Notify
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	tb.Cleanup(func() {
		d.Close()
		if err := <-done; err != nil {
			tb.Errorf("run: %v", err)
		}
	})
}
