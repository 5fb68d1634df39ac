package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// Sandbox test numbers (internal/engine/sandbox/network.go).
const (
	numNotOnWhatsApp = "+15550000001"
	numNeverDelivers = "+15550000002"
	numEcho          = "+15550000003"
	numReadsAtOnce   = "+15550000004"
)

// peer is a linked sandbox session with its session-token client.
type peer struct {
	*client.Session
	Token string
	C     *client.Client
}

// linkedPeer creates a connected sandbox session and its client.
func (ts *testServer) linkedPeer(name string, cfg client.SessionConfig) *peer {
	ts.t.Helper()
	s, tok := ts.linkedSession(name, cfg)
	return &peer{Session: s, Token: tok, C: ts.Client(tok)}
}

func ptr[T any](v T) *T { return &v }

// history returns the statuses of a message's status history in order.
func history(m *client.Message) []string {
	var out []string
	for _, h := range m.StatusHistory {
		out = append(out, string(h.Status))
	}
	return out
}

// waitMessage polls a message until cond holds and returns it.
func waitMessage(tb testing.TB, p *peer, id string, what string, cond func(*client.Message) bool) *client.Message {
	tb.Helper()
	var last *client.Message
	testutil.Eventually(tb, 10*time.Second, func() bool {
		m, err := p.C.GetMessage(context.Background(), "me", id)
		if err != nil {
			tb.Fatalf("get message %s: %v", id, err)
		}
		last = m
		return cond(m)
	}, "message %s: %s; last %+v (history %v)", id, what, last, func() []string {
		if last == nil {
			return nil
		}
		return history(last)
	}())
	return last
}

// waitStatusOf waits until a message has status st.
func waitStatusOf(tb testing.TB, p *peer, id, st string) *client.Message {
	tb.Helper()
	return waitMessage(tb, p, id, "status "+st, func(m *client.Message) bool { return string(m.Status) == st })
}

// allMessages lists every message of p matching params, following cursors.
func allMessages(tb testing.TB, p *peer, params client.ListMessagesParams) []client.Message {
	tb.Helper()
	var out []client.Message
	params.Limit = ptr(100)
	for {
		l, err := p.C.ListMessages(context.Background(), "me", &params)
		if err != nil {
			tb.Fatalf("list messages: %v", err)
		}
		out = append(out, l.Items...)
		if !l.HasMore {
			return out
		}
		params.Cursor = l.NextCursor
	}
}

// inbound waits until p received the message with WhatsApp id waID and returns it.
func inbound(tb testing.TB, p *peer, waID string) *client.Message {
	tb.Helper()
	var got *client.Message
	testutil.Eventually(tb, 10*time.Second, func() bool {
		for _, m := range allMessages(tb, p, client.ListMessagesParams{Direction: ptr(client.Direction("in"))}) {
			if m.WAID == waID {
				got = &m
				return true
			}
		}
		return false
	}, "%s did not receive %s", p.Name, waID)
	return got
}

var errFound = errors.New("found")

// waitEvent replays p's events from the start until one of type typ whose
// message satisfies cond arrives.
func waitEvent(tb testing.TB, p *peer, typ string, cond func(*client.Message) bool) *client.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got client.Message
	err := p.C.StreamEvents(ctx, "me", &client.StreamSessionEventsParams{After: ptr(int64(0))}, func(ev *client.Event) error {
		if string(ev.Type) != typ {
			return nil
		}
		var m client.Message
		if err := ev.DecodeData(&m); err != nil {
			return err
		}
		if cond(&m) {
			got = m
			return errFound
		}
		return nil
	})
	if !errors.Is(err, errFound) {
		tb.Fatalf("no %s event for %s: %v", typ, p.Name, err)
	}
	return &got
}

func wantHistory(tb testing.TB, m *client.Message, want ...string) {
	tb.Helper()
	if got := history(m); !slices.Equal(got, want) {
		tb.Fatalf("message %s status history %v, want %v", m.ID, got, want)
	}
	for i := 1; i < len(m.StatusHistory); i++ {
		if m.StatusHistory[i].At.Before(m.StatusHistory[i-1].At) {
			tb.Fatalf("status history out of time order: %+v", m.StatusHistory)
		}
	}
}

