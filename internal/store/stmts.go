package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps prepared statements by query text. On SQLite, parsing the
// SQL is a large part of a short query's cost (measured: about a third of a
// session read), so the hot queries are prepared once per connection and
// reused. PostgreSQL's driver (pgx) caches prepared statements itself.
type stmtCache struct {
	mu   sync.RWMutex
	pool *sql.DB
	m    map[string]*sql.Stmt
}

// maxCachedStmts bounds the cache: queries built with a variable number of
// arguments (IN lists) could otherwise fill it.
const maxCachedStmts = 1000

func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.RLock()
	st := c.m[q]
	c.mu.RUnlock()
	if st != nil {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st = c.m[q]; st != nil {
		return st
	}
	if len(c.m) >= maxCachedStmts {
		return nil
	}
	st, err := c.pool.PrepareContext(ctx, q)
	if err != nil {
		return nil // let the plain call report the error
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

// queryRow runs a read that returns one row (? placeholders).
//
// Reads wait until what they saw is durable (see syncer). A row's wait
// cannot fail the read: it fails when the request ended or the disk failed
// to sync, which every write reports.
func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	var row *sql.Row
	if db.readStmts != nil {
		if st := db.readStmts.get(ctx, q); st != nil {
			row = st.QueryRowContext(ctx, args...)
		}
	}
	if row == nil {
		row = db.read.QueryRowContext(ctx, db.rebind(q), args...)
	}
	_ = db.Durable(ctx)
	return row
}

// query runs a read (? placeholders).
func (db *DB) query(ctx context.Context, q string, args ...any) (rows *sql.Rows, err error) {
	var st *sql.Stmt
	if db.readStmts != nil {
		st = db.readStmts.get(ctx, q)
	}
	if st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = db.read.QueryContext(ctx, db.rebind(q), args...)
	}
	// What the query saw was fixed at its first step: it is acted on once
	// durable (see syncer).
	if err == nil {
		if err = db.Durable(ctx); err != nil {
			rows.Close()
			return nil, err
		}
	}
	return rows, err
}
