package main

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
)

// TestMessageChangesOneAtATime: edits and revokes of one message made in
// parallel run one at a time. The revoke goes out once, no edit goes out after
// it (those answer 409 CONFLICT), and the recipient sees exactly what the API
// answered: one message.revoked event, after every edit that succeeded.
func TestMessageChangesOneAtATime(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("alice", client.SessionConfig{})
	b := ts.linkedPeer("bob", client.SessionConfig{})

	m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "first draft"})
	if err != nil {
		t.Fatal(err)
	}
	atB := inbound(t, b, m.WAID)
	waitStatusOf(t, a, m.ID, "delivered")

	const n = 20
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		edited, refused int
		revoked         int
	)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := a.C.EditMessage(ctx, "me", m.ID, "draft")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				edited++
			case client.IsCode(err, "CONFLICT"):
				refused++
			default:
				t.Errorf("edit: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			rv, err := a.C.RevokeMessage(ctx, "me", m.ID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || rv.Revoked == nil || !*rv.Revoked {
				t.Errorf("revoke: %+v %v", rv, err)
				return
			}
			revoked++
		}()
	}
	wg.Wait()
	if revoked != n || edited+refused != n {
		t.Fatalf("%d revokes answered 200 of %d; edits: %d done, %d refused", revoked, n, edited, refused)
	}

	// A last message marks the end of what a sent to b: everything before it
	// reached b before it.
	last, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "the end"})
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = b.C.StreamEvents(sctx, "me", &client.StreamSessionEventsParams{After: ptr(int64(0))}, func(ev *client.Event) error {
		var got client.Message
		if err := ev.DecodeData(&got); err != nil {
			return nil
		}
		switch {
		case got.ID == atB.ID && (ev.Type == "message.edited" || ev.Type == "message.revoked"):
			seq = append(seq, string(ev.Type))
		case ev.Type == "message.received" && got.WAID == last.WAID:
			return errFound
		}
		return nil
	})
	if !errors.Is(err, errFound) {
		t.Fatalf("bob's events: %v", err)
	}
	want := make([]string, 0, edited+1)
	for i := 0; i < edited; i++ {
		want = append(want, "message.edited")
	}
	want = append(want, "message.revoked")
	if len(seq) != len(want) || seq[len(seq)-1] != "message.revoked" {
		t.Fatalf("bob saw %v; want %d edits then one revoke", seq, edited)
	}
	for i, typ := range want {
		if seq[i] != typ {
			t.Fatalf("bob saw %v; want %v", seq, want)
		}
	}

	// After the revoke, edits and reactions are refused.
	if _, err := a.C.EditMessage(ctx, "me", m.ID, "too late"); !client.IsCode(err, "CONFLICT") {
		t.Fatalf("edit after revoke: want CONFLICT, got %v", err)
	}
	if _, err := a.C.SendReaction(ctx, "me", client.SendReactionRequest{To: b.Phone, MessageID: m.ID, Emoji: "👍"}); !client.IsCode(err, "CONFLICT") {
		t.Fatalf("reaction to a revoked message: want CONFLICT, got %v", err)
	}
}

// TestReactionToMessageRevokedMeanwhile: a reaction accepted while its
// message was queued is not sent once that message was revoked before it
// went; it fails with TARGET_REVOKED.
func TestReactionToMessageRevokedMeanwhile(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("alice", client.SessionConfig{})
	b := ts.linkedPeer("bob", client.SessionConfig{})
	if _, err := a.C.Disconnect(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "never mind"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.C.SendReaction(ctx, "me", client.SendReactionRequest{To: b.Phone, MessageID: m.ID, Emoji: "👍"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.C.RevokeMessage(ctx, "me", m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.C.Connect(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	failed := waitStatusOf(t, a, r.ID, "failed")
	if failed.Error == nil || failed.Error.Code != "TARGET_REVOKED" {
		t.Fatalf("reaction failed with %+v", failed.Error)
	}
	if got := allMessages(t, b, client.ListMessagesParams{}); len(got) != 0 {
		t.Fatalf("bob received %d messages, want none", len(got))
	}
}

// TestRevokeWhileSenderHoldsIt: a queued message revoked while the session's
// sender already holds it (read from the outbox, waiting for its pace) is
// not sent; the messages before and after it are.
func TestRevokeWhileSenderHoldsIt(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("alice", client.SessionConfig{SendRate: ptr(float32(1)), SendBurst: ptr(1)})
	b := ts.linkedPeer("bob", client.SessionConfig{})
	// Queued while offline, the four are read from the outbox at once when
	// the session connects; "one" goes at once, the rest one a second.
	if _, err := a.C.Disconnect(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	var sent []*client.Message
	for _, text := range []string{"one", "two", "three", "four"} {
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	if _, err := a.C.Connect(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	waitStatusOf(t, a, sent[0].ID, "delivered")
	rv, err := a.C.RevokeMessage(ctx, "me", sent[3].ID)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Revoked == nil || !*rv.Revoked || rv.Status != "failed" || rv.Error == nil || rv.Error.Code != "REVOKED_BEFORE_SENDING" {
		t.Fatalf("revoked %+v", rv)
	}
	last, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "five"})
	if err != nil {
		t.Fatal(err)
	}
	inbound(t, b, last.WAID)
	var got []string
	for _, m := range allMessages(t, b, client.ListMessagesParams{Direction: ptr(client.Direction("in"))}) {
		got = append(got, *m.Text)
	}
	if len(got) != 4 {
		t.Fatalf("bob received %q; want one, two, three and five", got)
	}
	for _, text := range got {
		if text == "four" {
			t.Fatalf("bob received the revoked message: %q", got)
		}
	}
	if m := waitStatusOf(t, a, sent[3].ID, "failed"); m.Revoked == nil || !*m.Revoked {
		t.Fatalf("revoked message %+v", m)
	}
}
