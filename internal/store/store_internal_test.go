package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
)

func TestWritesSessions(t *testing.T) {
	for q, want := range map[string]bool{
		`UPDATE sessions SET msg_seq = msg_seq + 1 WHERE id = ? RETURNING msg_seq`:       false,
		`UPDATE sessions SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq`: false,
		`UPDATE sessions SET qr = ?, qr_expires_at = ? WHERE id = ?`:                     false,
		`SELECT id FROM sessions WHERE id = ?`:                                           false,
		`INSERT INTO messages (id) VALUES (?)`:                                           false,
		`UPDATE session_leases SET expires_at = ?`:                                       false,
		`UPDATE sessions SET name = ?, status = ? WHERE id = ?`:                          true,
		"\n\t\tupdate sessions set status = 'stopped'":                                   true,
		`UPDATE sessions SET desired = 1 WHERE id = ?`:                                   true,
		`DELETE FROM sessions WHERE id = ?`:                                              true,
		`INSERT INTO sessions (id) VALUES (?)`:                                           true,
		`WITH x AS (SELECT 1) UPDATE sessions SET status = 'x'`:                          true,
	} {
		if got := writesSessions(q); got != want {
			t.Errorf("writesSessions(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestWAIDLookupUsesIndex: finding a message by WhatsApp id is an index
// search, never a walk over the session's messages (which is what SQLite's
// planner chose when the query sorted by id).
func TestWAIDLookupUsesIndex(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "plan.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT id, body FROM messages WHERE session_id = ? AND wa_id = ?`,
		`SELECT id, body FROM messages WHERE session_id = ? AND wa_id = ? AND direction = ?`,
	} {
		rows, err := db.read.Query(`EXPLAIN QUERY PLAN `+q, "s", "w", "in")
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if !strings.Contains(joined, "USING INDEX messages_wa_id (session_id=? AND wa_id=?") {
			t.Errorf("%s\nplan: %s", q, joined)
		}
	}
}

// A batch of background changes ends early (bgYield, before maxBatchWork)
// once a request's change waits: the request commits in the next batch, not
// after every background change of this one.
func TestBackgroundYieldsToWaitingRequest(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "yield.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sc := queueYieldScene(t, db, 10)
	sc.release()
	sc.wg.Wait()
	order := sc.order()
	if len(order) != 12 || order[0] != "gate" || order[1] != "bg0" || order[2] != "request" {
		t.Fatalf("order %v: the request waited for the background batch", order)
	}
}

// yieldScene is a request's change arriving while background work runs:
// behind a gate change that holds the writer, background changes bg0 …
// bg{n-1} wait; bg0, when it runs, queues the request's change and then
// runs past bgYield. release lets the gate end; order lists the changes as
// they ran.
type yieldScene struct {
	wg      sync.WaitGroup
	release func()
	mu      sync.Mutex
	ran     []string
}

func (sc *yieldScene) order() []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return slices.Clone(sc.ran)
}

func queueYieldScene(t *testing.T, db *DB, n int) *yieldScene {
	sc := &yieldScene{}
	ctx := context.Background()
	run := func(ctx context.Context, name string, fn func()) {
		sc.wg.Add(1)
		go func() {
			defer sc.wg.Done()
			if err := db.Update(ctx, func(*Tx) error {
				if fn != nil {
					fn()
				}
				sc.mu.Lock()
				sc.ran = append(sc.ran, name)
				sc.mu.Unlock()
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	release, started := make(chan struct{}), make(chan struct{})
	sc.release = func() { close(release) }
	run(ctx, "gate", func() { close(started); <-release })
	<-started
	lane := db.writer.lanes[0]
	var once sync.Once
	run(Background(ctx), "bg0", func() {
		once.Do(func() {
			begun := time.Now()
			run(ctx, "request", nil)
			for len(lane.ch) == 0 && time.Since(begun) < 5*time.Second {
				time.Sleep(50 * time.Microsecond)
			}
			// Past bgYield, well short of maxBatchWork.
			time.Sleep(bgYield + bgYield/2 - time.Since(begun))
		})
	})
	for i := 1; i <= n; i++ {
		for len(lane.bg) < i {
			time.Sleep(time.Millisecond)
		}
		if i < n {
			run(Background(ctx), fmt.Sprint("bg", i), nil)
		}
	}
	return sc
}

// Background work rides along in a batch that holds a request's change for
// bgRide at most, so the request's commit does not wait for all of it.
func TestBackgroundRidesBrieflyWithRequest(t *testing.T) {
	// The rule holds when no fsync is in flight (while one is, background
	// work delays no commit and runs on: TestRequestCutsInWhileSyncing).
	// Without a syncer none ever is, whatever the disk's speed.
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "ride.db"), Options{CrashSafeOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	release, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	run := func(ctx context.Context, fn func()) {
		defer wg.Done()
		if err := db.Update(ctx, func(*Tx) error {
			if fn != nil {
				fn()
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go run(ctx, func() { close(started); <-release })
	<-started
	l := db.writer.lanes[0]
	wg.Add(1)
	go run(ctx, nil) // the request
	for len(l.ch) == 0 {
		time.Sleep(time.Millisecond)
	}
	wg.Add(1)
	go run(Background(ctx), func() { time.Sleep(2 * bgRide) }) // rides along, then the ride is over
	for len(l.bg) == 0 {
		time.Sleep(time.Millisecond)
	}
	wg.Add(1)
	go run(Background(ctx), nil) // waits for the next batch
	for len(l.bg) < 2 {
		time.Sleep(time.Millisecond)
	}
	before := db.WriterStats()
	close(release)
	wg.Wait()
	// gate | request + first background | second background
	if b := db.WriterStats().Batches - before.Batches; b != 3 {
		t.Fatalf("%d batches after the gate's began, want 3: background work past bgRide went in the request's batch", b)
	}
}

// Deleting a session succeeds once its rows are gone, even when its sandbox
// mail (in a file of its own) cannot be dropped right after.
func TestDeleteSessionWhenMailCannotBeDropped(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, "", Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.OpenMailbox(ctx); err != nil {
		t.Fatal(err)
	}
	s := &wabsync.Session{ID: wabsync.NewID("ses"), Name: "a", Engine: wabsync.EngineSandbox, Status: wabsync.StatusConnected}
	if err := db.CreateSession(ctx, s, HashToken(NewSessionToken())); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModifySession(ctx, s.ID, func(_ *Tx, s *wabsync.Session) error { s.Phone = "+15550100003"; return nil }); err != nil {
		t.Fatal(err)
	}
	db.mail.Close() // every mailbox write now fails
	if err := db.DeleteSession(ctx, s.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := db.GetSession(ctx, s.ID); err == nil {
		t.Fatal("the session is still there")
	}
}

// A PostgreSQL batch writes what it deferred before a statement on the
// tables it defers to (refersTo), not before one that only names a column
// or another table with such a word in it.
func TestRefersTo(t *testing.T) {
	for _, c := range []struct {
		q     string
		table string
		want  bool
	}{
		{`SELECT body FROM messages WHERE id = ?`, "messages", true},
		{`select count(*) from events where session_id = ?`, "events", true},
		{`UPDATE messages SET status = ?`, "messages", true},
		{`INSERT INTO deliveries (id) VALUES (?)`, "deliveries", true},
		{`DELETE FROM contacts WHERE session_id = ?`, "contacts", true},
		{"SELECT m.id FROM sessions s\n\tJOIN messages m ON m.session_id = s.id", "messages", true},
		{`SELECT id, events FROM webhooks WHERE enabled = 1`, "events", false},
		{`INSERT INTO sandbox_mailbox (id) VALUES (?)`, "messages", false},
		{`SELECT * FROM messages_archive`, "messages", false},
		{`UPDATE sessions SET msg_seq = ?`, "messages", false},
		{`SELECT body FROM public.messages WHERE id = ?`, "messages", true},
		{`DELETE FROM "public"."events"`, "events", true},
		{`INSERT INTO "deliveries" (id) VALUES (?)`, "deliveries", true},
		{`SELECT messages FROM stats`, "messages", false},
	} {
		if got := refersTo(c.q, c.table); got != c.want {
			t.Errorf("refersTo(%q, %q) = %v, want %v", c.q, c.table, got, c.want)
		}
	}
}
