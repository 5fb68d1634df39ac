package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// checkpointer copies SQLite's write-ahead log back into the database file
// from a connection of its own, so that the writer never does it: by default
// SQLite checkpoints inside the commit that crosses 1,000 log pages, a few
// milliseconds of page writes and an fsync of the database file on the
// single, serial write path. Here the writer's automatic checkpoint is only
// a backstop (at checkpointBackstop pages, if this goroutine fell behind),
// and this goroutine runs a PASSIVE checkpoint (which never blocks the
// writer or readers) whenever the writer has committed since the last one.
type checkpointer struct {
	conn    *sql.DB
	db      *DB
	stop    chan struct{}
	once    sync.Once
	done    sync.WaitGroup
	every   time.Duration
	lastRun uint64 // writer batches at the last checkpoint
}

// checkpointBackstop is the writer's own automatic checkpoint, in pages.
const checkpointBackstop = 10000

func startCheckpointer(db *DB, dsn string) (*checkpointer, error) {
	c, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	c.SetConnMaxLifetime(0)
	c.SetConnMaxIdleTime(0)
	cp := &checkpointer{conn: c, db: db, stop: make(chan struct{}), every: 100 * time.Millisecond}
	cp.done.Add(1)
	go cp.run()
	return cp, nil
}

func (c *checkpointer) run() {
	defer c.done.Done()
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		n := c.db.writer.batches.Load()
		if n == c.lastRun {
			continue
		}
		c.lastRun = n
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var busy, logPages, done int
		if err := c.conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &done); err != nil {
			c.db.logger.Warn("sqlite checkpoint", "err", err)
		}
		cancel()
	}
}

// close stops the checkpointer (more calls do nothing); a last checkpoint
// is left to SQLite's close of the writer connection.
func (c *checkpointer) close() {
	c.once.Do(func() {
		close(c.stop)
		c.done.Wait()
		c.conn.Close()
	})
}
