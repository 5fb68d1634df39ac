package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// inOneBatch makes calls, each queuing one change in s's writer lane, as
// one batch: the lane is held until all are queued, in order. It returns
// their outcomes and how many commits they took.
func inOneBatch(t *testing.T, db *store.DB, sessionID string, calls ...func(ctx context.Context) error) ([]error, uint64) {
	t.Helper()
	ctx := store.ForSessionForTest(context.Background(), sessionID)
	release := holdLane(t, db, ctx)
	before := db.WriterStats()
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = call(ctx)
		}()
		waitQueued(t, db, ctx, i+1)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return errs, db.WriterStats().Batches - before.Batches - 1
}

// change is a call for inOneBatch that runs fn.
func change(db *store.DB, fn func(*store.Tx) error) func(context.Context) error {
	return func(ctx context.Context) error { return db.Update(ctx, fn) }
}

// oneBatch checks that changes run as one batch succeeded and committed
// once on PostgreSQL, where a failed batch would have run again change by
// change. (On SQLite a change can outrun the batch's work budget under
// -race and commit apart.)
func oneBatch(t *testing.T, db *store.DB, errs []error, commits uint64, changes int) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	if db.Dialect() == store.Postgres && commits != 1 || commits < 1 || commits > uint64(changes) {
		t.Fatalf("%d changes in %d commits, want one batch", changes, commits)
	}
}

func outbound(s *wabsync.Session) *wabsync.Message {
	return &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: s.ID, Direction: wabsync.DirectionOut, Chat: "15550000002@s.whatsapp.net",
		WAID: wabsync.NewWAID(), To: "+15550000002", Kind: wabsync.KindText, Text: "hi"}
}

func statuses(m *wabsync.Message) []wabsync.MessageStatus {
	var out []wabsync.MessageStatus
	for _, c := range m.StatusHistory {
		out = append(out, c.Status)
	}
	return out
}

