package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// BenchmarkMessageWrites runs, per operation, the stored changes one text
// message causes between two sessions of one server: accept, sent
// (+ event), the recipient's insert (+ event), delivered (+ event). The
// writer is serial, so ns/op is the writer's cost per message: 1e9/ns-op is
// the most messages per second the store can carry end to end.
//
//	go test -run '^$' -bench MessageWrites -benchtime 20000x ./internal/store/
func BenchmarkMessageWrites(b *testing.B) {
	for _, hooks := range []int{0, 1} {
		b.Run(fmt.Sprintf("webhooks=%d", hooks), func(b *testing.B) {
			db := testutil.MustOpenDB(b)
			ctx := context.Background()
			mk := func(name, phone string) *wabsync.Session {
				s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: name, Engine: wabsync.EngineSandbox, Status: wabsync.StatusConnected, Phone: phone}
				if err := db.CreateSession(ctx, s, store.HashToken(store.NewSessionToken())); err != nil {
					b.Fatal(err)
				}
				return s
			}
			a, r := mk("a", "+15550000001"), mk("b", "+15550000002")
			for i := 0; i < hooks; i++ {
				w := &wabsync.Webhook{ID: wabsync.NewID("whk"), SessionID: &r.ID, URL: "https://example.com/hook", Events: []string{"*"}, Enabled: true, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
				if err := db.CreateWebhook(ctx, w, nil); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.SetParallelism(128) // messages in flight at once, as with many clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					waID := fmt.Sprintf("3EB0%016X", i)
					m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: a.ID, Direction: wabsync.DirectionOut, Chat: "15550000002@s.whatsapp.net",
						WAID: waID, To: "+15550000002", ToJID: "15550000002@s.whatsapp.net", Kind: wabsync.KindText, Text: "hello there, this is message " + waID}
					if err := db.AcceptMessage(ctx, m, nil); err != nil {
						b.Fatal(err)
					}
					if err := db.MarkSent(ctx, a.ID, m.ID, db.Now(), time.Time{}); err != nil {
						b.Fatal(err)
					}
					in := &wabsync.Message{SessionID: r.ID, Direction: wabsync.DirectionIn, Chat: "15550000001@s.whatsapp.net", WAID: waID,
						From: "+15550000001", FromJID: "15550000001@s.whatsapp.net", To: "+15550000002", Kind: wabsync.KindText, Text: m.Text}
					if _, err := db.StoreInbound(ctx, in, &wabsync.ContactInfo{JID: in.FromJID, Phone: in.From, PushName: "A"}); err != nil {
						b.Fatal(err)
					}
					if err := db.ApplyReceipt(ctx, a.ID, []string{waID}, wabsync.MsgDelivered, db.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkAcceptMessage is the accept path alone: the writer's cost of one
// durable 201.
func BenchmarkAcceptMessage(b *testing.B) {
	db := testutil.MustOpenDB(b)
	ctx := context.Background()
	s := newSession(b, db, wabsync.StatusConnected)
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: s.ID, Direction: wabsync.DirectionOut, Chat: "15550000002@s.whatsapp.net",
				WAID: fmt.Sprintf("3EB0%016X", i), To: "+15550000002", ToJID: "15550000002@s.whatsapp.net", Kind: wabsync.KindText, Text: "hello"}
			if err := db.AcceptMessage(ctx, m, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPruneIdempotency measures pruning 10,000 expired Idempotency-Key
// records (each with a 1 KiB stored response): ns/op is one full prune, in
// transactions of 1,000 rows.
//
//	go test -run '^$' -bench PruneIdempotency -benchtime 5x ./internal/store/
func BenchmarkPruneIdempotency(b *testing.B) {
	db := testutil.MustOpenDB(b)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'x'
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db.Now = func() time.Time { return t0 }
		for k := 0; k < 10; k++ {
			if err := db.Update(ctx, func(tx *store.Tx) error {
				for j := 0; j < 1000; j++ {
					if err := tx.PutIdempotent("bench", fmt.Sprintf("k-%d-%d-%d", i, k, j), "h", 201, body); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		db.Now = func() time.Time { return t0.Add(25 * time.Hour) }
		b.StartTimer()
		if n, err := db.PruneIdempotency(ctx); err != nil || n != 10000 {
			b.Fatalf("pruned %d, err %v", n, err)
		}
	}
}
