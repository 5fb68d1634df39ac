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
// writer or readers) whenever the writer has committed since the last one,
// the last one failed or was partial, or writes fail (a full disk: see run).
type checkpointer struct {
	conn    *sql.DB
	db      *DB
	stop    chan struct{}
	once    sync.Once
	done    sync.WaitGroup
	every   time.Duration
	lastRun uint64 // writer batches at the last checkpoint
	again   bool   // the last checkpoint failed or left frames behind
	failing bool   // the last checkpoint failed (logged once)
	// truncated is the write fault the log was last truncated for.
	truncated *writeFault
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
		// Again after a checkpoint that failed or left frames behind, and
		// while writes fail (a full disk): not only after new commits, which
		// a full disk may never let through.
		n := c.db.writer.batches.Load()
		fault := c.db.faults.recent()
		if n == c.lastRun && !c.again && fault == nil {
			continue
		}
		c.lastRun = n
		c.again = !c.checkpoint("PASSIVE")
		if !c.again && fault != nil && fault != c.truncated {
			// Give the log's space back to a disk that ran full (the log
			// keeps its largest size otherwise); once per failed write, as
			// TRUNCATE holds new writes back while readers finish.
			c.truncated = fault
			c.checkpoint("TRUNCATE")
		}
	}
}

// checkpoint runs one checkpoint of mode and reports whether it copied the
// whole log. A failure is logged by its driver code and counts as a write
// fault (Ping).
func (c *checkpointer) checkpoint(mode string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var busy, logPages, done int
	err := c.conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &logPages, &done)
	if err != nil {
		c.db.faults.note(err)
		if !c.failing { // once per run of failures, not every tick
			c.failing = true
			if kind := faultKind(err); kind != "" {
				c.db.logger.Warn("sqlite checkpoint failing; retrying", "mode", mode, "fault", kind)
			} else {
				c.db.logger.Warn("sqlite checkpoint failing; retrying", "mode", mode, "err", err)
			}
		}
		return false
	}
	if c.failing {
		c.failing = false
		c.db.logger.Info("sqlite checkpoint succeeds again", "mode", mode)
	}
	return busy == 0 && done >= logPages
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
