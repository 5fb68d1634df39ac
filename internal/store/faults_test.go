package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

// TestSQLiteFullIsUnavailable: a database that cannot grow (SQLite's own
// max_page_count gives a real SQLITE_FULL) fails writes as UNAVAILABLE
// faults, Ping reports it, and once it may grow again the next write
// commits and Ping is content, without reopening anything.
func TestSQLiteFullIsUnavailable(t *testing.T) {
	db := testutil.MustOpenDB(t)
	if db.Dialect() != store.SQLite {
		t.Skip("SQLite's page limit")
	}
	ctx := context.Background()
	var pages int
	if err := db.SQL().QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// The writer's pool has one connection: the limit applies to it.
	if _, err := db.SQL().Exec(`PRAGMA max_page_count = ` + strconv.Itoa(pages+8)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 16<<10)
	put := func(i int) error {
		return db.Update(ctx, func(tx *store.Tx) error {
			return tx.PutIdempotent("full", "k"+strconv.Itoa(i), "h", 201, []byte(big))
		})
	}
	var err error
	i := 0
	for ; i < 100 && err == nil; i++ {
		err = put(i)
	}
	var fault *store.Fault
	if !errors.As(err, &fault) || !strings.Contains(fault.Kind, "SQLITE_FULL") || wabsync.ErrorCode(err) != wabsync.EUnavailable {
		t.Fatalf("a write to the full database: %v (code %s), want an UNAVAILABLE SQLITE_FULL fault", err, wabsync.ErrorCode(err))
	}
	if err := db.Ping(ctx); wabsync.ErrorCode(err) != wabsync.EUnavailable {
		t.Fatalf("Ping with writes failing: %v, want UNAVAILABLE", err)
	}

	if _, err := db.SQL().Exec(`PRAGMA max_page_count = 1000000`); err != nil {
		t.Fatal(err)
	}
	if err := put(i); err != nil {
		t.Fatalf("a write once the database may grow: %v", err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping once writes commit: %v", err)
	}
}

// TestPostgresOutageIsUnavailable: a PostgreSQL server that refuses connections
// (here the test database's, switched off) makes reads and writes
// UNAVAILABLE faults, not internal errors.
func TestPostgresOutageIsUnavailable(t *testing.T) {
	base := testutil.RequirePostgres(t)
	db := testutil.MustOpenDB(t)
	ctx := context.Background()
	end := testutil.PostgresOutage(t, base, currentDatabase(t, db))

	err := db.Update(ctx, func(tx *store.Tx) error {
		return tx.PutIdempotent("s", "k", "h", 201, []byte(`{}`))
	})
	var fault *store.Fault
	if !errors.As(err, &fault) || wabsync.ErrorCode(err) != wabsync.EUnavailable {
		t.Fatalf("a write during the outage: %v, want an UNAVAILABLE fault", err)
	}
	if _, err := db.GetIdempotent(ctx, "s", "k"); !errors.As(store.Classify(err), &fault) {
		t.Fatalf("a read during the outage: %v, want a fault", err)
	}
	if err := db.Ping(ctx); !errors.As(err, &fault) {
		t.Fatalf("Ping during the outage: %v, want a fault", err)
	}

	end()
	testutil.Eventually(t, 30*time.Second, func() bool {
		return db.Update(ctx, func(tx *store.Tx) error { return tx.PutIdempotent("s", "k", "h", 201, []byte(`{}`)) }) == nil
	}, "writes do not commit once the database is back")
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping once the database is back: %v", err)
	}
}

func currentDatabase(tb testing.TB, db *store.DB) string {
	tb.Helper()
	var name string
	if err := db.SQL().QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
		tb.Fatal(err)
	}
	return name
}

// TestClassifyFileErrors: an error of the file system is no storage fault
// (a 500, logged with its text), unless it says the disk is full; a refused
// network connection is one.
func TestClassifyFileErrors(t *testing.T) {
	_, openErr := os.Open(filepath.Join(t.TempDir(), "missing"))
	cases := []struct {
		name  string
		err   error
		fault bool
	}{
		{"FileNotFound", fmt.Errorf("media: %w", openErr), false},
		{"Permission", fmt.Errorf("media: %w", &os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}), false},
		{"TooManyFiles", fmt.Errorf("media: %w", &os.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}), false},
		{"DiskFull", fmt.Errorf("media: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{"Network", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f *store.Fault
			if got := errors.As(store.Classify(c.err), &f); got != c.fault {
				t.Fatalf("Classify(%v) is a fault: %v, want %v", c.err, got, c.fault)
			}
		})
	}
}
