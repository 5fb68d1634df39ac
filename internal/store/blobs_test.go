package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/testutil"
)

// ReferencedBlobs finds the blob keys that messages refer to, whatever their
// session, and forgets a deleted session's.
func TestReferencedBlobs(t *testing.T) {
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	a := newSession(t, db, wabsync.StatusConnected)
	b := newSession(t, db, wabsync.StatusConnected)
	key := func(c string) string { return strings.Repeat(c, 64) }
	send := func(sessionID, blobKey, caption string) {
		t.Helper()
		m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: sessionID, Direction: wabsync.DirectionOut, Chat: "15550000002@s.whatsapp.net",
			WAID: wabsync.NewWAID(), To: "+15550000002", Kind: wabsync.KindDocument, Caption: caption,
			Media: &wabsync.Media{MimeType: "application/pdf", Size: 1, SHA256: blobKey, BlobKey: blobKey}}
		if err := db.AcceptMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	send(a.ID, key("a"), "")
	send(b.ID, key("b"), "")
	// A caption that spells the field names no blob.
	send(a.ID, key("c"), `"blob_key":"`+key("d")+`"`)
	asked := []string{key("a"), key("b"), key("c"), key("d"), key("e")}
	got, err := db.ReferencedBlobs(ctx, asked)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{key("a"): true, key("b"): true, key("c"): true}
	if len(got) != len(want) || !got[key("a")] || !got[key("b")] || !got[key("c")] {
		t.Fatalf("ReferencedBlobs = %v, want %v", got, want)
	}
	t.Run("SessionDeleted", func(t *testing.T) {
		if err := db.DeleteSession(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		got, err := db.ReferencedBlobs(ctx, asked)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !got[key("b")] {
			t.Fatalf("after deleting session a: %v, want only b's key", got)
		}
	})
}
