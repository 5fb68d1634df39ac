package testutil

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// PostgresOutage makes the PostgreSQL database name (on the server of base)
// unavailable for real: it refuses new connections and its open ones are
// terminated. The returned function (also run when the test ends) lets
// connections in again.
func PostgresOutage(tb testing.TB, base, name string) (end func()) {
	tb.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{
		`ALTER DATABASE ` + name + ` ALLOW_CONNECTIONS false`,
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + name + `' AND pid <> pg_backend_pid()`,
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			admin.Close()
			tb.Fatalf("postgres outage: %v", err)
		}
	}
	ended := false
	end = func() {
		if ended {
			return
		}
		ended = true
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS true`); err != nil {
			tb.Errorf("ending the postgres outage: %v", err)
		}
	}
	tb.Cleanup(end)
	return end
}