func TestMessageKindsBetweenSandboxSessions(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("alice", client.SessionConfig{})
	b := ts.linkedPeer("bob", client.SessionConfig{})

	// b writes first, so that a can quote it.
	first, err := b.C.SendText(ctx, "me", client.SendTextRequest{To: a.Phone, Text: "hello alice"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != "queued" || len(first.StatusHistory) != 1 {
		t.Fatalf("accepted message %+v", first)
	}
	firstAtA := inbound(t, a, first.WAID)

	t.Run("Text", func(t *testing.T) {
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "hi bob, see https://example.com",
			ReplyTo: ptr(firstAtA.ID), Mentions: []string{b.Phone}, LinkPreview: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != "queued" || m.ReplyTo == nil || *m.ReplyTo != firstAtA.ID || m.LinkPreview == nil || !*m.LinkPreview {
			t.Fatalf("accepted %+v", m)
		}
		got := inbound(t, b, m.WAID)
		if got.Kind != "text" || got.Text == nil || *got.Text != "hi bob, see https://example.com" || got.From != a.Phone ||
			got.Direction != "in" || got.Status != "received" {
			t.Fatalf("received %+v", got)
		}
		if got.ReplyTo == nil || *got.ReplyTo != first.ID {
			t.Fatalf("reply_to at the recipient %v, want its own message %s", got.ReplyTo, first.ID)
		}
		if len(got.Mentions) != 1 || !strings.HasPrefix(got.Mentions[0], strings.TrimPrefix(b.Phone, "+")+"@") {
			t.Fatalf("mentions %v", got.Mentions)
		}
		delivered := waitStatusOf(t, a, m.ID, "delivered")
		wantHistory(t, delivered, "queued", "sending", "sent", "delivered")
		// b reads it: a sees read.
		r, err := b.C.MarkRead(ctx, "me", got.ID)
		if err != nil || r.Status != "read" {
			t.Fatalf("mark read: %+v %v", r, err)
		}
		read := waitStatusOf(t, a, m.ID, "read")
		wantHistory(t, read, "queued", "sending", "sent", "delivered", "read")
		waitEvent(t, a, "message.read", func(e *client.Message) bool { return e.ID == m.ID })
		waitEvent(t, b, "message.received", func(e *client.Message) bool { return e.ID == got.ID })
	})

	t.Run("Location", func(t *testing.T) {
		m, err := a.C.SendLocation(ctx, "me", client.SendLocationRequest{To: b.Phone, Latitude: 52.52, Longitude: -13.405,
			Name: ptr("Somewhere"), Address: ptr("1 Main St")})
		if err != nil {
			t.Fatal(err)
		}
		got := inbound(t, b, m.WAID)
		l := got.Location
		if got.Kind != "location" || l == nil || l.Latitude != 52.52 || l.Longitude != -13.405 || *l.Name != "Somewhere" || *l.Address != "1 Main St" {
			t.Fatalf("received %+v location %+v", got, l)
		}
		waitStatusOf(t, a, m.ID, "delivered")
	})

	t.Run("Contact", func(t *testing.T) {
		m, err := a.C.SendContact(ctx, "me", client.SendContactRequest{To: b.Phone,
			Contacts: []client.Contact{{Name: "Carol; Jr", Phones: []string{"+1 (415) 555-0199"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Contacts) != 1 || m.Contacts[0].Vcard == nil || !strings.Contains(*m.Contacts[0].Vcard, "waid=14155550199:+14155550199") {
			t.Fatalf("accepted contacts %+v", m.Contacts)
		}
		got := inbound(t, b, m.WAID)
		if got.Kind != "contact" || len(got.Contacts) != 1 {
			t.Fatalf("received %+v", got)
		}
		c := got.Contacts[0]
		if c.Name != "Carol; Jr" || !slices.Equal(c.Phones, []string{"+14155550199"}) || c.Vcard == nil ||
			*c.Vcard != *m.Contacts[0].Vcard || !strings.HasPrefix(*c.Vcard, "BEGIN:VCARD") {
			t.Fatalf("received contact %+v", c)
		}
	})

	t.Run("ReactionSetAndRemove", func(t *testing.T) {
		target, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "react to me"})
		if err != nil {
			t.Fatal(err)
		}
		atB := inbound(t, b, target.WAID)
		// b reacts to the message it received.
		r, err := b.C.SendReaction(ctx, "me", client.SendReactionRequest{To: a.Phone, MessageID: atB.ID, Emoji: "👍"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != "reaction" || r.Reaction == nil || r.Reaction.Emoji != "👍" || r.Reaction.MessageID != atB.ID {
			t.Fatalf("accepted reaction %+v", r)
		}
		withReaction := waitMessage(t, a, target.ID, "a reaction", func(m *client.Message) bool { return len(m.Reactions) == 1 })
		if re := withReaction.Reactions[0]; re.Emoji != "👍" || re.From != b.Phone {
			t.Fatalf("reactions %+v", withReaction.Reactions)
		}
		waitEvent(t, a, "message.reaction", func(e *client.Message) bool { return e.ID == target.ID && len(e.Reactions) == 1 })
		// Changing it replaces it; an empty emoji removes it.
		if _, err := b.C.SendReaction(ctx, "me", client.SendReactionRequest{To: a.Phone, MessageID: atB.WAID, Emoji: "❤️"}); err != nil {
			t.Fatal(err)
		}
		waitMessage(t, a, target.ID, "the reaction changed", func(m *client.Message) bool {
			return len(m.Reactions) == 1 && m.Reactions[0].Emoji == "❤️"
		})
		if _, err := b.C.SendReaction(ctx, "me", client.SendReactionRequest{To: a.Phone, MessageID: atB.ID, Emoji: ""}); err != nil {
			t.Fatal(err)
		}
		waitMessage(t, a, target.ID, "no reaction", func(m *client.Message) bool { return len(m.Reactions) == 0 })
	})

	t.Run("Edit", func(t *testing.T) {
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "tpyo"})
		if err != nil {
			t.Fatal(err)
		}
		atB := inbound(t, b, m.WAID)
		waitStatusOf(t, a, m.ID, "delivered")
		e, err := a.C.EditMessage(ctx, "me", m.ID, "typo")
		if err != nil {
			t.Fatal(err)
		}
		if *e.Text != "typo" || e.Edited == nil || !*e.Edited {
			t.Fatalf("edited %+v", e)
		}
		got := waitMessage(t, b, atB.ID, "edited", func(m *client.Message) bool { return m.Edited != nil && *m.Edited })
		if *got.Text != "typo" {
			t.Fatalf("recipient's text %q", *got.Text)
		}
		waitEvent(t, b, "message.edited", func(e *client.Message) bool { return e.ID == atB.ID && *e.Text == "typo" })
		t.Run("InboundCannotBeEdited", func(t *testing.T) {
			_, err := b.C.EditMessage(ctx, "me", atB.ID, "mine now")
			if !client.IsCode(err, "CONFLICT") {
				t.Fatalf("want CONFLICT, got %v", err)
			}
		})
		t.Run("EmptyText", func(t *testing.T) {
			_, err := a.C.EditMessage(ctx, "me", m.ID, " ")
			if e, ok := client.AsAPIError(err); !ok || e.Code != "VALIDATION_ERROR" || e.Details["text"] == "" {
				t.Fatalf("want a validation error naming text, got %v", err)
			}
		})
	})

	t.Run("Revoke", func(t *testing.T) {
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "oops"})
		if err != nil {
			t.Fatal(err)
		}
		atB := inbound(t, b, m.WAID)
		waitStatusOf(t, a, m.ID, "delivered")
		rv, err := a.C.RevokeMessage(ctx, "me", m.ID)
		if err != nil || rv.Revoked == nil || !*rv.Revoked {
			t.Fatalf("revoke: %+v %v", rv, err)
		}
		got := waitMessage(t, b, atB.ID, "revoked", func(m *client.Message) bool { return m.Revoked != nil && *m.Revoked })
		if got.Text != nil && *got.Text != "" {
			t.Fatalf("revoked message keeps its text %q", *got.Text)
		}
		waitEvent(t, b, "message.revoked", func(e *client.Message) bool { return e.ID == atB.ID })
	})

	t.Run("Presence", func(t *testing.T) {
		for _, st := range []client.PresenceState{"typing", "recording", "paused"} {
			r, err := a.C.SendPresenceWithResponse(ctx, "me", nil, client.Presence{To: b.Phone, State: st})
			if err != nil || r.JSON200 == nil || r.JSON200.Data.State != st {
				t.Fatalf("presence %s: %v %s", st, err, r.Body)
			}
		}
		// b sees them, in order, as presence.update.
		aJID := strings.TrimPrefix(a.Phone, "+") + "@s.whatsapp.net"
		var states []client.PresenceState
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := b.C.StreamEvents(sctx, "me", &client.StreamSessionEventsParams{After: ptr(int64(0))}, func(ev *client.Event) error {
			if ev.Type != "presence.update" {
				return nil
			}
			var p client.PresenceData
			if err := ev.DecodeData(&p); err != nil {
				return err
			}
			if p.Chat != aJID || p.From != aJID {
				return fmt.Errorf("presence %+v, want from %s", p, aJID)
			}
			if states = append(states, p.State); len(states) == 3 {
				return errFound
			}
			return nil
		})
		if !errors.Is(err, errFound) || !slices.Equal(states, []client.PresenceState{"typing", "recording", "paused"}) {
			t.Fatalf("b saw %v: %v", states, err)
		}
		r := ts.Do("POST", "/api/v1/sessions/me/presence", a.Token, map[string]string{"to": b.Phone, "state": "dancing"})
		if r.Status != 422 || r.Err(t).Details["state"] == "" {
			t.Fatalf("bad state: %d %s", r.Status, r.Body)
		}
	})

	t.Run("MarkReadOfOutboundIsConflict", func(t *testing.T) {
		_, err := b.C.MarkRead(ctx, "me", first.ID)
		if !client.IsCode(err, "CONFLICT") {
			t.Fatalf("want CONFLICT, got %v", err)
		}
	})
}

func TestMessageAutoReadRecipient(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{AutoRead: ptr(true)})
	m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "read me"})
	if err != nil {
		t.Fatal(err)
	}
	wantHistory(t, waitStatusOf(t, a, m.ID, "read"), "queued", "sending", "sent", "delivered", "read")
	if got := inbound(t, b, m.WAID); got.Status != "read" {
		t.Fatalf("auto_read recipient's copy is %s", got.Status)
	}
}

