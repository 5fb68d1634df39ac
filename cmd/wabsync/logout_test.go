package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/store"
)

const (
	phoneOld = "+15550100111" // the account a session is linked to first
	phoneNew = "+15550100222" // the account it is linked to after a logout
)

// queueOffline disconnects p and queues n texts to `to`; it returns their ids.
func queueOffline(t *testing.T, ts *testServer, p *peer, to string, n int) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := ts.Admin.Disconnect(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		m, err := p.C.SendText(ctx, "me", client.SendTextRequest{To: to, Text: fmt.Sprintf("queued before the logout %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != "queued" || m.From != phoneOld {
			t.Fatalf("accepted message %+v", m)
		}
		ids[i] = m.ID
	}
	return ids
}

// relink links p's session to phone (sandbox, at once on connect) and waits
// until it is connected.
func relink(t *testing.T, ts *testServer, p *peer, phone string) {
	t.Helper()
	ctx := context.Background()
	yes := true
	if _, err := ts.Admin.UpdateSession(ctx, p.ID, client.UpdateSessionRequest{Config: &client.SessionConfig{AutoLink: &yes, Phone: &phone}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Admin.Connect(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if s := ts.waitStatus(p.ID, "connected", 10*time.Second); s.Phone != phone {
		t.Fatalf("relinked as %s, want %s", s.Phone, phone)
	}
}

// wantLoggedOutFailures checks that every message in ids failed with
// SESSION_LOGGED_OUT, each with its message.failed event.
func wantLoggedOutFailures(t *testing.T, p *peer, ids []string) {
	t.Helper()
	for _, id := range ids {
		m := waitStatusOf(t, p, id, "failed")
		if m.Error == nil || m.Error.Code != "SESSION_LOGGED_OUT" || m.Error.Message == "" {
			t.Fatalf("message %s error %+v", id, m.Error)
		}
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.C.StreamEvents(ctx, "me", &client.StreamSessionEventsParams{After: ptr(int64(0))}, func(ev *client.Event) error {
		var m client.Message
		if string(ev.Type) != "message.failed" || ev.DecodeData(&m) != nil {
			return nil
		}
		if m.Error != nil && m.Error.Code == "SESSION_LOGGED_OUT" {
			delete(want, m.ID)
		}
		if len(want) == 0 {
			return errFound
		}
		return nil
	})
	if !errors.Is(err, errFound) {
		t.Fatalf("%d messages without a message.failed event: %v", len(want), err)
	}
}

// wantNothingArrived sends a message from p to `to` after the relink and
// waits for it: the outbox goes in order, so whatever was queued before it
// and did not arrive by then never goes. Then to must have received only it.
func wantNothingArrived(t *testing.T, p, to *peer) {
	t.Helper()
	m, err := p.C.SendText(context.Background(), "me", client.SendTextRequest{To: to.Phone, Text: "after the relink"})
	if err != nil {
		t.Fatal(err)
	}
	if m.From != phoneNew {
		t.Errorf("a message after the relink is from %s, want %s", m.From, phoneNew)
	}
	inbound(t, to, m.WAID)
	if got := allMessages(t, to, client.ListMessagesParams{Direction: ptr(client.Direction("in"))}); len(got) != 1 {
		t.Fatalf("the recipient received %d messages, want only the one sent after the relink", len(got))
	}
}

// Messages queued before a logout fail with SESSION_LOGGED_OUT (and their
// events) when the session is logged out; none of them goes out from the
// account linked next.
func TestLogoutFailsQueuedMessages(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	bob := ts.linkedPeer("bob", client.SessionConfig{})
	alice := ts.linkedPeer("alice", client.SessionConfig{Phone: ptr(phoneOld)})
	ids := queueOffline(t, ts, alice, bob.Phone, 70)

	out, err := ts.Admin.Logout(ctx, alice.ID)
	if err != nil || out.Status != "logged_out" {
		t.Fatalf("logout: %+v %v", out, err)
	}
	// Failed by the logout itself, before any relink.
	m, err := alice.C.GetMessage(ctx, "me", ids[len(ids)-1])
	if err != nil || m.Status != "failed" {
		t.Fatalf("after the logout: %+v %v", m, err)
	}
	wantHistory(t, m, "queued", "failed")

	relink(t, ts, alice, phoneNew)
	wantLoggedOutFailures(t, alice, ids)
	wantNothingArrived(t, alice, bob)
}

// A logout reported by the engine (the phone removed the device; here the
// device's keys are gone when a whatsmeow session connects, which is found
// before any network is used) fails the queue the same way.
func TestEngineLogoutFailsQueuedMessages(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	r := ts.Do("POST", "/api/v1/sessions", testAdminToken, map[string]any{"name": "wm", "engine": "whatsmeow"})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var created struct {
		Data struct {
			Session struct{ ID string } `json:"session"`
			Token   string              `json:"token"`
		} `json:"data"`
	}
	r.JSON(t, &created)
	id := created.Data.Session.ID
	// Linked once (its device JID and phone stored), but the keys are gone.
	if _, err := ts.DB.ModifySession(ctx, id, func(_ *store.Tx, s *wabsync.Session) error {
		s.DeviceJID, s.Phone = "15550100111:7@s.whatsapp.net", phoneOld
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p := &peer{Session: &client.Session{ID: id}, Token: created.Data.Token, C: ts.Client(created.Data.Token)}
	ids := make([]string, 5)
	for i := range ids {
		m, err := p.C.SendText(ctx, "me", client.SendTextRequest{To: "+14155550123", Text: "queued"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = m.ID
	}
	if _, err := ts.Admin.Connect(ctx, id); err != nil {
		t.Fatal(err)
	}
	if s := ts.waitStatus(id, "logged_out", 10*time.Second); s.Phone != "" {
		t.Fatalf("logged out session %+v", s)
	}
	wantLoggedOutFailures(t, p, ids)
}

// The sender itself never sends a message from another account than the
// one it was accepted for: here a logout that left the outbox as it was
// (as before this check existed) is followed by a link to another number.
func TestSenderKeepsMessagesToTheirAccount(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	bob := ts.linkedPeer("bob", client.SessionConfig{})
	alice := ts.linkedPeer("alice", client.SessionConfig{Phone: ptr(phoneOld)})
	ids := queueOffline(t, ts, alice, bob.Phone, 5)
	if _, err := ts.DB.ModifySession(ctx, alice.ID, func(_ *store.Tx, s *wabsync.Session) error {
		s.Status, s.StatusReason = wabsync.StatusLoggedOut, "Logged out (outbox kept)."
		s.DeviceJID, s.Phone, s.PushName = "", "", ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relink(t, ts, alice, phoneNew)
	wantLoggedOutFailures(t, alice, ids)
	wantNothingArrived(t, alice, bob)
}
