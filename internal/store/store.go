// Package store keeps WabSync's state in SQLite or PostgreSQL. The same SQL
// serves both; the differences (placeholders, locking clauses, connection
// setup) live in dialect.go. Every change is one transaction, committed by a
// group-commit writer (writer.go) that puts whatever is pending into one
// transaction, so that a burst of requests costs one fsync, not one each.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wabsync/wabsync"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// DB is an open WabSync database.
type DB struct {
	dialect string
	url     string
	dataDir string
	write   *sql.DB // SQLite: one connection; PostgreSQL: the pool
	read    *sql.DB // SQLite: read-only connections; PostgreSQL: the same pool
	writer  *writer
	logger  *slog.Logger

	// Prepared statements of the read pool (SQLite only; nil on
	// PostgreSQL). Writes are not prepared: the single writer connection is
	// busy inside its transactions, where a statement prepared on the pool
	// would wait for it.
	readStmts *stmtCache
	// sessions caches session rows for CachedSession (SQLite only).
	sessions *sessionCache
	// hooks caches the enabled webhooks for the writer (SQLite only).
	hooks *hookCache
	// seqs keeps sequence counters for the writer (SQLite only).
	seqs *seqCache
	// checkpoints runs SQLite's WAL checkpoints off the write path.
	checkpoints *checkpointer
	// syncs makes SQLite's commits durable off the write path (nil on
	// PostgreSQL).
	syncs *syncer
	// path is the SQLite file ("" on PostgreSQL).
	path string
	// mail, when set, keeps the sandbox network's mail (OpenMailbox).
	mail *DB
	// leasesElsewhere: this is the mail database; writes fenced by a lease
	// are checked in the main one (a single SQLite node holds every lease).
	leasesElsewhere bool
	// faults remembers the last write transaction's fault (Ping).
	faults faults

	// Now is the clock; tests replace it.
	Now func() time.Time
	// OnEvent is called after commit for every event stored (SSE streams).
	// It must not block.
	OnEvent func(*wabsync.Event)
	// OnDeliveries is called after commit, once per change, when the change
	// queued webhook deliveries or made some due again (the dispatcher's
	// wake-up; an event for no webhook wakes nothing). It must not block.
	OnDeliveries func()
	// OnMessageQueued is called after commit when a session has new queued
	// messages. It must not block.
	OnMessageQueued func(sessionID string)
	// Decorate fills what messages show in events but the store does not
	// keep (signed media links).
	Decorate MessageDecorator
}

// Options tune Open.
type Options struct {
	Logger *slog.Logger
	// DataDir is where the default SQLite file lives when url is empty.
	DataDir string
	// CrashSafeOnly (SQLite): a commit survives the process's crash but
	// not a power loss — the log is synced at checkpoints only, not at
	// each commit. For the sandbox network's mail, which stands for
	// WhatsApp's servers, never for the gateway's own data.
	CrashSafeOnly bool
	// SyncLog replaces the fdatasync of SQLite's write-ahead log (nil:
	// fdatasync). For tests that need a disk that fails.
	SyncLog func(*os.File) error
}

