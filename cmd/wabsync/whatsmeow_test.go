package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
)

// TestWhatsmeowWithoutRouteFails: with no route to WhatsApp (here a proxy on
// 127.0.0.1 where nothing listens, so no traffic leaves the machine), a
// whatsmeow session goes starting → reconnecting with growing delays →
// failed with a reason that says it could not reach WhatsApp; it retries a
// bounded number of times, and the rest of the server carries on meanwhile.
func TestWhatsmeowWithoutRouteFails(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.ReconnectBase = 100 * time.Millisecond; c.AllowPrivateURLs = true })
	ctx := context.Background()
	eng := client.Engine("whatsmeow")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := "http://" + ln.Addr().String()
	ln.Close()
	created, err := ts.Admin.CreateSession(ctx, client.CreateSessionRequest{Name: "real phone", Engine: &eng,
		Config: &client.SessionConfig{Proxy: &refusing}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.Session.ID
	events := make(chan client.SessionStatusData, 100)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	zero := int64(0)
	go ts.Admin.StreamEvents(sctx, id, &client.StreamSessionEventsParams{After: &zero}, func(ev *client.Event) error {
		var d client.SessionStatusData
		if string(ev.Type) == "session.status" && ev.DecodeData(&d) == nil {
			events <- d
		}
		return nil
	})
	if _, err := ts.Admin.Connect(ctx, id); err != nil {
		t.Fatal(err)
	}

	// Meanwhile sandbox sessions work as usual.
	a, _ := ts.linkedSession("a", client.SessionConfig{})
	b, _ := ts.linkedSession("b", client.SessionConfig{})
	m, err := ts.Admin.SendText(ctx, a.ID, client.SendTextRequest{To: client.Recipient(b.Phone), Text: "still working"})
	if err != nil {
		t.Fatal(err)
	}

	final := ts.waitStatus(id, "failed", 60*time.Second)
	if !strings.Contains(final.StatusReason, "WhatsApp") || !strings.Contains(final.StatusReason, "attempts") {
		t.Fatalf("reason %q does not say it could not reach WhatsApp", final.StatusReason)
	}
	var seen []client.SessionStatusData
	deadline := time.After(5 * time.Second)
collect:
	for {
		select {
		case d := <-events:
			seen = append(seen, d)
			if d.Status == "failed" {
				break collect
			}
		case <-deadline:
			t.Fatalf("no failed event; saw %+v", seen)
		}
	}
	if seen[0].Status != "starting" {
		t.Fatalf("first status %s, want starting", seen[0].Status)
	}
	// The retry delays grow: each reconnecting reason names its delay.
	var delays []time.Duration
	for _, d := range seen {
		if d.Status != "reconnecting" {
			continue
		}
		i := strings.LastIndex(d.Reason, "Retrying in ")
		if i < 0 {
			t.Fatalf("reason without delay: %q", d.Reason)
		}
		dur, err := time.ParseDuration(strings.TrimSuffix(d.Reason[i+len("Retrying in "):], "."))
		if err != nil {
			t.Fatalf("delay in %q: %v", d.Reason, err)
		}
		delays = append(delays, dur)
	}
	if len(delays) < 3 || len(delays) > 8 {
		t.Fatalf("%d retries; want a bounded few", len(delays))
	}
	if delays[len(delays)-1] < 3*delays[0] {
		t.Fatalf("delays do not grow: %v", delays)
	}
	testutilEventuallyDelivered(t, ts, a.ID, m.ID)
}

// testutilEventuallyDelivered waits for a message to be delivered.
func testutilEventuallyDelivered(t *testing.T, ts *testServer, session, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := ts.Admin.GetMessage(context.Background(), session, id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Status == "delivered" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s is %s", id, m.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
