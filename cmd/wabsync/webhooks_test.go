package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
	"github.com/wabsync/wabsync/internal/webhook"
)

// hookRequest is one request a hookReceiver got.
type hookRequest struct {
	Path   string
	Header http.Header
	Body   []byte
	Event  client.Event
}

// hookReceiver is a webhook endpoint on 127.0.0.1 that records every
// request. status picks the answer to the n-th request (from 1; nil: 200);
// while hold is open (non-nil and not closed) requests wait for it.
type hookReceiver struct {
	*httptest.Server
	status func(n int) int
	hold   chan struct{}

	mu          sync.Mutex
	reqs        []hookRequest
	inflight    int
	maxInflight int
}

// mustHookReceiver starts a hookReceiver for the test.
func mustHookReceiver(tb testing.TB, status func(n int) int, hold chan struct{}) *hookReceiver {
	tb.Helper()
	rc := &hookReceiver{status: status, hold: hold}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	tb.Cleanup(rc.Close)
	return rc
}

func (rc *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := hookRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	_ = json.Unmarshal(body, &req.Event)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, req)
	n := len(rc.reqs)
	rc.inflight++
	rc.maxInflight = max(rc.maxInflight, rc.inflight)
	rc.mu.Unlock()
	if rc.hold != nil {
		select {
		case <-rc.hold:
		case <-r.Context().Done():
		}
	}
	rc.mu.Lock()
	rc.inflight--
	rc.mu.Unlock()
	st := http.StatusOK
	if rc.status != nil {
		st = rc.status(n)
	}
	w.WriteHeader(st)
}

// Requests returns a copy of the requests so far, in arrival order.
func (rc *hookReceiver) Requests() []hookRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// Count returns how many requests arrived.
func (rc *hookReceiver) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

// Events returns the distinct events received (by webhook-id), in order of
// first arrival.
func (rc *hookReceiver) Events() []client.Event {
	seen := map[string]bool{}
	var out []client.Event
	for _, r := range rc.Requests() {
		if id := r.Header.Get("webhook-id"); !seen[id] {
			seen[id] = true
			out = append(out, r.Event)
		}
	}
	return out
}

// MaxInflight returns the most requests that were open at once.
func (rc *hookReceiver) MaxInflight() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.maxInflight
}

// hookClock is a fake clock that moves only when told.
type hookClock struct {
	mu sync.Mutex
	t  time.Time
}

func newHookClock(t time.Time) *hookClock { return &hookClock{t: t.UTC()} }

// Now returns the clock's time.
func (c *hookClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *hookClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t.UTC()
	c.mu.Unlock()
}

// mustRunMainWith starts a server like mustRunMain with Main's test hooks:
// clock (nil: real time) is the clock of the database and the webhook
// dispatcher, and with manual the dispatcher does not run: the test drives
// it with runWebhooks.
func mustRunMainWith(tb testing.TB, clock func() time.Time, manual bool, mods ...func(*Config)) *testServer {
	tb.Helper()
	cfg := testConfig(tb)
	for _, f := range mods {
		f(&cfg)
	}
	return mustRunHooked(tb, cfg, func(m *Main) { m.clock, m.webhooksManual = clock, manual })
}

// runWebhooks makes every delivery that is due (manual dispatcher) and
// returns how many attempts it made.
func (ts *testServer) runWebhooks() int {
	ts.t.Helper()
	n, err := ts.Webhooks.RunOnce(context.Background())
	if err != nil {
		ts.t.Fatalf("run webhooks: %v", err)
	}
	return n
}

// hookFilter converts event types to the SDK's filter type.
func hookFilter(events []string) []client.WebhookEventFilter {
	out := make([]client.WebhookEventFilter, len(events))
	for i, e := range events {
		out[i] = client.WebhookEventFilter(e)
	}
	return out
}

// mustHook creates a webhook of session (global when "") for url.
func mustHook(tb testing.TB, c *client.Client, session, url string, events ...string) *client.WebhookWithSecret {
	tb.Helper()
	req := client.CreateWebhookRequest{URL: url, Events: hookFilter(events)}
	if session != "" {
		w, err := c.CreateWebhook(context.Background(), session, req)
		if err != nil {
			tb.Fatalf("create webhook: %v", err)
		}
		return w
	}
	r, err := c.CreateGlobalWebhookWithResponse(context.Background(), nil, req)
	if err != nil || r.JSON201 == nil {
		tb.Fatalf("create global webhook: %v %s", err, bodyOf(r))
	}
	return &r.JSON201.Data
}

