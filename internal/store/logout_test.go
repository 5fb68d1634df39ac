package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// queueTexts accepts n outbound texts of session s and returns their ids.
func queueTexts(tb testing.TB, db *store.DB, s *wabsync.Session, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		waID := fmt.Sprintf("3EB0%016X", i)
		m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: s.ID, Direction: wabsync.DirectionOut, Chat: "15550000002@s.whatsapp.net",
			WAID: waID, From: "+15550000001", To: "+15550000002", ToJID: "15550000002@s.whatsapp.net", Kind: wabsync.KindText, Text: "queued " + waID}
		if err := db.AcceptMessage(context.Background(), m, nil); err != nil {
			tb.Fatal(err)
		}
		ids[i] = m.ID
	}
	return ids
}

// logOut stores a logout of s that fails its queue, as the session manager
// does, and returns how many messages it failed.
func logOut(tb testing.TB, db *store.DB, s *wabsync.Session) int {
	tb.Helper()
	var n int
	_, err := db.ModifySession(context.Background(), s.ID, func(tx *store.Tx, s *wabsync.Session) error {
		s.Status, s.StatusReason, s.Phone = wabsync.StatusLoggedOut, "Logged out.", ""
		var err error
		n, err = tx.FailQueued(s.ID, wabsync.MsgErrLoggedOut, "logged out")
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// FailQueued fails exactly the session's messages still to send (more than
// one page of them), each with its message.failed event, in the
// transaction of the status change.
func TestFailQueued(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusStopped)
	other := newSession(t, db, wabsync.StatusStopped)
	ids := queueTexts(t, db, s, 1234)
	otherIDs := queueTexts(t, db, other, 3)
	for _, id := range ids[:2] { // already sent: left alone
		if err := db.MarkSent(ctx, s.ID, id, time.Time{}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := db.LatestEventSeq(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := logOut(t, db, s); n != len(ids)-2 {
		t.Fatalf("failed %d messages, want %d", n, len(ids)-2)
	}
	for i, id := range ids {
		m, err := db.GetMessage(ctx, s.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i < 2 && m.Status != wabsync.MsgSent:
			t.Fatalf("sent message %s is %s", id, m.Status)
		case i >= 2 && (m.Status != wabsync.MsgFailed || m.Error == nil || m.Error.Code != wabsync.MsgErrLoggedOut ||
			len(m.StatusHistory) != 2):
			t.Fatalf("queued message %s: %s %+v %+v", id, m.Status, m.Error, m.StatusHistory)
		}
	}
	for _, id := range otherIDs {
		if m, _ := db.GetMessage(ctx, other.ID, id); m.Status != wabsync.MsgQueued {
			t.Fatalf("another session's message is %s", m.Status)
		}
	}
	failed, status := 0, 0
	for {
		evs, err := db.ListEvents(ctx, s.ID, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			switch ev.Type {
			case wabsync.EventMessageFailed:
				failed++
			case wabsync.EventSessionStatus:
				status++
			}
			after = ev.Sequence
		}
	}
	if failed != len(ids)-2 || status != 1 {
		t.Fatalf("%d message.failed and %d session.status events, want %d and 1", failed, status, len(ids)-2)
	}
	if n := logOut(t, db, s); n != 0 {
		t.Fatalf("a second logout failed %d messages", n)
	}
}

// BenchmarkLogoutOutbox measures a logout that fails an outbox of 10,000
// queued messages: one change, which every other write of its writer lane
// waits behind.
//
//	go test -run '^$' -bench LogoutOutbox -benchtime 1x ./internal/store/
func BenchmarkLogoutOutbox(b *testing.B) {
	const queued = 10000
	db := testutil.MustOpenDB(b)
	for range b.N {
		b.StopTimer()
		s := newSession(b, db, wabsync.StatusStopped)
		queueTexts(b, db, s, queued)
		b.StartTimer()
		start := time.Now()
		if n := logOut(b, db, s); n != queued {
			b.Fatalf("failed %d", n)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/logout")
	}
}
