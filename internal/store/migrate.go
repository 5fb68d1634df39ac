package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrSchemaTooNew is returned when the database was migrated by a newer
// WabSync than this binary.
var ErrSchemaTooNew = fmt.Errorf("store: the database schema is newer than this binary knows; upgrade wabsync")

func (db *DB) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	opts = append(opts, goose.WithTableName("wabsync_schema_version"), goose.WithDisableGlobalRegistry(true))
	if db.dialect == Postgres {
		dialect = goose.DialectPostgres
		// Several nodes may start at once: one migrates, the others wait.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, db.write, sub, opts...)
}

// SchemaVersion returns the database's schema version and the newest this
// binary knows.
func (db *DB) SchemaVersion(ctx context.Context) (current, known int64, err error) {
	p, err := db.provider()
	if err != nil {
		return 0, 0, err
	}
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, err
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		known = srcs[len(srcs)-1].Version
	}
	return current, known, nil
}

// Migrate brings the schema up to date. It refuses a database whose schema
// is newer than this binary's migrations.
func (db *DB) Migrate(ctx context.Context) (applied int, err error) {
	current, known, err := db.SchemaVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if current > known {
		return 0, fmt.Errorf("%w (database at %d, binary knows %d)", ErrSchemaTooNew, current, known)
	}
	p, err := db.provider()
	if err != nil {
		return 0, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if db.syncs != nil {
		// The migrations committed outside the writer (unsynced, see
		// syncer): one sync makes them durable.
		db.syncs.committedNow()
		if err := db.Durable(ctx); err != nil {
			return 0, err
		}
	}
	return len(res), nil
}