// bodyOf returns a generated response's status and body for a failure
// message.
func bodyOf(r any) string {
	v := reflect.ValueOf(r)
	if !v.IsValid() || v.IsNil() {
		return "(no response)"
	}
	v = v.Elem()
	status := 0
	if hr, ok := v.FieldByName("HTTPResponse").Interface().(*http.Response); ok && hr != nil {
		status = hr.StatusCode
	}
	return strconv.Itoa(status) + " " + string(v.FieldByName("Body").Bytes())
}

// mustTestEvent queues a webhook.test event for webhook id of session and
// returns its delivery.
func mustTestEvent(tb testing.TB, c *client.Client, session, id string) *client.Delivery {
	tb.Helper()
	r, err := c.TestWebhookWithResponse(context.Background(), session, id, nil)
	if err != nil || r.JSON200 == nil {
		tb.Fatalf("test webhook: %v %s", err, bodyOf(r))
	}
	return &r.JSON200.Data
}

// mustDeliveries lists the deliveries of webhook id of session, newest first.
func mustDeliveries(tb testing.TB, c *client.Client, session, id string) []client.Delivery {
	tb.Helper()
	limit := 100
	r, err := c.ListWebhookDeliveriesWithResponse(context.Background(), session, id, &client.ListWebhookDeliveriesParams{Limit: &limit})
	if err != nil || r.JSON200 == nil {
		tb.Fatalf("list deliveries: %v %s", err, bodyOf(r))
	}
	return r.JSON200.Data.Items
}

// mustDelivery returns delivery dl of webhook id of session.
func mustDelivery(tb testing.TB, c *client.Client, session, id, dl string) client.Delivery {
	tb.Helper()
	for _, d := range mustDeliveries(tb, c, session, id) {
		if d.ID == dl {
			return d
		}
	}
	tb.Fatalf("delivery %s not in the log of webhook %s", dl, id)
	return client.Delivery{}
}

// mustGetHook returns webhook id of session.
func mustGetHook(tb testing.TB, c *client.Client, session, id string) client.Webhook {
	tb.Helper()
	r, err := c.GetWebhookWithResponse(context.Background(), session, id)
	if err != nil || r.JSON200 == nil {
		tb.Fatalf("get webhook: %v %s", err, bodyOf(r))
	}
	return r.JSON200.Data
}

// verifyHook checks req's signature with a stock Standard Webhooks library
// and secret. With a fake clock the timestamp is checked by the caller
// instead of against the real time.
func verifyHook(req hookRequest, secret string, realTime bool) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	if realTime {
		return wh.Verify(req.Body, req.Header)
	}
	return wh.VerifyIgnoringTimestamp(req.Body, req.Header)
}

