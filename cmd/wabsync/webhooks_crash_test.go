package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// TestWebhookCrashNoEventLost runs the real binary with a webhook receiver
// that is down: events pile up as deliveries that failed or wait for the
// endpoint to recover (after a few failures only probes are made, and the
// other deliveries are parked until the next one), the server is killed
// with SIGKILL and started again on the same data while the receiver is
// still down, more events follow, and once the receiver is back every event
// of both sessions arrives, signed, with no gap in either session's
// sequence.
func TestWebhookCrashNoEventLost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t0 := time.Now()
	bin := buildBinary(t)
	addr := freeAddr(t)
	p := &serverProcess{t: t, bin: bin, url: "http://" + addr, logs: &logSink{}, env: []string{
		"WABSYNC_ADDR=" + addr,
		"WABSYNC_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"WABSYNC_DATABASE_URL=" + testutil.DatabaseURL(t),
		"WABSYNC_ADMIN_TOKEN=" + testAdminToken,
		"WABSYNC_ALLOW_PRIVATE_URLS=true",
		"WABSYNC_RATE_LIMIT=1000000",
		"WABSYNC_LOG_LEVEL=warn",
		// The restarted process is a new node (the default: a random node
		// id); a short lease lets it take the dead one's sessions over soon.
		"WABSYNC_LEASE_TTL=2s",
	}}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs)
		}
	})
	p.start()
	t.Logf("built and started in %v", time.Since(t0).Round(time.Millisecond))
	ctx := context.Background()
	hc := &http.Client{Transport: mustValidator(t).Transport(t, nil), Timeout: 30 * time.Second}
	newClient := func(token string) *client.Client {
		c, err := client.New(p.url, token, client.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin := newClient(testAdminToken)
	link := func(name string) *peer {
		eng := client.Engine("sandbox")
		c, err := admin.CreateSession(ctx, client.CreateSessionRequest{Name: name, Engine: &eng, Config: &client.SessionConfig{AutoLink: ptr(true)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Connect(ctx, c.Session.ID); err != nil {
			t.Fatal(err)
		}
		return &peer{Session: waitConnected(t, admin, c.Session.ID, time.Time{}), Token: c.Token, C: newClient(c.Token)}
	}
	a, b := link("hook-crash-a"), link("hook-crash-b")

	// The receiver's address is reserved, and nothing listens on it yet.
	rcAddr := freeAddr(t)
	hookA := mustHook(t, a.C, "me", "http://"+rcAddr+"/a", "*")
	hookB := mustHook(t, b.C, "me", "http://"+rcAddr+"/b", "*")
	secrets := map[string]string{"/a": hookA.Secret, "/b": hookB.Secret}

	var sent []string // a's message ids
	send := func(phase string, n int) {
		t.Helper()
		for i := range n {
			m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: fmt.Sprintf("%s #%d", phase, i)})
			if err != nil {
				t.Fatalf("send %s #%d: %v", phase, i, err)
			}
			sent = append(sent, m.ID)
		}
		for _, id := range sent {
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				m, err := a.C.GetMessage(ctx, "me", id)
				if err == nil && m.Status == "delivered" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("message %s not delivered within 30s: %+v %v", id, m, err)
				}
			}
		}
	}
	// handled reports whether every delivery of an endpoint has been dealt
	// with: attempted (and so waiting for its retry, no claim held) or,
	// once the endpoint's circuit opened, parked until its next probe. In
	// either case its next attempt was moved past its creation.
	handled := func(c *client.Client, hook string) bool {
		for _, d := range mustDeliveries(t, c, "me", hook) {
			if len(d.Attempts) == 0 && (d.NextAttemptAt == nil || !d.NextAttemptAt.After(d.CreatedAt)) {
				return false
			}
		}
		return true
	}

	// Phase 1: the receiver is down; the first deliveries fail, the rest
	// wait for the endpoint to recover, each showing when it is tried next
	// (its retry, or the next probe). Then SIGKILL.
	send("before", 10)
	testutil.Eventually(t, 30*time.Second, func() bool { return handled(a.C, hookA.ID) && handled(b.C, hookB.ID) },
		"every delivery attempted or waiting for the endpoint's next probe")
	for _, h := range []struct {
		c  *client.Client
		id string
	}{{a.C, hookA.ID}, {b.C, hookB.ID}} {
		var attempts, waiting int
		for _, d := range mustDeliveries(t, h.c, "me", h.id) {
			if d.Status != "pending" || d.NextAttemptAt == nil {
				t.Fatalf("delivery before the kill: %+v", d)
			}
			for _, at := range d.Attempts {
				if at.Error != "connection refused" {
					t.Fatalf("delivery before the kill: %+v", d)
				}
			}
			attempts += len(d.Attempts)
			if len(d.Attempts) == 0 {
				waiting++
			}
		}
		if attempts == 0 {
			t.Fatalf("webhook %s: no attempt while the receiver was down", h.id)
		}
		t.Logf("webhook %s before the kill: %d attempts, %d deliveries waiting for the next probe", h.id, attempts, waiting)
	}
	p.kill()
	hc.CloseIdleConnections()

	// Phase 2: the same binary on the same data, the receiver still down;
	// the sessions reconnect (more events) and more messages go.
	restarted := time.Now().UTC()
	p.start()
	// The stored status still says connected: wait for a connection made by
	// the new process.
	waitConnected(t, admin, a.ID, restarted)
	waitConnected(t, admin, b.ID, restarted)
	send("after", 5)
	t1 := time.Now()

	// The receiver comes back on its address.
	rc := &hookReceiver{}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	ln, err := net.Listen("tcp", rcAddr)
	if err != nil {
		t.Fatalf("the receiver's address was taken meanwhile: %v", err)
	}
	rc.Listener = ln
	rc.Start()
	t.Cleanup(rc.Close)

	// Every delivery the server logged succeeds, and the receiver has each
	// one's event.
	var logged map[string]map[string]bool // path → event ids
	testutil.Eventually(t, 60*time.Second, func() bool {
		logged = map[string]map[string]bool{}
		for path, h := range map[string]struct {
			c  *client.Client
			id string
		}{"/a": {a.C, hookA.ID}, "/b": {b.C, hookB.ID}} {
			logged[path] = map[string]bool{}
			for _, d := range mustDeliveries(t, h.c, "me", h.id) {
				if d.Status != "succeeded" {
					return false
				}
				logged[path][d.EventID] = true
			}
		}
		return true
	}, "every delivery to succeed")
	t.Logf("every event delivered %v after the receiver came back", time.Since(t1).Round(time.Millisecond))

	got := map[string]map[string]client.Event{"/a": {}, "/b": {}} // path → webhook-id → event
	for _, req := range rc.Requests() {
		if err := verifyHook(req, secrets[req.Path], true); err != nil {
			t.Fatalf("%s %s: %v", req.Path, req.Header.Get("webhook-id"), err)
		}
		got[req.Path][req.Header.Get("webhook-id")] = req.Event
	}
	t.Run("EveryLoggedEventArrived", func(t *testing.T) {
		for path, ids := range logged {
			for id := range ids {
				if _, ok := got[path][id]; !ok {
					t.Fatalf("%s: event %s logged as delivered, never received", path, id)
				}
			}
		}
	})
	t.Run("EveryMessageEventArrived", func(t *testing.T) {
		kinds := map[string]map[string]bool{} // a's message id → event types
		var received int
		for _, e := range got["/a"] {
			var m client.Message
			if e.Type == "message.sent" || e.Type == "message.delivered" {
				if err := e.DecodeData(&m); err != nil {
					t.Fatal(err)
				}
				if kinds[m.ID] == nil {
					kinds[m.ID] = map[string]bool{}
				}
				kinds[m.ID][string(e.Type)] = true
			}
		}
		for _, e := range got["/b"] {
			if e.Type == "message.received" {
				received++
			}
		}
		for _, id := range sent {
			if !kinds[id]["message.sent"] || !kinds[id]["message.delivered"] {
				t.Fatalf("message %s: events %v at the sender", id, kinds[id])
			}
		}
		if received != len(sent) {
			t.Fatalf("%d message.received at the recipient, %d sent", received, len(sent))
		}
	})
	t.Run("NoGapInSequence", func(t *testing.T) {
		// The endpoints were made after the sessions' first events; from
		// their first event on, each session's events all arrived.
		for path, evs := range got {
			var seqs []int64
			for _, e := range evs {
				seqs = append(seqs, e.Sequence)
			}
			slices.Sort(seqs)
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]+1 {
					t.Fatalf("%s: sequence jumps from %d to %d: %v", path, seqs[i-1], seqs[i], seqs)
				}
			}
		}
	})
}
