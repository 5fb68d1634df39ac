package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wabsync/wabsync"
)

// syncer makes SQLite's commits durable off the writer's path.
//
// With synchronous=FULL, SQLite fsyncs the write-ahead log inside COMMIT,
// and the single writer connection can do nothing else meanwhile: each
// batch's work waited for the previous batch's fsync. Here the writer
// commits with synchronous=NORMAL (the log is written, not synced) and goes
// on with the next batch while this goroutine fsyncs the log. A change's
// caller is told only once an fsync that began after its commit returned, so
// a change reported committed survives power loss exactly as with FULL
// (NORMAL already syncs the log before every checkpoint and when the log
// is reused; FULL adds only the sync at every commit, which this does).
// One fsync covers every commit before it, so a slow disk makes the fsyncs
// fewer, not the queue longer.
//
// Readers could see a commit before it is durable; what acts on what it
// read outside the process (the sender, API responses, event streams)
// waits for durability first (Durable), so nothing that a power loss takes
// back was ever shown or sent.
type syncer struct {
	committed atomic.Uint64 // commits made (the writer counts them)
	synced    atomic.Uint64 // commits known durable

	file   *os.File // the write-ahead log
	sync   func(*os.File) error
	times  histogram
	logger *slog.Logger

	mu      sync.Mutex
	waiters []syncWaiter
	failed  error // sticky: an fsync failed, so nothing after it is known durable
	kick    chan struct{}
	idle    chan struct{} // a signal after each fsync (the writer's ride)
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once
}

type syncWaiter struct {
	seq  uint64
	tell func(error)
}

// errNotDurable is what changes (and reads, which wait for durability) are
// told once the log could not be synced. It is an UNAVAILABLE error (503):
// nothing the client did causes it, and this server stores nothing more
// until it is restarted; the cause is logged once, by the syncer.
var errNotDurable = &wabsync.Error{Code: wabsync.EUnavailable,
	Message: "The server cannot store changes safely: its database log failed to sync to disk. Its operator must check the disk and restart it."}

// newSyncer syncs the log at walPath with sync (nil: fdatasync).
func newSyncer(walPath string, sync func(*os.File) error, logger *slog.Logger) (*syncer, error) {
	if sync == nil {
		sync = fdatasync
	}
	// SQLite creates the log when it first writes; an empty one is a log
	// with no frames to it.
	f, err := os.OpenFile(walPath, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the write-ahead log for syncing: %w", err)
	}
	s := &syncer{file: f, sync: sync, logger: logger,
		kick: make(chan struct{}, 1), idle: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s, nil
}

// committedNow records one more commit and returns its number.
func (s *syncer) committedNow() uint64 {
	n := s.committed.Add(1)
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return n
}

// busy reports whether a commit waits for an fsync.
func (s *syncer) busy() bool { return s.synced.Load() < s.committed.Load() }

// after calls tell once commit seq is durable (or could not be made so).
func (s *syncer) after(seq uint64, tell func(error)) {
	s.mu.Lock()
	if s.failed == nil && s.synced.Load() < seq {
		s.waiters = append(s.waiters, syncWaiter{seq: seq, tell: tell})
		s.mu.Unlock()
		return
	}
	err := s.failed
	s.mu.Unlock()
	tell(err)
}

// failure returns errNotDurable once an fsync failed, else nil.
func (s *syncer) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// wait returns once every commit made so far is durable.
func (s *syncer) wait(ctx context.Context) error {
	seq := s.committed.Load()
	if s.synced.Load() >= seq {
		return nil
	}
	ch := make(chan error, 1)
	s.after(seq, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *syncer) run() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.round() // what was committed before close
			return
		}
		s.round()
	}
}

// round syncs once if anything was committed since the last sync, and tells
// the waiters it covers.
func (s *syncer) round() {
	target := s.committed.Load()
	if s.synced.Load() >= target {
		return
	}
	start := time.Now()
	err := s.sync(s.file)
	s.times.observe(time.Since(start))
	s.mu.Lock()
	if err != nil && s.failed == nil {
		// Linux may report a failed write-back once and then forget it, so a
		// later fsync's success proves nothing about this one's data.
		s.failed = errNotDurable
		s.logger.Error("sqlite: the write-ahead log failed to sync; no change is reported committed from now on", "err", err)
	}
	if s.failed == nil {
		s.synced.Store(target)
	}
	var tell []syncWaiter
	keep := s.waiters[:0]
	for _, w := range s.waiters {
		if s.failed != nil || w.seq <= target {
			tell = append(tell, w)
		} else {
			keep = append(keep, w)
		}
	}
	s.waiters = keep
	failed := s.failed
	s.mu.Unlock()
	for _, w := range tell {
		w.tell(failed)
	}
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

// close syncs what was committed and stops (more calls do nothing); call
// it once no more commits come.
func (s *syncer) close() {
	s.closing.Do(func() {
		close(s.stop)
		<-s.done
		s.file.Close()
	})
}

// fdatasync syncs f's data, and its metadata only where reading the data
// needs it (its size): what SQLite itself does for its log on Linux. A
// log reused after a checkpoint keeps its size, so no journal commit of
// the file system rides along with each sync.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// Durable returns once every change committed so far is durable (on SQLite
// they may be visible to readers a moment before; see syncer). Whatever is
// read before calling it is then safe to act on outside the process.
func (db *DB) Durable(ctx context.Context) error {
	if db.syncs == nil {
		return nil
	}
	return db.syncs.wait(ctx)
}