func TestWebhookMessageEvents(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	sender, recipient, recipientAll, global := mustHookReceiver(t, nil, nil), mustHookReceiver(t, nil, nil),
		mustHookReceiver(t, nil, nil), mustHookReceiver(t, nil, nil)
	yes := true
	a, tokA := ts.sandboxSession("alice", client.SessionConfig{AutoLink: &yes})
	b, tokB := ts.sandboxSession("bob", client.SessionConfig{AutoLink: &yes})
	ca, cb := ts.Client(tokA), ts.Client(tokB)
	// Each session's own token creates its endpoints; the admin adds one
	// for every event of b and a global one.
	hookA := mustHook(t, ca, "me", sender.URL+"/a", "message.sent", "message.delivered")
	hookB := mustHook(t, cb, "me", recipient.URL+"/b", "message.received")
	hookBAll := mustHook(t, ts.Admin, b.ID, recipientAll.URL, "*")
	hookG := mustHook(t, ts.Admin, "", global.URL, "*")
	for _, s := range []*client.Session{a, b} {
		if _, err := ts.Admin.Connect(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	a = ts.waitStatus(a.ID, "connected", 10*time.Second)
	b = ts.waitStatus(b.ID, "connected", 10*time.Second)

	texts := []string{"one", "two", "three"}
	sentIDs := map[string]string{} // sender's message id → text
	for _, text := range texts {
		m, err := ca.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		sentIDs[m.ID] = text
	}
	countOf := func(rc *hookReceiver, typ string) int {
		n := 0
		for _, e := range rc.Events() {
			if string(e.Type) == typ {
				n++
			}
		}
		return n
	}
	testutil.Eventually(t, 15*time.Second, func() bool {
		return countOf(sender, "message.sent") == len(texts) && countOf(sender, "message.delivered") == len(texts) &&
			countOf(recipient, "message.received") == len(texts) && countOf(recipientAll, "message.received") == len(texts) &&
			countOf(global, "message.received") == len(texts) && countOf(global, "message.delivered") == len(texts)
	}, "message events at every endpoint: sender %d, recipient %d, recipient (*) %d, global %d",
		sender.Count(), recipient.Count(), recipientAll.Count(), global.Count())

	t.Run("ReceivedAtRecipient", func(t *testing.T) {
		got := map[string]bool{}
		for _, e := range recipient.Events() {
			var m client.Message
			if err := e.DecodeData(&m); err != nil {
				t.Fatal(err)
			}
			if e.SessionID == nil || *e.SessionID != b.ID || m.Direction != "in" || m.From != a.Phone || m.Text == nil {
				t.Fatalf("message.received %+v: %+v", e, m)
			}
			got[*m.Text] = true
		}
		for _, text := range texts {
			if !got[text] {
				t.Fatalf("no message.received for %q: %v", text, got)
			}
		}
	})
	t.Run("SentAndDeliveredAtSender", func(t *testing.T) {
		seq := map[string]map[string]int64{} // message id → type → sequence
		for _, e := range sender.Events() {
			var m client.Message
			if err := e.DecodeData(&m); err != nil {
				t.Fatal(err)
			}
			if e.SessionID == nil || *e.SessionID != a.ID || m.Direction != "out" || sentIDs[m.ID] == "" {
				t.Fatalf("%s %+v: %+v", e.Type, e, m)
			}
			if seq[m.ID] == nil {
				seq[m.ID] = map[string]int64{}
			}
			seq[m.ID][string(e.Type)] = e.Sequence
		}
		for id := range sentIDs {
			s, d := seq[id]["message.sent"], seq[id]["message.delivered"]
			if s == 0 || d == 0 || s >= d {
				t.Fatalf("message %s: sent at sequence %d, delivered at %d", id, s, d)
			}
		}
	})
	hooks := []struct {
		name   string
		rc     *hookReceiver
		secret string
	}{{"Sender", sender, hookA.Secret}, {"Recipient", recipient, hookB.Secret}, {"RecipientAll", recipientAll, hookBAll.Secret}, {"Global", global, hookG.Secret}}
	t.Run("StockLibraryVerifies", func(t *testing.T) {
		for _, h := range hooks {
			for _, req := range h.rc.Requests() {
				if err := verifyHook(req, h.secret, true); err != nil {
					t.Fatalf("%s: %s %s: %v", h.name, req.Header.Get("webhook-id"), req.Event.Type, err)
				}
				if err := verifyHook(req, hookG.Secret, true); h.name != "Global" && err == nil {
					t.Fatalf("%s: verified with another endpoint's secret", h.name)
				}
			}
		}
	})
	t.Run("Headers", func(t *testing.T) {
		for _, h := range hooks {
			for _, req := range h.rc.Requests() {
				if id := req.Header.Get("webhook-id"); id == "" || id != req.Event.ID {
					t.Fatalf("%s: webhook-id %q, event id %q", h.name, id, req.Event.ID)
				}
				if ct := req.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("%s: Content-Type %q", h.name, ct)
				}
				if !strings.HasPrefix(req.Header.Get("User-Agent"), "WabSync-Webhooks/") {
					t.Fatalf("%s: User-Agent %q", h.name, req.Header.Get("User-Agent"))
				}
			}
		}
	})
	t.Run("FiltersHold", func(t *testing.T) {
		want := map[string][]string{
			"Sender":    {"message.sent", "message.delivered"},
			"Recipient": {"message.received"},
		}
		for _, h := range hooks[:2] {
			for _, e := range h.rc.Events() {
				if !slices.Contains(want[h.name], string(e.Type)) {
					t.Fatalf("%s got %s, filter %v", h.name, e.Type, want[h.name])
				}
			}
		}
		types := map[string]bool{}
		for _, e := range recipientAll.Events() {
			if e.SessionID == nil || *e.SessionID != b.ID {
				t.Fatalf("b's endpoint got an event of session %v", e.SessionID)
			}
			types[string(e.Type)] = true
		}
		if !types["session.status"] || !types["message.received"] {
			t.Fatalf(`"*" endpoint of b got only %v`, types)
		}
	})
	t.Run("GlobalGetsEverySession", func(t *testing.T) {
		sessions := map[string]bool{}
		for _, e := range global.Events() {
			if e.SessionID != nil {
				sessions[*e.SessionID] = true
			}
		}
		if !sessions[a.ID] || !sessions[b.ID] {
			t.Fatalf("global endpoint got events of %v, want %s and %s", sessions, a.ID, b.ID)
		}
	})
	t.Run("SequenceIncreasesPerSession", func(t *testing.T) {
		// Deliveries may arrive out of order (several are in flight at
		// once): sorted by sequence, a session's events are in the order
		// they happened, with no gap once every one has arrived.
		for _, h := range []*hookReceiver{recipientAll, global} {
			testutil.Eventually(t, 10*time.Second, func() bool {
				bySession := map[string][]client.Event{}
				for _, e := range h.Events() {
					if e.SessionID != nil {
						bySession[*e.SessionID] = append(bySession[*e.SessionID], e)
					}
				}
				for sid, evs := range bySession {
					slices.SortFunc(evs, func(x, y client.Event) int { return int(x.Sequence - y.Sequence) })
					for i := 1; i < len(evs); i++ {
						if evs[i].Sequence == evs[i-1].Sequence {
							t.Fatalf("session %s: events %s and %s share sequence %d", sid, evs[i-1].ID, evs[i].ID, evs[i].Sequence)
						}
						if evs[i].CreatedAt.Before(evs[i-1].CreatedAt) {
							t.Fatalf("session %s: sequence %d created before %d", sid, evs[i].Sequence, evs[i-1].Sequence)
						}
						if evs[i].Sequence != evs[i-1].Sequence+1 {
							return false // a gap, until the missing event arrives
						}
					}
				}
				return len(bySession) > 0
			}, "sequences without gaps")
		}
	})
}

func TestWebhookRetriesOnClock(t *testing.T) {
	clock := newHookClock(time.Now())
	ts := mustRunMainWith(t, clock.Now, true)
	const failures = 3
	rc := mustHookReceiver(t, func(n int) int {
		if n <= failures {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	}, nil)
	_, tok := ts.sandboxSession("retry", client.SessionConfig{})
	c := ts.Client(tok)
	hook := mustHook(t, c, "me", rc.URL, "*")
	dl := mustTestEvent(t, c, "me", hook.ID)

	t.Run("GrowingDelaysUntilSuccess", func(t *testing.T) {
		for i := 0; ; i++ {
			if n := ts.runWebhooks(); n != 1 {
				t.Fatalf("round %d: %d attempts, want 1", i, n)
			}
			d := mustDelivery(t, c, "me", hook.ID, dl.ID)
			if len(d.Attempts) != i+1 {
				t.Fatalf("round %d: %d attempts in the log", i, len(d.Attempts))
			}
			if i == failures {
				if d.Status != "succeeded" || d.NextAttemptAt != nil {
					t.Fatalf("after the receiver recovered: %+v", d)
				}
				break
			}
			if d.Status != "pending" || d.NextAttemptAt == nil {
				t.Fatalf("round %d: %+v", i, d)
			}
			// Not a moment early.
			clock.Set(d.NextAttemptAt.Add(-time.Second))
			if n := ts.runWebhooks(); n != 0 {
				t.Fatalf("round %d: %d attempts before the retry was due", i, n)
			}
			clock.Set(*d.NextAttemptAt)
		}
		a := mustDelivery(t, c, "me", hook.ID, dl.ID).Attempts
		var prev time.Duration
		for i := 1; i < len(a); i++ {
			gap := a[i].At.Sub(a[i-1].At)
			sched := webhook.DefaultSchedule[i-1]
			lo, hi := time.Duration(float64(sched)*(1-webhook.Jitter)), time.Duration(float64(sched)*(1+webhook.Jitter))
			if gap <= prev || gap < lo-time.Second || gap > hi+time.Second {
				t.Fatalf("retry %d came %v after the previous attempt; want more than %v, within %v..%v", i, gap, prev, lo, hi)
			}
			prev = gap
		}
	})
	t.Run("DeliveryLogListsEveryAttempt", func(t *testing.T) {
		d := mustDelivery(t, c, "me", hook.ID, dl.ID)
		var codes []int
		for i, a := range d.Attempts {
			codes = append(codes, a.StatusCode)
			if (i < failures) != (a.Error == "HTTP 500") {
				t.Fatalf("attempt %d: error %q", i, a.Error)
			}
		}
		if !slices.Equal(codes, []int{500, 500, 500, 204}) || d.EventType != "webhook.test" {
			t.Fatalf("attempt status codes %v, delivery %+v", codes, d)
		}
		st := client.DeliveryStatusQuery("succeeded")
		r, err := c.ListWebhookDeliveriesWithResponse(context.Background(), "me", hook.ID, &client.ListWebhookDeliveriesParams{Status: &st})
		if err != nil || r.JSON200 == nil || len(r.JSON200.Data.Items) != 1 {
			t.Fatalf("succeeded deliveries: %v %s", err, bodyOf(r))
		}
	})
	t.Run("SameEventSignedOnEveryAttempt", func(t *testing.T) {
		reqs := rc.Requests()
		a := mustDelivery(t, c, "me", hook.ID, dl.ID).Attempts
		if len(reqs) != len(a) {
			t.Fatalf("%d requests, %d attempts", len(reqs), len(a))
		}
		for i, req := range reqs {
			if req.Header.Get("webhook-id") != dl.EventID || string(req.Body) != string(reqs[0].Body) {
				t.Fatalf("attempt %d: webhook-id %s, body %s", i, req.Header.Get("webhook-id"), req.Body)
			}
			if ts := req.Header.Get("webhook-timestamp"); ts != strconv.FormatInt(a[i].At.Unix(), 10) {
				t.Fatalf("attempt %d: webhook-timestamp %s, attempted at %v", i, ts, a[i].At)
			}
			if err := verifyHook(req, hook.Secret, false); err != nil {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
	})
	t.Run("RetryNowDeliversAgain", func(t *testing.T) {
		r, err := c.RetryWebhookDeliveryWithResponse(context.Background(), "me", hook.ID, dl.ID, nil)
		if err != nil || r.JSON200 == nil || r.JSON200.Data.Status != "pending" {
			t.Fatalf("retry: %v %s", err, bodyOf(r))
		}
		if n := ts.runWebhooks(); n != 1 {
			t.Fatalf("%d attempts after retry-now", n)
		}
		d := mustDelivery(t, c, "me", hook.ID, dl.ID)
		if rc.Count() != failures+2 || len(d.Attempts) != failures+2 || d.Status != "succeeded" {
			t.Fatalf("after retry-now: %d requests, delivery %+v", rc.Count(), d)
		}
		if got := rc.Requests()[failures+1].Header.Get("webhook-id"); got != dl.EventID {
			t.Fatalf("retry's webhook-id %s, want %s", got, dl.EventID)
		}
	})
}

func TestWebhookDisabledAfterFailing(t *testing.T) {
	clock := newHookClock(time.Now())
	ts := mustRunMainWith(t, clock.Now, true)
	failing := mustHookReceiver(t, func(int) int { return http.StatusServiceUnavailable }, nil)
	watcher := mustHookReceiver(t, nil, nil)
	_, tok := ts.sandboxSession("disable", client.SessionConfig{})
	c := ts.Client(tok)
	hookF := mustHook(t, c, "me", failing.URL, "*")
	hookW := mustHook(t, c, "me", watcher.URL, "webhook.disabled")
	dl := mustTestEvent(t, c, "me", hookF.ID)
	start := clock.Now()
	for i := 0; ; i++ {
		if i > 40 {
			t.Fatalf("still not given up after %d attempts", i)
		}
		if n := ts.runWebhooks(); n < 1 {
			t.Fatalf("round %d: no attempt", i)
		}
		d := mustDelivery(t, c, "me", hookF.ID, dl.ID)
		if d.NextAttemptAt == nil {
			if d.Status != "failed" {
				t.Fatalf("gave up with status %s", d.Status)
			}
			break
		}
		if w := mustGetHook(t, c, "me", hookF.ID); !w.Enabled {
			t.Fatalf("disabled after %v, before its retries ran out", clock.Now().Sub(start))
		}
		clock.Set(*d.NextAttemptAt)
	}
	if days := clock.Now().Sub(start); days < 72*time.Hour {
		t.Fatalf("gave up after %v, want at least 3 days", days)
	}

	t.Run("EndpointDisabled", func(t *testing.T) {
		w := mustGetHook(t, c, "me", hookF.ID)
		if w.Enabled || !strings.Contains(w.DisabledReason, "HTTP 503") {
			t.Fatalf("webhook %+v", w)
		}
	})
	t.Run("WebhookDisabledEventToTheOther", func(t *testing.T) {
		reqs := watcher.Requests()
		if len(reqs) != 1 || reqs[0].Event.Type != "webhook.disabled" {
			t.Fatalf("watcher got %d requests: %+v", len(reqs), reqs)
		}
		if err := verifyHook(reqs[0], hookW.Secret, false); err != nil {
			t.Fatal(err)
		}
		var w client.Webhook
		if err := reqs[0].Event.DecodeData(&w); err != nil {
			t.Fatal(err)
		}
		if w.ID != hookF.ID || w.Enabled || w.DisabledReason == "" || w.Secret != nil {
			t.Fatalf("webhook.disabled data %s", reqs[0].Event.Data)
		}
		if strings.Contains(string(reqs[0].Body), hookF.Secret) {
			t.Fatal("webhook.disabled carries the secret")
		}
	})
	t.Run("RetryOfDisabledIsConflict", func(t *testing.T) {
		r, err := c.RetryWebhookDeliveryWithResponse(context.Background(), "me", hookF.ID, dl.ID, nil)
		if err != nil || r.JSON409 == nil {
			t.Fatalf("retry: %v %s", err, bodyOf(r))
		}
	})
	t.Run("ReenableAndRetry", func(t *testing.T) {
		yes := true
		r, err := c.UpdateWebhookWithResponse(context.Background(), "me", hookF.ID, client.UpdateWebhookRequest{Enabled: &yes})
		if err != nil || r.JSON200 == nil || !r.JSON200.Data.Enabled || r.JSON200.Data.DisabledReason != "" {
			t.Fatalf("re-enable: %v %+v", err, r)
		}
		before := failing.Count()
		rr, err := c.RetryWebhookDeliveryWithResponse(context.Background(), "me", hookF.ID, dl.ID, nil)
		if err != nil || rr.JSON200 == nil {
			t.Fatalf("retry: %v %s", err, bodyOf(rr))
		}
		if n := ts.runWebhooks(); n != 1 || failing.Count() != before+1 {
			t.Fatalf("%d attempts, receiver got %d more", n, failing.Count()-before)
		}
	})
}

func TestWebhookSlowReceiverDoesNotDelayOthers(t *testing.T) {
	ts := mustRunMain(t)
	hold := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) })
	slow := mustHookReceiver(t, nil, hold)
	fast := mustHookReceiver(t, nil, nil)
	_, tok := ts.sandboxSession("slow", client.SessionConfig{})
	c := ts.Client(tok)
	hookS := mustHook(t, c, "me", slow.URL, "*")
	hookF := mustHook(t, c, "me", fast.URL, "*")
	const slowEvents, fastEvents = 10, 3
	for range slowEvents {
		mustTestEvent(t, c, "me", hookS.ID)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return slow.Count() > 0 }, "the slow receiver's first request")
	for range fastEvents {
		mustTestEvent(t, c, "me", hookF.ID)
	}
	// The slow receiver answers nothing until released: the fast one gets
	// its events meanwhile, and they are logged as succeeded (the log is
	// written just after the receiver answers).
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, d := range mustDeliveries(t, c, "me", hookF.ID) {
			if d.Status != "succeeded" {
				return false
			}
		}
		return fast.Count() == fastEvents
	}, "the fast receiver's events, logged")
	t.Run("SlowEndpointBounded", func(t *testing.T) {
		// Options.PerEndpoint defaults to 4 attempts in flight per endpoint.
		if n := slow.MaxInflight(); n < 1 || n > 4 {
			t.Fatalf("%d requests open at the slow receiver at once", n)
		}
		if n := len(mustDeliveries(t, c, "me", hookS.ID)); n != slowEvents {
			t.Fatalf("%d deliveries in the slow endpoint's log", n)
		}
	})
	release.Do(func() { close(hold) })
	testutil.Eventually(t, 20*time.Second, func() bool { return len(slow.Events()) == slowEvents }, "the slow receiver's events after release")
	t.Run("FastEndpointLogged", func(t *testing.T) {
		for _, d := range mustDeliveries(t, c, "me", hookF.ID) {
			if d.Status != "succeeded" || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 200 {
				t.Fatalf("fast delivery %+v", d)
			}
		}
	})
}