// Open opens the database named by url: "sqlite:///path/to/file.db",
// "sqlite://relative.db", a bare file path, or "postgres://…". It does not
// migrate; call Migrate.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{url: rawURL, dataDir: opts.DataDir, logger: logger, Now: func() time.Time { return time.Now().UTC() }}
	var checkpointDSN string
	switch {
	case rawURL == "" || strings.HasPrefix(rawURL, "sqlite:") || strings.HasPrefix(rawURL, "file:") || !strings.Contains(rawURL, "://"):
		path, err := sqlitePath(rawURL, opts.DataDir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
		if err := createPrivate(path); err != nil {
			return nil, err
		}
		db.dialect = SQLite
		pragmas := "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)"
		// The writer commits without the fsync, which the syncer does (see
		// syncer): durable as with FULL by the time anyone is told.
		wpragmas := strings.Replace(pragmas, "synchronous(FULL)", "synchronous(NORMAL)", 1)
		w, err := sql.Open("sqlite", "file:"+path+"?"+wpragmas+"&_txlock=immediate"+fmt.Sprintf("&_pragma=wal_autocheckpoint(%d)", checkpointBackstop))
		if err != nil {
			return nil, err
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		// Create the file and switch it to WAL before readers open it.
		if err := w.PingContext(ctx); err != nil {
			w.Close()
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
		// The writer's connection stays open, so the log file is never
		// deleted and recreated under the syncer.
		if !opts.CrashSafeOnly {
			syncs, err := newSyncer(path+"-wal", opts.SyncLog, logger)
			if err != nil {
				w.Close()
				return nil, err
			}
			db.syncs = syncs
		}
		r, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
		if err != nil {
			w.Close()
			return nil, err
		}
		r.SetMaxOpenConns(8)
		r.SetMaxIdleConns(8)
		r.SetConnMaxIdleTime(0)
		r.SetConnMaxLifetime(0)
		db.write, db.read = w, r
		db.readStmts = &stmtCache{pool: r}
		db.sessions = &sessionCache{}
		db.hooks = &hookCache{}
		db.seqs = &seqCache{m: map[string]*seqs{}}
		checkpointDSN = "file:" + path + "?" + pragmas
		db.path = path
	case strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://"):
		db.dialect = Postgres
		p, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		p.SetMaxOpenConns(32)
		p.SetMaxIdleConns(32)
		p.SetConnMaxIdleTime(5 * time.Minute)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := p.PingContext(pctx); err != nil {
			p.Close()
			return nil, fmt.Errorf("connect to postgres: %w", redactErr(err))
		}
		db.write, db.read = p, p
		db.sessions = &sessionCache{ttl: pgSessionTTL}
	default:
		return nil, fmt.Errorf("unsupported database URL scheme (want sqlite:// or postgres://)")
	}
	db.writer = newWriter(db)
	if checkpointDSN != "" {
		cp, err := startCheckpointer(db, checkpointDSN)
		if err != nil {
			db.Close()
			return nil, err
		}
		db.checkpoints = cp
	}
	return db, nil
}

// createPrivate creates the SQLite file at path readable by its owner only
// (0600), or narrows an existing one and its -wal and -shm to that: the file
// holds token hashes, the media link key and WhatsApp's device keys. SQLite
// gives the -wal and -shm it creates the mode of the database file.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create the database file: %w", err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict the database file's mode: %w", err)
		}
	}
	return nil
}

func sqlitePath(rawURL, dataDir string) (string, error) {
	if rawURL == "" {
		if dataDir == "" {
			dataDir = "data"
		}
		return filepath.Join(dataDir, "wabsync.db"), nil
	}
	p := rawURL
	for _, pre := range []string{"sqlite://", "sqlite:", "file:"} {
		if strings.HasPrefix(p, pre) {
			p = strings.TrimPrefix(p, pre)
			break
		}
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	if p == "" {
		return "", errors.New("sqlite URL has no path")
	}
	return p, nil
}

// redactErr drops anything after the first line of a connection error: pgx
// errors can quote the connection string.
func redactErr(err error) error {
	s := err.Error()
	if i := strings.Index(s, "password"); i >= 0 {
		s = s[:i] + "…"
	}
	return errors.New(s)
}

// Dialect returns SQLite or Postgres.
func (db *DB) Dialect() string { return db.dialect }

// SQL returns the underlying pool for writes (and for libraries that keep
// their own tables in the same database, like whatsmeow's store).
func (db *DB) SQL() *sql.DB { return db.write }

// errWritesFailing is Ping's answer while writes fail with a fault.
var errWritesFailing = &wabsync.Error{Code: wabsync.EUnavailable,
	Message: "The database answers but fails to store changes (a full or failing disk, or the database's own limits)."}

// Ping checks that the database answers, that no write failed with a fault
// lately (faultMemory; a disk full or failing, which a read does not see)
// and, on SQLite, that its log has not failed to sync (after which it
// stores nothing: see syncer). Its errors are UNAVAILABLE: a *Fault when
// the database does not answer, a *wabsync.Error when it answers but does
// not store.
func (db *DB) Ping(ctx context.Context) error {
	if db.syncs != nil {
		if err := db.syncs.failure(); err != nil {
			return err // reachable, but it cannot store anything any more
		}
	}
	var one int
	if err := db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		if faultKind(err) == "" {
			return &Fault{Kind: "unreachable", err: err} // whatever it is, the database does not answer
		}
		return Classify(err)
	}
	if f := db.faults.recent(); f != nil {
		return errWritesFailing // reachable, but its last write failed
	}
	return nil
}

// Close stops the writer and closes the connections.
func (db *DB) Close() error {
	if db.mail != nil {
		db.mail.Close()
	}
	db.writer.close()
	if db.syncs != nil {
		db.syncs.close()
	}
	if db.checkpoints != nil {
		db.checkpoints.close()
	}
	if db.readStmts != nil {
		db.readStmts.close()
	}
	var err error
	if db.read != db.write {
		err = db.read.Close()
	}
	if e := db.write.Close(); e != nil {
		err = e
	}
	return err
}

// Stats returns the write pool's statistics (for metrics).
func (db *DB) Stats() sql.DBStats { return db.write.Stats() }

// micros converts a time to the stored form: microseconds since the epoch.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts back to UTC time.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
