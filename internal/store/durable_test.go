package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gatedSync stands in for fsync (Options.SyncLog): once armed, each call
// reports that it began and waits for the test's answer; before, it syncs.
type gatedSync struct {
	armed   atomic.Bool
	began   chan struct{}
	release chan error
}

func (g *gatedSync) sync(f *os.File) error {
	if !g.armed.Load() {
		return fdatasync(f)
	}
	g.began <- struct{}{}
	return <-g.release
}

func openGated(t *testing.T) (*DB, *gatedSync) {
	t.Helper()
	g := &gatedSync{began: make(chan struct{}, 16), release: make(chan error)}
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "gated.db"), Options{SyncLog: g.sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	t.Cleanup(func() { close(g.release) }) // later syncs pass
	return db, g
}

func bump(db *DB, name string, ran chan<- string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- db.Update(context.Background(), func(tx *Tx) error {
			if ran != nil {
				ran <- name
			}
			_, err := tx.Exec(`INSERT INTO counters (name, value) VALUES (?, 1)`, name)
			return err
		})
	}()
	return done
}

func pending(ch <-chan error) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// A change is reported committed only once an fsync that began after its
// commit has returned; a read that saw it waits as long.
func TestChangeToldOnceDurable(t *testing.T) {
	db, g := openGated(t)
	done := bump(db, "a", nil)
	<-g.began // committed; its fsync is in flight
	read := make(chan error, 1)
	go func() {
		var v int
		rows, err := db.query(context.Background(), `SELECT value FROM counters WHERE name = 'a'`)
		if err == nil {
			defer rows.Close()
			if !rows.Next() {
				err = errors.New("the read did not see the committed row")
			} else {
				err = rows.Scan(&v)
			}
		}
		read <- err
	}()
	time.Sleep(50 * time.Millisecond) // give a wrong implementation time to answer
	if !pending(done) {
		t.Fatal("the change was reported before its fsync returned")
	}
	if !pending(read) {
		t.Fatal("a read that saw the change answered before its fsync returned")
	}
	g.release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}

// While one commit's fsync is in flight, the changes that arrive run in
// the open transaction and commit together once it returns: one commit
// per fsync, not one per change.
func TestChangesRideTheSync(t *testing.T) {
	db, g := openGated(t)
	before := db.WriterStats()
	first := bump(db, "first", nil)
	<-g.began
	ran := make(chan string, 3)
	riders := []<-chan error{bump(db, "b", ran), bump(db, "c", ran), bump(db, "d", ran)}
	for range riders {
		<-ran // each ran in the transaction left open
	}
	if st := db.WriterStats(); st.Batches != before.Batches+1 {
		t.Fatalf("%d commits while the first fsync was in flight, want 1", st.Batches-before.Batches)
	}
	g.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-g.began // the riders' commit, one fsync
	for _, r := range riders {
		if !pending(r) {
			t.Fatal("a rider was reported before its own fsync")
		}
	}
	g.release <- nil
	for _, r := range riders {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	st := db.WriterStats()
	if st.Batches != before.Batches+2 || st.Changes != before.Changes+4 {
		t.Fatalf("%d changes in %d commits, want 4 in 2", st.Changes-before.Changes, st.Batches-before.Batches)
	}
}

// A failed fsync fails the changes it was to cover, and every later one:
// after a failed write-back nothing is known to be durable.
func TestFailedSyncFailsChanges(t *testing.T) {
	db, g := openGated(t)
	done := bump(db, "a", nil)
	<-g.began
	g.release <- errors.New("EIO")
	if err := <-done; !errors.Is(err, errNotDurable) {
		t.Fatalf("got %v, want errNotDurable", err)
	}
	if err := <-bump(db, "b", nil); !errors.Is(err, errNotDurable) {
		t.Fatalf("a later change: got %v, want errNotDurable", err)
	}
	if _, err := db.query(context.Background(), `SELECT 1`); !errors.Is(err, errNotDurable) {
		t.Fatalf("a read: got %v, want errNotDurable", err)
	}
	if err := db.Ping(context.Background()); !errors.Is(err, errNotDurable) {
		t.Fatalf("Ping (readiness): got %v, want errNotDurable", err)
	}
}

// The syncer syncs the log SQLite writes: the same file, also after the
// log was emptied by a checkpoint.
func TestSyncerSyncsTheLog(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "log.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if err := <-bump(db, "after-truncate", nil); err != nil {
		t.Fatal(err)
	}
	ours, err := db.syncs.file.Stat()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Stat(db.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(ours, log) || log.Size() == 0 {
		t.Fatalf("the syncer holds another file than the log (or the log is empty: %d bytes)", log.Size())
	}
}

// While an fsync is in flight, a request's change that arrives while
// background work runs goes before the rest of that work, in the same open
// transaction.
func TestRequestCutsInWhileSyncing(t *testing.T) {
	db, g := openGated(t)
	sc := queueYieldScene(t, db, 4)
	sc.release() // the gate commits; its fsync stays in flight
	<-g.began
	for len(sc.order()) < 6 {
		time.Sleep(time.Millisecond)
	}
	// Let every fsync through now (under load the changes may take more
	// than one commit).
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-g.began:
				g.release <- nil
			case <-done:
				return
			}
		}
	}()
	g.release <- nil // the gate's fsync
	sc.wg.Wait()
	close(done)
	want := []string{"gate", "bg0", "request", "bg1", "bg2", "bg3"}
	if order := sc.order(); fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v: the request waited for the background work", order, want)
	}
}

// A syncer that cannot open the log refuses to start, naming it; Open then
// fails with that error.
func TestSyncerWithoutItsLog(t *testing.T) {
	wal := filepath.Join(t.TempDir(), "no such directory", "x.db-wal")
	s, err := newSyncer(wal, nil, slog.New(slog.DiscardHandler))
	if err == nil {
		s.close()
		t.Fatal("a syncer started without its log")
	}
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "write-ahead log") {
		t.Fatalf("error %q: want the log's open error, saying what it was for", err)
	}
}
