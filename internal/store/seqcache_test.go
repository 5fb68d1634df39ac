package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// TestSequencesGapFree: message and event sequences of a session stay gap
// free and unique through concurrent changes, changes that fail (rolled
// back with their batch), and other code that bumps the counters itself.
func TestSequencesGapFree(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusStopped)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, events := 0, 0
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch i % 5 {
			case 0, 1:
				m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: s.ID, Direction: wabsync.DirectionOut, Chat: "1@s.whatsapp.net",
					WAID: fmt.Sprintf("W%d", i), To: "+1", Kind: wabsync.KindText, Text: "x"}
				if err = db.AcceptMessage(ctx, m, nil); err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			case 2:
				err = db.Update(ctx, func(tx *store.Tx) error {
					_, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"i": i})
					return err
				})
				if err == nil {
					mu.Lock()
					events++
					mu.Unlock()
				}
			case 3: // takes sequences, then fails: none of them may count
				err = db.Update(ctx, func(tx *store.Tx) error {
					if _, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"i": i}); err != nil {
						return err
					}
					return boom
				})
				if errors.Is(err, boom) {
					err = nil
				}
			case 4: // other code that uses the counter columns itself
				err = db.Update(ctx, func(tx *store.Tx) error {
					var seq int64
					if err := tx.QueryRow(`UPDATE sessions SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq`, s.ID).Scan(&seq); err != nil {
						return err
					}
					_, err := tx.Exec(`INSERT INTO events (id, session_id, seq, type, body, created_at) VALUES (?, ?, ?, 'webhook.test', ?, 0)`,
						wabsync.NewID("evt"), s.ID, seq, fmt.Sprintf(`{"type":"webhook.test","sequence":%d}`, seq))
					return err
				})
				if err == nil {
					mu.Lock()
					events++
					mu.Unlock()
				}
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := db.ListMessages(ctx, s.ID, wabsync.MessageFilter{Page: wabsync.Page{Limit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, m := range got.Items {
		if seen[m.Sequence] || m.Sequence < 1 || m.Sequence > int64(accepted) {
			t.Fatalf("message sequence %d repeated or out of 1..%d", m.Sequence, accepted)
		}
		seen[m.Sequence] = true
	}
	if len(seen) != accepted {
		t.Fatalf("%d message sequences for %d messages", len(seen), accepted)
	}
	evs, err := db.ListEvents(ctx, s.ID, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != events {
		t.Fatalf("%d events stored, %d made", len(evs), events)
	}
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d: gap or repeat", i, ev.Sequence)
		}
	}
	if seq, err := db.LatestEventSeq(ctx, s.ID); err != nil || seq != int64(events) {
		t.Fatalf("latest event sequence %d (%v), want %d", seq, err, events)
	}
}

// TestTestEventTakesTheNextSequence: a webhook's test event is numbered in
// its session's sequence like any other event.
func TestTestEventTakesTheNextSequence(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	s := newSession(t, db, wabsync.StatusStopped)
	w := &wabsync.Webhook{ID: wabsync.NewID("whk"), SessionID: &s.ID, URL: "https://example.com/a", Events: []string{"*"}, Enabled: true, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	if err := db.CreateWebhook(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	event := func() {
		t.Helper()
		if err := db.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.AddEvent(&s.ID, wabsync.EventWebhookTest, map[string]int{"x": 1})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	event()
	ev, dl, err := db.AddTestEvent(ctx, &s.ID, w.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	event()
	if ev.Sequence != 2 || dl.EventID != ev.ID {
		t.Fatalf("test event %+v, delivery %+v: want sequence 2 and its delivery", ev, dl)
	}
	evs, err := db.ListEvents(ctx, s.ID, 0, 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("%d events (%v)", len(evs), err)
	}
	for i, e := range evs {
		if e.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d", i, e.Sequence)
		}
	}
}
