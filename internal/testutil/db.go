// Package testutil has the helpers every test shares: a fresh database (SQLite
// by default, PostgreSQL when WABSYNC_TEST_DATABASE_URL is set), Redis, and
// waiting for a condition without fixed sleeps.
package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// PostgresURL returns WABSYNC_TEST_DATABASE_URL, or "" when unset.
func PostgresURL() string { return os.Getenv("WABSYNC_TEST_DATABASE_URL") }

// RedisURL returns WABSYNC_TEST_REDIS_URL, or "" when unset.
func RedisURL() string { return os.Getenv("WABSYNC_TEST_REDIS_URL") }

// RequirePostgres skips the test when no PostgreSQL is configured.
func RequirePostgres(tb testing.TB) string {
	tb.Helper()
	u := PostgresURL()
	if u == "" {
		tb.Skip("WABSYNC_TEST_DATABASE_URL not set: skipping a PostgreSQL-only test")
	}
	return u
}

// RequireRedis skips the test when no Redis is configured.
func RequireRedis(tb testing.TB) string {
	tb.Helper()
	u := RedisURL()
	if u == "" {
		tb.Skip("WABSYNC_TEST_REDIS_URL not set: skipping a Redis test")
	}
	return u
}

// DatabaseURL returns the URL of a new, empty database for one test: a file
// in a temporary directory, or, when WABSYNC_TEST_DATABASE_URL is set, a new
// PostgreSQL database that is dropped when the test ends.
func DatabaseURL(tb testing.TB) string {
	tb.Helper()
	base := PostgresURL()
	if base == "" {
		return "sqlite://" + filepath.Join(tb.TempDir(), "wabsync.db")
	}
	return NewPostgresDatabase(tb, base)
}

// NewPostgresDatabase creates a database on the server of base and returns its URL.
func NewPostgresDatabase(tb testing.TB, base string) string {
	tb.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	defer admin.Close()
	name := "wabsync_t_" + strings.ToLower(wabsync.RandomBase62(12))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = a.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse WABSYNC_TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// MustOpenDB opens and migrates a new database for the test and closes it
// when the test ends.
func MustOpenDB(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), DatabaseURL(tb), store.Options{})
	if err != nil {
		tb.Fatalf("open database: %v", err)
	}
	if _, err := db.Migrate(context.Background()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Eventually calls cond until it returns true or timeout passes, then fails
// the test with msg. It polls; it asserts no timing.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %s", timeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