func TestMessageIdempotency(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	body := fmt.Sprintf(`{"to": %q, "text": "once only"}`, b.Phone)
	path := "/api/v1/sessions/me/messages/text"
	r1 := ts.Do("POST", path, a.Token, body, "Idempotency-Key", "key-1")
	if r1.Status != 201 {
		t.Fatalf("first: %d %s", r1.Status, r1.Body)
	}
	t.Run("SameBodyReplays", func(t *testing.T) {
		r2 := ts.Do("POST", path, a.Token, body, "Idempotency-Key", "key-1")
		if r2.Status != 201 || string(r2.Body) != string(r1.Body) {
			t.Fatalf("replay: %d %s\nfirst: %s", r2.Status, r2.Body, r1.Body)
		}
		var first struct{ Data client.Message }
		r1.JSON(t, &first)
		// Through the SDK too (it encodes the body its own way, so with a key of its own).
		req := client.SendTextRequest{To: b.Phone, Text: "once only, sdk"}
		m1, err := a.C.SendText(ctx, "me", req, client.WithIdempotencyKey("key-sdk"))
		if err != nil {
			t.Fatal(err)
		}
		m2, err := a.C.SendText(ctx, "me", req, client.WithIdempotencyKey("key-sdk"))
		if err != nil || m2.ID != m1.ID || m2.WAID != m1.WAID || m2.Status != "queued" {
			t.Fatalf("sdk replay: %+v %v", m2, err)
		}
		for _, m := range []client.Message{first.Data, *m1} {
			inbound(t, b, m.WAID)
			waitStatusOf(t, a, m.ID, "delivered")
		}
		out := allMessages(t, a, client.ListMessagesParams{Direction: ptr(client.Direction("out"))})
		in := allMessages(t, b, client.ListMessagesParams{Direction: ptr(client.Direction("in"))})
		if len(out) != 2 || len(in) != 2 {
			t.Fatalf("want two messages each side, have %d out, %d in", len(out), len(in))
		}
	})
	t.Run("DifferentBodyConflicts", func(t *testing.T) {
		r := ts.Do("POST", path, a.Token, fmt.Sprintf(`{"to": %q, "text": "something else"}`, b.Phone), "Idempotency-Key", "key-1")
		if r.Status != 409 || r.Err(t).Code != "IDEMPOTENCY_CONFLICT" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
		_, err := a.C.SendLocation(ctx, "me", client.SendLocationRequest{To: b.Phone, Latitude: 1, Longitude: 2}, client.WithIdempotencyKey("key-1"))
		if !client.IsCode(err, "IDEMPOTENCY_CONFLICT") {
			t.Fatalf("same key on another route: %v", err)
		}
	})
	t.Run("KeyIsPerSession", func(t *testing.T) {
		r := ts.Do("POST", path, b.Token, fmt.Sprintf(`{"to": %q, "text": "once only"}`, a.Phone), "Idempotency-Key", "key-1")
		if r.Status != 201 {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
}

func TestMessageToOfflineRecipient(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	if _, err := ts.Admin.Disconnect(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	var sent []*client.Message
	for i := range 3 {
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: fmt.Sprintf("while you were away %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	for _, m := range sent {
		waitStatusOf(t, a, m.ID, "sent")
	}
	// Nothing is delivered while b is away.
	if m, _ := a.C.GetMessage(ctx, "me", sent[0].ID); m.Status != "sent" {
		t.Fatalf("delivered to an offline recipient: %s", m.Status)
	}
	if _, err := ts.Admin.Connect(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	for i, m := range sent {
		got := inbound(t, b, m.WAID)
		if *got.Text != fmt.Sprintf("while you were away %d", i) {
			t.Fatalf("received %q", *got.Text)
		}
		wantHistory(t, waitStatusOf(t, a, m.ID, "delivered"), "queued", "sending", "sent", "delivered")
	}
	in := allMessages(t, b, client.ListMessagesParams{Direction: ptr(client.Direction("in"))})
	if len(in) != 3 || in[0].Sequence < in[2].Sequence {
		t.Fatalf("received %d messages (newest first by sequence?)", len(in))
	}
}

func TestMessageQueueIfOffline(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	if _, err := ts.Admin.Disconnect(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	t.Run("FalseRefuses", func(t *testing.T) {
		_, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "now or never", QueueIfOffline: ptr(false)})
		if e, ok := client.AsAPIError(err); !ok || e.StatusCode != 409 || e.Code != "SESSION_NOT_CONNECTED" {
			t.Fatalf("want 409 SESSION_NOT_CONNECTED, got %v", err)
		}
		if out := allMessages(t, a, client.ListMessagesParams{}); len(out) != 0 {
			t.Fatalf("a refused message was stored: %+v", out)
		}
	})
	m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "whenever"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := a.C.GetMessage(ctx, "me", m.ID); got.Status != "queued" {
		t.Fatalf("sent while disconnected: %s", got.Status)
	}
	if _, err := ts.Admin.Connect(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	wantHistory(t, waitStatusOf(t, a, m.ID, "delivered"), "queued", "sending", "sent", "delivered")
	inbound(t, b, m.WAID)
}

func TestMessageSandboxTestNumbers(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	send := func(t *testing.T, to, text string) *client.Message {
		t.Helper()
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: to, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("NotOnWhatsApp", func(t *testing.T) {
		m := waitStatusOf(t, a, send(t, numNotOnWhatsApp, "anyone?").ID, "failed")
		if m.Error == nil || m.Error.Code != "NOT_ON_WHATSAPP" {
			t.Fatalf("error %+v", m.Error)
		}
		wantHistory(t, m, "queued", "sending", "failed")
		waitEvent(t, a, "message.failed", func(e *client.Message) bool { return e.ID == m.ID })
		r, err := a.C.CheckContactsWithResponse(ctx, "me", nil, client.ContactsCheckRequest{Phones: []string{numNotOnWhatsApp, "+1 415 555 0123"}})
		if err != nil || r.JSON200 == nil {
			t.Fatalf("check: %v %s", err, r.Body)
		}
		items := r.JSON200.Data.Items
		if len(items) != 2 || items[0].OnWhatsapp || items[0].Phone != numNotOnWhatsApp || !items[1].OnWhatsapp ||
			items[1].JID == nil || *items[1].JID != "14155550123@s.whatsapp.net" {
			t.Fatalf("check: %+v", items)
		}
		bad := ts.Do("POST", "/api/v1/sessions/me/contacts/check", a.Token, map[string]any{"phones": []string{"call me"}})
		if bad.Status != 422 || bad.Err(t).Details["phones[0]"] == "" {
			t.Fatalf("bad phone: %d %s", bad.Status, bad.Body)
		}
	})
	t.Run("NeverDelivers", func(t *testing.T) {
		m := send(t, numNeverDelivers, "into the void")
		waitStatusOf(t, a, m.ID, "sent")
		// A later message to a number that does answer is delivered; the
		// first one is still only sent.
		later := send(t, numReadsAtOnce, "sync point")
		waitStatusOf(t, a, later.ID, "read")
		got, _ := a.C.GetMessage(ctx, "me", m.ID)
		wantHistory(t, got, "queued", "sending", "sent")
	})
	t.Run("Echo", func(t *testing.T) {
		m := send(t, numEcho, "echo echo")
		waitStatusOf(t, a, m.ID, "delivered")
		back := inbound(t, a, "ECHO"+m.WAID)
		if back.From != numEcho || *back.Text != "echo echo" || back.Kind != "text" {
			t.Fatalf("echo %+v", back)
		}
		waitEvent(t, a, "message.received", func(e *client.Message) bool { return e.ID == back.ID })
	})
	t.Run("ReadsAtOnce", func(t *testing.T) {
		m := waitStatusOf(t, a, send(t, numReadsAtOnce, "read it").ID, "read")
		wantHistory(t, m, "queued", "sending", "sent", "delivered", "read")
	})
}

func TestSandboxInboundText(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	b := ts.linkedPeer("b", client.SessionConfig{})
	kind := client.SandboxInboundRequestKind("text")
	r, err := ts.Admin.SandboxInboundWithResponse(ctx, nil, client.SandboxInboundRequest{Session: b.ID, From: "+1 415 555 0100", Kind: &kind, Text: ptr("from outside")})
	if err != nil || r.JSON201 == nil {
		t.Fatalf("inbound: %v %d %s", err, r.StatusCode(), r.Body)
	}
	m := r.JSON201.Data
	if m.Direction != "in" || m.From != "+14155550100" || *m.Text != "from outside" || m.Status != "received" || m.Chat != "14155550100@s.whatsapp.net" {
		t.Fatalf("stored %+v", m)
	}
	if got, err := b.C.GetMessage(ctx, "me", m.ID); err != nil || *got.Text != "from outside" {
		t.Fatalf("get: %+v %v", got, err)
	}
	waitEvent(t, b, "message.received", func(e *client.Message) bool { return e.ID == m.ID })
	t.Run("Contacts", func(t *testing.T) {
		l, err := b.C.ListContactsWithResponse(ctx, "me", nil)
		if err != nil || l.JSON200 == nil {
			t.Fatalf("%v %s", err, l.Body)
		}
		items := l.JSON200.Data.Items
		if len(items) != 1 || items[0].JID != "14155550100@s.whatsapp.net" || items[0].Phone == nil || *items[0].Phone != "+14155550100" {
			t.Fatalf("contacts %+v", items)
		}
	})
	t.Run("Validation", func(t *testing.T) {
		for name, c := range map[string]struct {
			body  map[string]any
			field string
		}{
			"From":      {map[string]any{"session": b.ID, "from": "nobody", "text": "x"}, "from"},
			"EmptyText": {map[string]any{"session": b.ID, "from": "+14155550100", "text": " "}, "text"},
			"Kind":      {map[string]any{"session": b.ID, "from": "+14155550100", "kind": "hologram"}, "kind"},
			"Session":   {map[string]any{"from": "+14155550100", "text": "x"}, "session"},
		} {
			t.Run(name, func(t *testing.T) {
				r := ts.Do("POST", "/api/v1/sandbox/inbound", testAdminToken, c.body)
				if r.Status != 422 || r.Err(t).Details[c.field] == "" {
					t.Fatalf("got %d %s", r.Status, r.Body)
				}
			})
		}
	})
}

func TestMessageValidation(t *testing.T) {
	ts := mustRunMain(t)
	a := ts.linkedPeer("a", client.SessionConfig{})
	for _, c := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"ToMissing", "text", map[string]any{"text": "hi"}, "to"},
		{"ToNotAPhone", "text", map[string]any{"to": "bob", "text": "hi"}, "to"},
		{"ToTooShort", "text", map[string]any{"to": "+1", "text": "hi"}, "to"},
		{"EmptyText", "text", map[string]any{"to": "+14155550123", "text": ""}, "text"},
		{"BlankText", "text", map[string]any{"to": "+14155550123", "text": "  \n"}, "text"},
		{"MentionNotAPhone", "text", map[string]any{"to": "+14155550123", "text": "hi", "mentions": []string{"x"}}, "mentions[0]"},
		{"UnknownReplyTo", "text", map[string]any{"to": "+14155550123", "text": "hi", "reply_to": "msg_nope"}, "reply_to"},
		{"LatitudeOutOfRange", "location", map[string]any{"to": "+14155550123", "latitude": 91, "longitude": 0}, "latitude"},
		{"LongitudeOutOfRange", "location", map[string]any{"to": "+14155550123", "latitude": 0, "longitude": -180.5}, "longitude"},
		{"LatitudeMissing", "location", map[string]any{"to": "+14155550123", "longitude": 0}, "latitude"},
		{"NoContacts", "contact", map[string]any{"to": "+14155550123", "contacts": []any{}}, "contacts"},
		{"ContactPhone", "contact", map[string]any{"to": "+14155550123", "contacts": []any{map[string]any{"name": "C", "phones": []string{"nope"}}}}, "contacts[0].phones[0]"},
		{"ReactionTarget", "reaction", map[string]any{"to": "+14155550123", "message_id": "msg_nope", "emoji": "👍"}, "message_id"},
		{"UnknownKind", "file", map[string]any{"to": "+14155550123", "kind": "hologram", "base64": "aGVsbG8="}, "kind"},
		{"FileMissing", "file", map[string]any{"to": "+14155550123"}, "url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ts.Do("POST", "/api/v1/sessions/me/messages/"+c.path, a.Token, c.body)
			if r.Status != 422 {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			if e := r.Err(t); e.Code != "VALIDATION_ERROR" || e.Details[c.field] == "" {
				t.Fatalf("want details naming %s: %s", c.field, r.Body)
			}
		})
	}
	t.Run("EveryBadFieldIsNamed", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sessions/me/messages/location", a.Token, map[string]any{"to": "x", "latitude": -100, "longitude": 200})
		e := r.Err(t)
		if r.Status != 422 || e.Details["to"] == "" || e.Details["latitude"] == "" || e.Details["longitude"] == "" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("MalformedJSON", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sessions/me/messages/text", a.Token, `{"to": `)
		if r.Status != 400 || r.Err(t).Code != "BAD_REQUEST" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("NothingStored", func(t *testing.T) {
		if l := allMessages(t, a, client.ListMessagesParams{}); len(l) != 0 {
			t.Fatalf("invalid requests stored %d messages", len(l))
		}
	})
}

func TestMessageListFiltersAndChats(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	c := ts.linkedPeer("c", client.SessionConfig{})
	sendAndWait := func(from, to *peer, text string) *client.Message {
		t.Helper()
		m, err := from.C.SendText(ctx, "me", client.SendTextRequest{To: to.Phone, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		waitStatusOf(t, from, m.ID, "delivered")
		return m
	}
	m1 := sendAndWait(a, b, "a→b 1")
	time.Sleep(5 * time.Millisecond) // distinct creation times for since/until
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	m2 := sendAndWait(a, c, "a→c 1")
	sendAndWait(b, a, "b→a 1")
	sendAndWait(b, a, "b→a 2")
	last := sendAndWait(c, a, "c→a 1")
	bJID := strings.TrimPrefix(b.Phone, "+") + "@s.whatsapp.net"
	ids := func(ms []client.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, *m.Text)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		params client.ListMessagesParams
		want   []string
	}{
		{"All", client.ListMessagesParams{}, []string{"c→a 1", "b→a 2", "b→a 1", "a→c 1", "a→b 1"}},
		{"ChatByJID", client.ListMessagesParams{Chat: &bJID}, []string{"b→a 2", "b→a 1", "a→b 1"}},
		{"ChatByPhone", client.ListMessagesParams{Chat: &b.Phone}, []string{"b→a 2", "b→a 1", "a→b 1"}},
		{"DirectionOut", client.ListMessagesParams{Direction: ptr(client.Direction("out"))}, []string{"a→c 1", "a→b 1"}},
		{"DirectionIn", client.ListMessagesParams{Direction: ptr(client.Direction("in"))}, []string{"c→a 1", "b→a 2", "b→a 1"}},
		{"StatusReceived", client.ListMessagesParams{Status: ptr(client.MessageStatus("received"))}, []string{"c→a 1", "b→a 2", "b→a 1"}},
		{"StatusDelivered", client.ListMessagesParams{Status: ptr(client.MessageStatus("delivered"))}, []string{"a→c 1", "a→b 1"}},
		{"Since", client.ListMessagesParams{Since: &mid}, []string{"c→a 1", "b→a 2", "b→a 1", "a→c 1"}},
		{"Until", client.ListMessagesParams{Until: &mid}, []string{"a→b 1"}},
		{"SinceAndDirection", client.ListMessagesParams{Since: &mid, Direction: ptr(client.Direction("out"))}, []string{"a→c 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(allMessages(t, a, tc.params)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("BadFilters", func(t *testing.T) {
		for _, q := range []string{"direction=sideways", "status=lost", "since=yesterday", "chat=nobody", "limit=0", "limit=101", "cursor=bm9wZQ"} {
			r := ts.Do("GET", "/api/v1/sessions/me/messages?"+q, a.Token, nil)
			if r.Status != 400 || r.Err(t).Code != "BAD_REQUEST" {
				t.Errorf("%s: %d %s", q, r.Status, r.Body)
			}
		}
	})
	t.Run("GetWithHistory", func(t *testing.T) {
		m, err := a.C.GetMessage(ctx, "me", m2.ID)
		if err != nil || m.ID != m2.ID || len(m.StatusHistory) != 4 {
			t.Fatalf("%+v %v", m, err)
		}
		if _, err := b.C.GetMessage(ctx, "me", m1.ID); !client.IsCode(err, "NOT_FOUND") {
			t.Fatalf("another session's message: %v", err)
		}
	})

	chats := func() []client.Chat {
		t.Helper()
		r, err := a.C.ListChatsWithResponse(ctx, "me", nil)
		if err != nil || r.JSON200 == nil {
			t.Fatalf("chats: %v %s", err, r.Body)
		}
		return r.JSON200.Data.Items
	}
	t.Run("Chats", func(t *testing.T) {
		cs := chats()
		if len(cs) != 2 {
			t.Fatalf("chats %+v", cs)
		}
		// Most recent first: c's chat (its message came last), then b's.
		if cs[0].LastMessage == nil || cs[0].LastMessage.ID != inbound(t, a, last.WAID).ID || cs[0].UnreadCount != 1 {
			t.Fatalf("first chat %+v", cs[0])
		}
		if *cs[1].LastMessage.Text != "b→a 2" || cs[1].UnreadCount != 2 || cs[1].JID != bJID {
			t.Fatalf("second chat %+v", cs[1])
		}
		// Marking the newest read reads those before it too.
		newest := inbound(t, a, allMessages(t, b, client.ListMessagesParams{Direction: ptr(client.Direction("out"))})[0].WAID)
		if _, err := a.C.MarkRead(ctx, "me", newest.ID); err != nil {
			t.Fatal(err)
		}
		cs = chats()
		if cs[1].UnreadCount != 0 || cs[0].UnreadCount != 1 {
			t.Fatalf("after mark read: %d and %d unread", cs[0].UnreadCount, cs[1].UnreadCount)
		}
		for _, m := range allMessages(t, b, client.ListMessagesParams{Direction: ptr(client.Direction("out"))}) {
			waitStatusOf(t, b, m.ID, "read")
		}
	})
	t.Run("ChatsPaginate", func(t *testing.T) {
		r, err := a.C.ListChatsWithResponse(ctx, "me", &client.ListChatsParams{Limit: ptr(1)})
		if err != nil || r.JSON200 == nil || len(r.JSON200.Data.Items) != 1 || !r.JSON200.Data.HasMore {
			t.Fatalf("%v %s", err, r.Body)
		}
		r2, err := a.C.ListChatsWithResponse(ctx, "me", &client.ListChatsParams{Limit: ptr(1), Cursor: r.JSON200.Data.NextCursor})
		if err != nil || r2.JSON200 == nil || len(r2.JSON200.Data.Items) != 1 || r2.JSON200.Data.HasMore ||
			r2.JSON200.Data.Items[0].JID != bJID {
			t.Fatalf("%v %s", err, r2.Body)
		}
	})
	t.Run("Contacts", func(t *testing.T) {
		r, err := a.C.ListContactsWithResponse(ctx, "me", nil)
		if err != nil || r.JSON200 == nil {
			t.Fatalf("%v %s", err, r.Body)
		}
		var phones []string
		for _, ci := range r.JSON200.Data.Items {
			if ci.Phone != nil {
				phones = append(phones, *ci.Phone)
			}
		}
		slices.Sort(phones)
		want := []string{b.Phone, c.Phone}
		slices.Sort(want)
		if !slices.Equal(phones, want) {
			t.Fatalf("contacts %v, want %v", phones, want)
		}
	})
}

func TestMessagePaginationUnderConcurrentInserts(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.RateLimit = 1 << 20 })
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	const before = 60
	existing := map[string]bool{}
	for i := range before {
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: numNeverDelivers, Text: fmt.Sprintf("before %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		existing[m.ID] = true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var inserted sync.Map
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: numNeverDelivers, Text: fmt.Sprintf("during %d/%d", g, i)})
				if err != nil {
					t.Errorf("send during listing: %v", err)
					return
				}
				inserted.Store(m.ID, true)
			}
		}()
	}
	seen := map[string]int{}
	var order []string
	params := client.ListMessagesParams{Limit: ptr(7)}
	pages := 0
	for {
		l, err := a.C.ListMessages(ctx, "me", &params)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range l.Items {
			seen[m.ID]++
			order = append(order, m.ID)
		}
		if !l.HasMore {
			break
		}
		params.Cursor = l.NextCursor
		time.Sleep(2 * time.Millisecond) // let inserts land between pages
	}
	close(stop)
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s listed %d times", id, n)
		}
	}
	for id := range existing {
		if seen[id] != 1 {
			t.Errorf("message %s, there before listing began, listed %d times", id, seen[id])
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] >= order[i-1] {
			t.Fatalf("not newest first at %d: %s after %s", i, order[i], order[i-1])
		}
	}
	n := 0
	inserted.Range(func(any, any) bool { n++; return true })
	t.Logf("%d pages, %d listed, %d inserted while listing", pages, len(order), n)
}
