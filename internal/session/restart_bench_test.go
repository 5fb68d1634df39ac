package session_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/engine/sandbox"
	"github.com/wabsync/wabsync/internal/session"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// BenchmarkRestart measures handing back and resuming linked sandbox
// sessions in-process (issue 3 without HTTP): each iteration starts a
// manager on the same database, waits until every session is connected,
// then closes the manager. WABSYNC_BENCH_SESSIONS sets how many (default
// 10,000). Profile with -cpuprofile.
//
//	go test -run '^$' -bench Restart -benchtime 2x ./internal/session/
func BenchmarkRestart(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("WABSYNC_BENCH_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	url := testutil.DatabaseURL(b)
	ctx := context.Background()
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	// Counting through a handle of its own keeps the polls off the writer.
	counter, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer counter.Close()
	seedLinked(b, db, n)
	count := func() int {
		var c int
		if err := counter.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE status = 'connected'`).Scan(&c); err != nil {
			b.Fatal(err)
		}
		return c
	}
	nw := sandbox.NewNetwork(db, sandbox.Options{})
	var resume, closing time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := session.NewManager(session.Options{DB: db, Factories: map[string]wabsync.EngineFactory{wabsync.EngineSandbox: nw},
			NodeID: "bench-node", SingleNode: db.Dialect() == store.SQLite})
		t0 := time.Now()
		if err := m.Resume(ctx); err != nil {
			b.Fatal(err)
		}
		for count() < n {
			time.Sleep(20 * time.Millisecond)
		}
		resume += time.Since(t0)
		t1 := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		m.Close(cctx)
		cancel()
		closing += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(resume.Seconds()/float64(b.N), "resume-s/op")
	b.ReportMetric(closing.Seconds()/float64(b.N), "close-s/op")
}

// seedSession stores a session linked to phone that wants to run.
func seedSession(db *store.DB, id, engine, phone string) error {
	ctx := context.Background()
	s := &wabsync.Session{ID: id, Name: id, Engine: engine, Status: wabsync.StatusStopped, StatusReason: "Seeded."}
	if err := db.CreateSession(ctx, s, store.HashToken(store.NewSessionToken())); err != nil {
		return err
	}
	return db.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(`UPDATE sessions SET phone = ?, device_jid = ?, desired = 1 WHERE id = ?`, phone, sandbox.JID(phone), id)
		return err
	})
}

// seedLinked stores n linked sandbox sessions that want to run, as a server
// leaves them when it stops (64 writers at a time: group commit).
func seedLinked(tb testing.TB, db *store.DB, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				if err := seedSession(db, wabsync.NewID("ses"), wabsync.EngineSandbox, fmt.Sprintf("+1999%07d", i)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
}