func TestWebhookEndpoints(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	rc := mustHookReceiver(t, nil, nil)
	a, tokA := ts.sandboxSession("a", client.SessionConfig{})
	b, tokB := ts.sandboxSession("b", client.SessionConfig{})
	ca := ts.Client(tokA)
	hookA := mustHook(t, ca, "me", rc.URL+"/a", "*")
	hookB := mustHook(t, ts.Client(tokB), "me", rc.URL+"/b", "*")
	hookG := mustHook(t, ts.Admin, "", rc.URL+"/g", "*")

	t.Run("SecretShownOnce", func(t *testing.T) {
		if !strings.HasPrefix(hookA.Secret, "whsec_") {
			t.Fatalf("secret %q", hookA.Secret)
		}
		for _, path := range []string{"/api/v1/sessions/me/webhooks/" + hookA.ID, "/api/v1/sessions/me/webhooks",
			"/api/v1/sessions/me/webhooks/" + hookA.ID + "/deliveries"} {
			r := ts.Do("GET", path, tokA, nil)
			if r.Status != 200 || strings.Contains(string(r.Body), `"secret"`) || strings.Contains(string(r.Body), hookA.Secret) {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
		}
		r := ts.Do("GET", "/api/v1/webhooks/"+hookG.ID, testAdminToken, nil)
		if r.Status != 200 || strings.Contains(string(r.Body), `"secret"`) {
			t.Fatalf("GET global: %d %s", r.Status, r.Body)
		}
	})
	t.Run("GivenSecret", func(t *testing.T) {
		secret := webhook.NewSecret()
		w, err := ca.CreateWebhook(ctx, "me", client.CreateWebhookRequest{URL: rc.URL, Secret: &secret})
		if err != nil || w.Secret != secret {
			t.Fatalf("%+v %v", w, err)
		}
		bad := "whsec_short"
		_, err = ca.CreateWebhook(ctx, "me", client.CreateWebhookRequest{URL: rc.URL, Secret: &bad})
		if e, ok := client.AsAPIError(err); !ok || e.StatusCode != 422 || e.Details["secret"] == "" {
			t.Fatalf("bad secret: %v", err)
		}
	})
	t.Run("RotationSignsWithBothDuringGrace", func(t *testing.T) {
		r, err := ca.RotateWebhookSecretWithResponse(ctx, "me", hookA.ID, nil)
		if err != nil || r.JSON200 == nil {
			t.Fatalf("rotate: %v %s", err, bodyOf(r))
		}
		rotated := r.JSON200.Data
		if !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.Secret == hookA.Secret {
			t.Fatalf("rotated: %s", r.Body)
		}
		if g := ts.Do("GET", "/api/v1/sessions/me/webhooks/"+hookA.ID, tokA, nil); strings.Contains(string(g.Body), rotated.Secret) {
			t.Fatalf("GET after rotation shows the secret: %s", g.Body)
		}
		dl := mustTestEvent(t, ca, "me", hookA.ID)
		var req hookRequest
		testutil.Eventually(t, 10*time.Second, func() bool {
			for _, r := range rc.Requests() {
				if r.Header.Get("webhook-id") == dl.EventID {
					req = r
					return true
				}
			}
			return false
		}, "the test event")
		for name, s := range map[string]string{"Old": hookA.Secret, "New": rotated.Secret} {
			if err := verifyHook(req, s, true); err != nil {
				t.Fatalf("%s secret: %v", name, err)
			}
		}
	})
	t.Run("SessionTokenCannotReachAnother", func(t *testing.T) {
		for _, path := range []string{
			"/api/v1/sessions/" + b.ID + "/webhooks",
			"/api/v1/sessions/" + b.ID + "/webhooks/" + hookB.ID,
			"/api/v1/sessions/me/webhooks/" + hookB.ID,
			"/api/v1/sessions/" + a.ID + "/webhooks/" + hookB.ID,
			"/api/v1/sessions/me/webhooks/" + hookG.ID,
			"/api/v1/sessions/me/webhooks/" + hookB.ID + "/deliveries",
		} {
			if r := ts.Do("GET", path, tokA, nil); r.Status != 404 || r.Err(t).Code != "NOT_FOUND" {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
		}
		for _, path := range []string{"/webhooks/" + hookB.ID + "/test", "/webhooks/" + hookB.ID + "/secret"} {
			if r := ts.Do("POST", "/api/v1/sessions/me"+path, tokA, nil); r.Status != 404 {
				t.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
			}
		}
		if r := ts.Do("PATCH", "/api/v1/sessions/me/webhooks/"+hookB.ID, tokA, map[string]any{"enabled": false}); r.Status != 404 {
			t.Fatalf("PATCH: %d %s", r.Status, r.Body)
		}
		if r := ts.Do("DELETE", "/api/v1/sessions/me/webhooks/"+hookB.ID, tokA, nil); r.Status != 404 {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
		if r := ts.Do("GET", "/api/v1/webhooks", tokA, nil); r.Status != 403 {
			t.Fatalf("global webhooks with a session token: %d %s", r.Status, r.Body)
		}
		if w := mustGetHook(t, ts.Admin, b.ID, hookB.ID); !w.Enabled {
			t.Fatalf("b's webhook changed: %+v", w)
		}
	})
	t.Run("FilterValidation", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sessions/me/webhooks", tokA, map[string]any{"url": rc.URL, "events": []string{"message.received", "message.nope"}})
		if r.Status != 422 || r.Err(t).Details["events[1]"] == "" {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
}

func TestWebhookPrivateTargetsRefused(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.AllowPrivateURLs = false })
	_, tok := ts.sandboxSession("private", client.SessionConfig{})
	for name, url := range map[string]string{
		"Loopback":  "http://127.0.0.1:8080/hook",
		"Localhost": "http://localhost/hook",
		"IPv6":      "http://[::1]/hook",
		"Private":   "http://10.1.2.3/hook",
		"Home":      "https://192.168.1.10/hook",
		"LinkLocal": "http://169.254.10.10/hook",
		"Metadata":  "http://169.254.169.254/latest/meta-data",
		"Scheme":    "ftp://1.1.1.1/hook",
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/sessions/me/webhooks", "/api/v1/webhooks"} {
				token := tok
				if path == "/api/v1/webhooks" {
					token = testAdminToken
				}
				r := ts.Do("POST", path, token, map[string]any{"url": url})
				if r.Status != 422 || r.Err(t).Details["url"] == "" {
					t.Fatalf("POST %s %s: %d %s", path, url, r.Status, r.Body)
				}
			}
		})
	}
	t.Run("PublicAddressAccepted", func(t *testing.T) {
		w := mustHook(t, ts.Client(tok), "me", "https://1.1.1.1/hook", "*")
		r := ts.Do("PATCH", "/api/v1/sessions/me/webhooks/"+w.ID, tok, map[string]any{"url": "http://127.0.0.1/hook"})
		if r.Status != 422 || r.Err(t).Details["url"] == "" {
			t.Fatalf("PATCH to a private URL: %d %s", r.Status, r.Body)
		}
	})
}