// countEvents counts the session's stored events of type typ.
func countEvents(t *testing.T, db *store.DB, sessionID, typ string) int {
	t.Helper()
	evs, err := db.ListEvents(context.Background(), sessionID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// A change sees what the changes before it in its batch wrote, whether
// those writes were made at once (SQLite) or deferred to the batch's end
// (PostgreSQL): through the store's own lookups, which take a message from
// the batch, and through any other statement, before which the batch
// writes what it deferred.
func TestBatchSeesItsOwnDeferredWrites(t *testing.T) {
	db := testutil.MustOpenDB(t)
	s := newSession(t, db, wabsync.StatusConnected)
	ctx := context.Background()
	m := outbound(s)
	if err := db.AcceptMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	errs, commits := inOneBatch(t, db, s.ID,
		change(db, func(tx *store.Tx) error { return tx.MarkSent(s.ID, m.ID, time.Time{}, time.Time{}) }),
		change(db, func(tx *store.Tx) error {
			got, err := tx.FindByWAID(s.ID, m.WAID)
			if err != nil || got == nil || got.Status != wabsync.MsgSent {
				return fmt.Errorf("the message marked sent before in the batch: %+v, %v", got, err)
			}
			// From "sent", not again from "queued".
			return tx.ApplyReceipt(s.ID, []string{m.WAID}, wabsync.MsgDelivered, time.Time{})
		}),
		change(db, func(tx *store.Tx) error {
			var status string
			var n int
			if err := tx.QueryRow(`SELECT status FROM messages WHERE id = ?`, m.ID).Scan(&status); err != nil {
				return err
			}
			if err := tx.QueryRow(`SELECT COUNT(*) FROM events WHERE session_id = ? AND type = ?`, s.ID, wabsync.EventMessageDelivered).Scan(&n); err != nil {
				return err
			}
			if status != string(wabsync.MsgDelivered) || n != 1 {
				return fmt.Errorf("a statement of the batch saw status %q and %d delivered events, want delivered and 1", status, n)
			}
			return nil
		}))
	oneBatch(t, db, errs, commits, 3)
	got, err := db.GetMessage(ctx, s.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []wabsync.MessageStatus{wabsync.MsgQueued, wabsync.MsgSending, wabsync.MsgSent, wabsync.MsgDelivered}
	if got.Status != wabsync.MsgDelivered || !slices.Equal(statuses(got), want) {
		t.Fatalf("stored: %s, history %v; want delivered, %v", got.Status, statuses(got), want)
	}
	for _, typ := range []string{wabsync.EventMessageSent, wabsync.EventMessageDelivered} {
		if n := countEvents(t, db, s.ID, typ); n != 1 {
			t.Fatalf("%d %s events, want 1", n, typ)
		}
	}
}

// Messages received in one batch: a repeat of one is not stored twice, a
// later change finds them, and what each says of its sender adds up in the
// contact (a field left empty keeps what is known).
func TestBatchedInboundAndContacts(t *testing.T) {
	db := testutil.MustOpenDB(t)
	s := newSession(t, db, wabsync.StatusConnected)
	ctx := context.Background()
	const jid = "15550000009@s.whatsapp.net"
	in := func(waID string) *wabsync.Message {
		return &wabsync.Message{SessionID: s.ID, Direction: wabsync.DirectionIn, Chat: jid, WAID: waID, From: "+15550000009",
			FromJID: jid, Kind: wabsync.KindText, Text: "hello"}
	}
	first, second := wabsync.NewWAID(), wabsync.NewWAID()
	stored := func(m *wabsync.Message, c *wabsync.ContactInfo, want bool) func(context.Context) error {
		return change(db, func(tx *store.Tx) error {
			ok, err := tx.StoreInbound(m, c)
			if err == nil && ok != want {
				err = fmt.Errorf("stored %v, want %v", ok, want)
			}
			return err
		})
	}
	errs, commits := inOneBatch(t, db, s.ID,
		stored(in(first), &wabsync.ContactInfo{JID: jid, PushName: "Ann"}, true),
		stored(in(first), &wabsync.ContactInfo{JID: jid, PushName: "Ann"}, false),
		stored(in(second), &wabsync.ContactInfo{JID: jid, Phone: "+15550000009"}, true),
		change(db, func(tx *store.Tx) error {
			got, err := tx.FindByWAID(s.ID, second)
			if err != nil || got == nil || got.Direction != wabsync.DirectionIn {
				return fmt.Errorf("the message received before in the batch: %+v, %v", got, err)
			}
			return nil
		}))
	oneBatch(t, db, errs, commits, 4)
	list, err := db.ListMessages(ctx, s.ID, wabsync.MessageFilter{Page: wabsync.Page{Limit: 10}})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("messages stored: %d, %v; want 2", len(list.Items), err)
	}
	if n := countEvents(t, db, s.ID, wabsync.EventMessageReceived); n != 2 {
		t.Fatalf("%d message.received events, want 2", n)
	}
	cs, err := db.ListContacts(ctx, s.ID, wabsync.Page{Limit: 10})
	if err != nil || len(cs.Items) != 1 || cs.Items[0].PushName != "Ann" || cs.Items[0].Phone != "+15550000009" {
		t.Fatalf("contacts: %+v, %v; want one, with both the name and the phone", cs.Items, err)
	}
}

// Lookups of messages read ahead in one statement (PrefetchMessages) give
// what one lookup each would: stored messages as the batch left them, a
// message the batch made, and nothing for an id no message has.
func TestPrefetchedLookups(t *testing.T) {
	db := testutil.MustOpenDB(t)
	s := newSession(t, db, wabsync.StatusConnected)
	ctx := context.Background()
	sent, queued, made := outbound(s), outbound(s), outbound(s)
	for _, m := range []*wabsync.Message{sent, queued} {
		if err := db.AcceptMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MarkSent(ctx, s.ID, sent.ID, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	errs, commits := inOneBatch(t, db, s.ID,
		change(db, func(tx *store.Tx) error { return tx.MarkSent(s.ID, sent.ID, time.Time{}, time.Time{}) }), // nothing to do
		func(context.Context) error { return db.AcceptMessage(ctx, made, nil) },
		change(db, func(tx *store.Tx) error {
			waIDs := []string{sent.WAID, made.WAID, "3EB0NOSUCHMESSAGE"}
			if err := tx.PrefetchMessages(s.ID, []string{queued.ID}, waIDs); err != nil {
				return err
			}
			if m, err := tx.FindByWAID(s.ID, "3EB0NOSUCHMESSAGE"); m != nil || err != nil {
				return fmt.Errorf("no such message: %+v, %v", m, err)
			}
			if err := tx.ApplyReceipt(s.ID, waIDs, wabsync.MsgDelivered, time.Time{}); err != nil {
				return err
			}
			return tx.MarkSent(s.ID, queued.ID, time.Time{}, time.Time{})
		}))
	oneBatch(t, db, errs, commits, 3)
	for _, c := range []struct {
		m    *wabsync.Message
		want wabsync.MessageStatus
	}{{sent, wabsync.MsgDelivered}, {made, wabsync.MsgDelivered}, {queued, wabsync.MsgSent}} {
		got, err := db.GetMessage(ctx, s.ID, c.m.ID)
		if err != nil || got.Status != c.want {
			t.Fatalf("message %s: %+v, %v; want %s", c.m.ID, got, err, c.want)
		}
	}
	if n := countEvents(t, db, s.ID, wabsync.EventMessageSent); n != 3 {
		t.Fatalf("%d message.sent events, want 3 (one a message)", n)
	}
}

// A change alone whose deferred writes fail at the batch's end (here: a
// WhatsApp id its chat already has) runs again, deferring nothing, and
// gets its own outcome: the message is stored under a new id.
func TestChangeAloneRunsAgainWhenItsDeferredWritesFail(t *testing.T) {
	db := testutil.MustOpenDB(t)
	s := newSession(t, db, wabsync.StatusConnected)
	ctx := context.Background()
	first := outbound(s)
	if err := db.AcceptMessage(ctx, first, nil); err != nil {
		t.Fatal(err)
	}
	again := outbound(s)
	again.WAID = first.WAID
	if err := db.AcceptMessage(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetMessage(ctx, s.ID, again.ID)
	if err != nil || got.WAID == first.WAID || got.WAID != again.WAID {
		t.Fatalf("stored: %+v, %v; want a new WhatsApp id, reported", got, err)
	}
}

// A change whose write waits for its batch's end (PostgreSQL) holds the
// row it read until then: a change of the same message made meanwhile
// elsewhere (another lane or node) waits, and neither is lost. Here node a
// records a received message's media (SetMediaBlob, in the lane of changes
// without a session) while node b edits it.
func TestDeferredChangeHoldsItsRow(t *testing.T) {
	a, b := twoNodes(t)
	ctx := context.Background()
	s := newSession(t, a, wabsync.StatusConnected)
	m := &wabsync.Message{SessionID: s.ID, Direction: wabsync.DirectionIn, Chat: "15550000009@s.whatsapp.net", WAID: wabsync.NewWAID(),
		From: "+15550000009", Kind: wabsync.KindImage, Media: &wabsync.Media{MimeType: "image/png", Size: 3, Ref: "ref"}}
	if _, err := a.StoreInbound(ctx, m, nil); err != nil {
		t.Fatal(err)
	}

	// a's batch: the media recorded, then a change that keeps the batch
	// open until told.
	release := holdLane(t, a, ctx)
	blob := make(chan error, 1)
	go func() { blob <- a.SetMediaBlob(ctx, m.ID, "blobkey") }()
	waitQueued(t, a, ctx, 1)
	inBatch, finish := make(chan struct{}), make(chan struct{})
	open2 := make(chan error, 1)
	go func() {
		open2 <- a.Update(ctx, func(*store.Tx) error { close(inBatch); <-finish; return nil })
	}()
	waitQueued(t, a, ctx, 2)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	<-inBatch
	edited := make(chan error, 1)
	go func() {
		_, err := b.ModifyMessage(ctx, s.ID, m.ID, "", func(m *wabsync.Message) error { m.Caption = "edited"; return nil })
		edited <- err
	}()
	time.Sleep(300 * time.Millisecond) // b's change waits for a's batch (or, wrongly, commits now)
	close(finish)
	for _, ch := range []chan error{blob, open2, edited} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.GetMessage(ctx, s.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Media == nil || got.Media.BlobKey != "blobkey" || got.Caption != "edited" {
		t.Fatalf("stored: media %+v, caption %q; want both changes", got.Media, got.Caption)
	}
}
