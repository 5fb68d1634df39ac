package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// On SQLite the sandbox mail lives in a file of its own: mail an older
// version left in the main file is moved there in order, and a deleted
// session's mail goes with it.
func TestMailboxOfItsOwn(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() *store.DB {
		db, err := store.Open(ctx, "", store.Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	// As an older version kept it: in the main file.
	for _, b := range []string{"one", "two", "three"} {
		if err := db.PutMail(ctx, "+15550100001", []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.OpenMailbox(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "wabsync-sandbox.db")); err != nil {
		t.Fatalf("no mailbox file: %v", err)
	}
	if err := db.PutMail(ctx, "+15550100001", []byte("four")); err != nil {
		t.Fatal(err)
	}
	take := func(db *store.DB, phone string) []string {
		t.Helper()
		_, bodies, err := db.TakeMail(ctx, phone, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bodies {
			out = append(out, string(b))
		}
		return out
	}
	if got := take(db, "+15550100001"); len(got) != 4 || got[0] != "one" || got[3] != "four" {
		t.Fatalf("mail %q, want one..four in order", got)
	}
	// Reopened: moved once, not twice.
	db.Close()
	db = open()
	defer db.Close()
	if err := db.OpenMailbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got := take(db, "+15550100001"); len(got) != 4 {
		t.Fatalf("after reopening: mail %q, want 4", got)
	}

	// A deleted session's mail goes too.
	s := newSession(t, db, wabsync.StatusConnected)
	s, err := db.ModifySession(ctx, s.ID, func(_ *store.Tx, s *wabsync.Session) error { s.Phone = "+15550100002"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutMail(ctx, s.Phone, []byte("for a")); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if got := take(db, s.Phone); len(got) != 0 {
		t.Fatalf("mail %q left for a deleted session", got)
	}
}

// A mailbox file that cannot be opened fails OpenMailbox with an error that
// says so (the server then refuses to start), and the mail an older version
// left in the main file stays there until a later start moves it.
func TestMailboxThatCannotOpen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.Open(ctx, "", store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMail(ctx, "+15550100001", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "wabsync-sandbox.db")
	if err := os.Mkdir(blocker, 0o700); err != nil { // not a file SQLite can open
		t.Fatal(err)
	}
	if err := db.OpenMailbox(ctx); err == nil || !strings.Contains(err.Error(), "sandbox mailbox") {
		t.Fatalf("OpenMailbox over a directory: %v, want a sandbox mailbox error", err)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := db.OpenMailbox(ctx); err != nil {
		t.Fatal(err)
	}
	if _, bodies, err := db.TakeMail(ctx, "+15550100001", 10); err != nil || len(bodies) != 1 || string(bodies[0]) != "kept" {
		t.Fatalf("mail after the failed start: %q, %v", bodies, err)
	}
}
