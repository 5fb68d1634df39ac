package store

import (
	"database/sql"
	"fmt"
)

// Pool returns a connection pool on the same database for a library that
// keeps its own tables there (whatsmeow's device store), and the dialect name
// such libraries use ("sqlite3" or "postgres"). On SQLite it is a pool of its
// own, so that the library's writes do not queue behind WabSync's batches;
// the caller closes it. On PostgreSQL it is the shared pool (do not close).
func (db *DB) Pool() (pool *sql.DB, dialect string, own bool, err error) {
	if db.dialect == Postgres {
		return db.write, "postgres", false, nil
	}
	path, err := sqlitePath(db.url, db.dataDir)
	if err != nil {
		return nil, "", false, err
	}
	p, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, "", false, fmt.Errorf("open sqlite pool: %w", err)
	}
	p.SetMaxOpenConns(4)
	return p, "sqlite3", true, nil
}
