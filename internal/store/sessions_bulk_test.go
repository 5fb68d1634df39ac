package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// SetStatuses writes each fenced session's transition with its event (next
// sequence, previous status, deliveries), leaves out sessions whose lease
// token is stale or that Accept refuses, and on hand-back releases the
// leases in the same transaction.
func TestSetStatuses(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	var seen []*wabsync.Event
	db.OnEvent = func(ev *wabsync.Event) { seen = append(seen, ev) }
	mk := func(name, engine string) *wabsync.Session {
		s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: name, Engine: engine, Status: wabsync.StatusStopped, StatusReason: "Created."}
		if err := db.CreateSession(ctx, s, store.HashToken(store.NewSessionToken())); err != nil {
			t.Fatal(err)
		}
		return s
	}
	ok1, ok2, stale, other := mk("ok1", wabsync.EngineSandbox), mk("ok2", wabsync.EngineSandbox), mk("stale", wabsync.EngineSandbox), mk("other", "nope")
	// A webhook of ok1 and a global one for session.status only: ok1's
	// event gets two deliveries, ok2's one.
	for _, w := range []*wabsync.Webhook{
		{SessionID: &ok1.ID, URL: "http://127.0.0.1:1/a", Events: []string{"*"}, Enabled: true, Secret: "s"},
		{URL: "http://127.0.0.1:1/b", Events: []string{wabsync.EventSessionStatus}, Enabled: true, Secret: "s"},
		{URL: "http://127.0.0.1:1/c", Events: []string{wabsync.EventMessageReceived}, Enabled: true, Secret: "s"},
	} {
		if err := db.CreateWebhook(ctx, w, nil); err != nil {
			t.Fatal(err)
		}
	}
	var leases []store.Lease
	for _, s := range []*wabsync.Session{ok1, ok2, stale, other} {
		l, ok, _, err := db.AcquireLease(ctx, s.ID, "n1", time.Minute, false)
		if err != nil || !ok {
			t.Fatalf("acquire %s: %v %v", s.Name, ok, err)
		}
		if s == stale {
			l.Token-- // an older lease of this node
		}
		leases = append(leases, l)
	}
	seqBefore, _ := db.LatestEventSeq(ctx, ok1.ID)
	written, refused, err := db.SetStatuses(ctx, leases, wabsync.StatusStarting, "Resumed.", store.BulkStatus{
		Desire: true, Accept: func(s *wabsync.Session) bool { return s.Engine == wabsync.EngineSandbox },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2 || len(refused) != 1 || refused[0].ID != other.ID {
		t.Fatalf("written %d, refused %v", len(written), refused)
	}
	for _, s := range written {
		if s.Status != wabsync.StatusStarting || s.StatusReason != "Resumed." || !s.Desired || (s.ID != ok1.ID && s.ID != ok2.ID) {
			t.Fatalf("returned %+v", s)
		}
	}
	for _, s := range []*wabsync.Session{stale, other} {
		got, _ := db.GetSession(ctx, s.ID)
		if got.Status != wabsync.StatusStopped {
			t.Fatalf("%s changed to %s", s.Name, got.Status)
		}
	}
	got, _ := db.GetSession(ctx, ok1.ID)
	if got.Status != wabsync.StatusStarting || got.StatusReason != "Resumed." {
		t.Fatalf("stored %s %q", got.Status, got.StatusReason)
	}
	evs, err := db.ListEvents(ctx, ok1.ID, seqBefore, 10)
	if err != nil || len(evs) != 1 || evs[0].Sequence != seqBefore+1 || evs[0].Type != wabsync.EventSessionStatus {
		t.Fatalf("events of ok1: %v %v", evs, err)
	}
	var data wabsync.SessionStatusData
	if err := json.Unmarshal(evs[0].Data, &data); err != nil || data.Status != wabsync.StatusStarting || data.Previous != wabsync.StatusStopped || data.Reason != "Resumed." {
		t.Fatalf("event data %s", evs[0].Data)
	}
	if len(seen) != 2 {
		t.Fatalf("OnEvent saw %d events, want 2", len(seen))
	}
	count := func(q string, args ...any) int {
		var n int
		if err := db.Update(ctx, func(tx *store.Tx) error { return tx.QueryRow(q, args...).Scan(&n) }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.session_id = ?`, ok1.ID); n != 2 {
		t.Fatalf("ok1's event has %d deliveries, want 2", n)
	}
	if n := count(`SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.session_id = ?`, ok2.ID); n != 1 {
		t.Fatalf("ok2's event has %d deliveries, want 1", n)
	}

	// The same transition again changes nothing visible: no event.
	if _, _, err := db.SetStatuses(ctx, leases[:2], wabsync.StatusStarting, "Resumed.", store.BulkStatus{}); err != nil {
		t.Fatal(err)
	}
	if seq, _ := db.LatestEventSeq(ctx, ok1.ID); seq != seqBefore+1 {
		t.Fatalf("an unchanged status stored an event (seq %d)", seq)
	}

	// Hand-back: stopped, and the leases are gone and logged as released.
	written, _, err = db.SetStatuses(ctx, leases, wabsync.StatusStopped, "Its node stopped.", store.BulkStatus{Release: true})
	if err != nil || len(written) != 3 {
		t.Fatalf("hand-back wrote %d, err %v", len(written), err)
	}
	if n := count(`SELECT COUNT(*) FROM session_leases WHERE session_id IN (?, ?, ?)`, ok1.ID, ok2.ID, other.ID); n != 0 {
		t.Fatalf("%d leases left after the hand-back", n)
	}
	if n := count(`SELECT COUNT(*) FROM session_leases WHERE session_id = ?`, stale.ID); n != 1 {
		t.Fatal("the lease of a stale token was released")
	}
	if n := count(`SELECT COUNT(*) FROM lease_log WHERE released_at IS NULL AND session_id <> ?`, stale.ID); n != 0 {
		t.Fatalf("%d lease log entries still open", n)
	}
	got, _ = db.GetSession(ctx, other.ID)
	if got.Status != wabsync.StatusStopped || got.StatusReason != "Its node stopped." {
		t.Fatalf("other after hand-back: %s %q", got.Status, got.StatusReason)
	}
}

// SetStatusEach stores each session's own transition with its event, sets
// connected_at on the way to connected, and refuses a stale lease.
func TestSetStatusEach(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	var leases []store.Lease
	var ids []string
	for _, name := range []string{"a", "b", "stale"} {
		s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: name, Engine: wabsync.EngineSandbox, Status: wabsync.StatusStarting, StatusReason: "Starting."}
		if err := db.CreateSession(ctx, s, store.HashToken(store.NewSessionToken())); err != nil {
			t.Fatal(err)
		}
		l, ok, _, err := db.AcquireLease(ctx, s.ID, "n1", time.Minute, false)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if name == "stale" {
			l.Token++
		}
		leases, ids = append(leases, l), append(ids, s.ID)
	}
	items := []store.StatusItem{
		{Lease: leases[0], Status: wabsync.StatusConnected, Reason: "Connected.", Phone: "+15551230001", PushName: "A"},
		{Lease: leases[1], Status: wabsync.StatusReconnecting, Reason: "Lost."},
		{Lease: leases[2], Status: wabsync.StatusConnected, Reason: "Connected."},
	}
	errs := db.SetStatusEach(ctx, items)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], store.ErrLeaseLost) {
		t.Fatalf("errors %v", errs)
	}
	a, _ := db.GetSession(ctx, ids[0])
	if a.Status != wabsync.StatusConnected || a.Phone != "+15551230001" || a.PushName != "A" || a.ConnectedAt == nil {
		t.Fatalf("a stored as %+v", a)
	}
	b, _ := db.GetSession(ctx, ids[1])
	if b.Status != wabsync.StatusReconnecting || b.StatusReason != "Lost." || b.ConnectedAt != nil {
		t.Fatalf("b stored as %+v", b)
	}
	if st, _ := db.GetSession(ctx, ids[2]); st.Status != wabsync.StatusStarting {
		t.Fatalf("the stale lease's session changed to %s", st.Status)
	}
	evs, err := db.ListEvents(ctx, ids[0], 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Sequence != 1 {
		t.Fatalf("events of a: %v %v", evs, err)
	}
	var data wabsync.SessionStatusData
	if err := json.Unmarshal(evs[0].Data, &data); err != nil || data.Previous != wabsync.StatusStarting || data.Status != wabsync.StatusConnected || data.Phone != "+15551230001" {
		t.Fatalf("event data %s", evs[0].Data)
	}
	// Again: nothing changed, no event, connected_at kept.
	if errs := db.SetStatusEach(ctx, items[:1]); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if seq, _ := db.LatestEventSeq(ctx, ids[0]); seq != 1 {
		t.Fatalf("an unchanged status stored an event (seq %d)", seq)
	}
	if a2, _ := db.GetSession(ctx, ids[0]); !a2.ConnectedAt.Equal(*a.ConnectedAt) {
		t.Fatalf("connected_at moved from %v to %v", a.ConnectedAt, a2.ConnectedAt)
	}
}
