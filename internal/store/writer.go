package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("store: database closed")

// maxBatch bounds how many changes share one transaction.
const maxBatch = 512

// Tx is one change inside a (possibly shared) transaction. A change's
// statements commit or roll back together, and its AfterCommit callbacks run
// only once the transaction is durable.
type Tx struct {
	db    *DB
	tx    *sql.Tx
	ctx   context.Context
	after []func()
	// notified remembers the sessions whose event notification was sent.
	notified map[string]bool
	// sessionsChanged is set when a statement changed the sessions table:
	// the session cache is emptied when the transaction commits.
	sessionsChanged bool
	// hooks is the batch's webhook cache (PostgreSQL; see hookCache).
	hooks *hookCache
	// deliveriesDue is set once the change queued deliveries (dueDeliveries).
	deliveriesDue bool
	// stmts are the writer's prepared statements (SQLite; nil otherwise).
	stmts *writeStmts
	// seqs holds sequence counters: the writer's (SQLite), the batch's
	// (PostgreSQL), or nil (each counter bumped by its own statement).
	seqs *seqCache
	// notes collects the batch's notifications (PostgreSQL), sent once
	// each just before it commits.
	notes *notes
	// deferred collects the batch's writes that need no answer
	// (PostgreSQL), made in one statement before it commits (deferredRows).
	deferred *deferredRows
	// err is a failure of the store's own bookkeeping between statements;
	// the transaction does not commit with it.
	err error
}

// Exec runs a statement written with ? placeholders.
func (t *Tx) Exec(q string, args ...any) (sql.Result, error) {
	if st := t.prepared(q); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, t.db.rebind(q), args...)
}

// QueryRow runs a query that returns at most one row.
func (t *Tx) QueryRow(q string, args ...any) *sql.Row {
	if st := t.prepared(q); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, t.db.rebind(q), args...)
}

// Query runs a query.
func (t *Tx) Query(q string, args ...any) (*sql.Rows, error) {
	if st := t.prepared(q); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, t.db.rebind(q), args...)
}

// prepared notes what q changes and returns q's prepared statement bound to
// the transaction, or nil to run q as text (PostgreSQL, whose driver caches
// statements itself; or a statement not prepared yet).
func (t *Tx) prepared(q string) *sql.Stmt {
	t.flushBefore(q)
	var st *sql.Stmt
	var kind stmtKind
	if t.stmts != nil {
		st, kind = t.stmts.lookup(q)
	} else if t.db.sessions != nil || t.seqs != nil {
		kind = classify(q)
	}
	if kind&writesSessionRows != 0 && !t.sessionsChanged {
		t.sessionsChanged = true
		// Other nodes' session caches (sessionCache).
		if err := t.Notify(ChanSessions, ""); err != nil && t.err == nil {
			t.err = err
		}
	}
	if kind&writesWebhookRows != 0 {
		for _, h := range []*hookCache{t.db.hooks, t.hooks} {
			if h != nil {
				h.valid = false
			}
		}
	}
	if c := t.seqs; c != nil && len(c.m) > 0 && kind&usesSeqColumns != 0 {
		// Other code uses the counters: give it the current ones.
		if err := c.writeBack(t.ctx, t.db, t.tx, t.stmts); err != nil && t.err == nil {
			t.err = err
		}
		c.forget()
	}
	if st == nil {
		return nil
	}
	return t.tx.StmtContext(t.ctx, st)
}

// stmtKind says what a statement touches that the writer's caches hold.
type stmtKind uint8

const (
	writesSessionRows stmtKind = 1 << iota // see writesSessions
	writesWebhookRows                      // see writesWebhooks
	usesSeqColumns                         // see touchesSeqs
)

func classify(q string) stmtKind {
	var k stmtKind
	if writesSessions(q) {
		k |= writesSessionRows
	}
	if writesWebhooks(q) {
		k |= writesWebhookRows
	}
	if touchesSeqs(q) {
		k |= usesSeqColumns
	}
	return k
}

// writeStmts are the writer connection's prepared statements (SQLite, where
// parsing the SQL text was a third of the serial writer's time), with what
// each touches, so that a statement's text is looked at once. A statement
// cannot be prepared while the writer's only connection is inside a
// transaction, so one met for the first time runs as text and is prepared by
// the writer between transactions.
type writeStmts struct {
	pool *sql.DB
	m    map[string]cachedStmt
	want map[string]bool
}

type cachedStmt struct {
	st   *sql.Stmt // nil: could not be prepared
	kind stmtKind
}

func (c *writeStmts) lookup(q string) (*sql.Stmt, stmtKind) {
	if e, ok := c.m[q]; ok {
		return e.st, e.kind
	}
	if c.want == nil {
		c.want = map[string]bool{}
	}
	c.want[q] = true
	return nil, classify(q)
}

// prepare prepares the statements met since the last call. Only the writer
// goroutine calls it, outside any transaction.
func (c *writeStmts) prepare() {
	for q := range c.want {
		delete(c.want, q)
		if len(c.m) >= maxCachedStmts {
			continue // full: runs as text (the map must not grow with every new text)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.pool.PrepareContext(ctx, q)
		cancel()
		if err != nil {
			st = nil // run as text from now on: that reports the error
		}
		c.m[q] = cachedStmt{st: st, kind: classify(q)}
	}
}

func (c *writeStmts) close() {
	for _, e := range c.m {
		if e.st != nil {
			e.st.Close()
		}
	}
	c.m = map[string]cachedStmt{}
}

// rolledBack forgets what was cached from inside a transaction that did not
// commit.
func (db *DB) rolledBack() {
	if db.hooks != nil {
		db.hooks.valid = false
	}
	if db.seqs != nil {
		db.seqs.forget()
	}
}

// committed runs what must happen as soon as the transactions of txs are
// durable, before any caller is told.
func (db *DB) committed(txs ...*Tx) {
	if db.seqs != nil {
		db.seqs.committed()
	}
	if db.sessions == nil {
		return
	}
	for _, t := range txs {
		if t.sessionsChanged {
			db.sessions.invalidate()
			return
		}
	}
}

// dueDeliveries records that the change queued webhook deliveries (or made
// some due again): the OnDeliveries hook runs once after commit.
func (t *Tx) dueDeliveries() {
	if t.deliveriesDue {
		return
	}
	t.deliveriesDue = true
	if hook := t.db.OnDeliveries; hook != nil {
		t.AfterCommit(hook)
	}
}

// AfterCommit registers f to run after the transaction commits.
func (t *Tx) AfterCommit(f func()) { t.after = append(t.after, f) }

// DB returns the database the transaction belongs to.
func (t *Tx) DB() *DB { return t.db }

type job struct {
	queued  time.Time // when Update queued it
	ctx     context.Context
	fn      func(*Tx) error
	skipped error // set when the job was left out of its batch
	bg      bool  // background work (see Background)
	waited  bool  // its wait was observed (a batch that failed runs it again)
	carried int   // batches it did not fit in
	done    chan error
	after   []func()
}

// writer runs changes in group-committed transactions: each writer goroutine
// takes every change that is pending, runs them in one transaction and
// commits once. It never waits for a batch to fill. When one change fails the
// batch is rolled back and its changes are run again one transaction each,
// so a failing change never takes others down with it.
type writer struct {
	// batches and changes count committed transactions and the changes in
	// them (their ratio is the group-commit batch size).
	batches, changes atomic.Uint64
	// wait and commitTime are timing histograms (WriterTimings).
	wait, commitTime histogram

	db      *DB
	stmts   *writeStmts // SQLite only; used by the writer goroutine alone
	lanes   []lane      // one writer goroutine each
	mu      sync.RWMutex
	closed  bool
	wg      sync.WaitGroup
	timeout time.Duration
}

// lane is the queue of one writer goroutine.
type lane struct {
	ch chan *job // foreground changes
	bg chan *job // background changes
}

// pgLanes is how many transactions run at once on PostgreSQL, where a
// batch's time goes mostly to round trips, not to the database's work.
const pgLanes = 4

func newWriter(db *DB) *writer {
	w := &writer{db: db, timeout: 30 * time.Second}
	n := 1
	if db.dialect == SQLite {
		// One writer connection.
		w.stmts = &writeStmts{pool: db.write, m: map[string]cachedStmt{}}
	} else {
		// Changes are routed by session (laneOf): a session's changes stay
		// in order in one lane, and two lanes' batches do not lock the same
		// sessions' counter rows in different orders. Unrouted parallel
		// batches deadlocked on exactly that (measured in session 1: 79
		// deadlocks, each a second lost and the batch re-run one change at
		// a time).
		n = pgLanes
	}
	for range n {
		l := lane{ch: make(chan *job, 4096), bg: make(chan *job, 4096)}
		w.lanes = append(w.lanes, l)
		w.wg.Add(1)
		go w.run(l)
	}
	return w
}

type laneKey struct{}

// forSession routes ctx's changes to the lane of sessionID.
func forSession(ctx context.Context, sessionID string) context.Context {
	if len(sessionID) == 0 {
		return ctx
	}
	return context.WithValue(ctx, laneKey{}, sessionID)
}

// laneOf picks the lane of a change: by its session (forSession, or the
// session of its lease fence), else the first.
func (w *writer) laneOf(ctx context.Context) lane {
	if len(w.lanes) == 1 {
		return w.lanes[0]
	}
	id, _ := ctx.Value(laneKey{}).(string)
	if id == "" {
		if f, ok := ctx.Value(fenceKey{}).(fence); ok {
			id = f.session
		}
	}
	if id == "" {
		return w.lanes[0]
	}
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return w.lanes[h%uint32(len(w.lanes))]
}

func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, l := range w.lanes {
			close(l.ch)
			close(l.bg)
		}
	}
	w.mu.Unlock()
	w.wg.Wait()
	if w.stmts != nil {
		w.stmts.close()
	}
}

// Update runs fn as one change. It returns once the change is committed (or
// failed). fn may be called more than once (a batch that had to be retried);
// it must derive everything from the database and its arguments.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	j := &job{queued: time.Now(), ctx: ctx, fn: fn, done: make(chan error, 1)}
	w := db.writer
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	l := w.laneOf(ctx)
	ch := l.ch
	if ctx.Value(backgroundKey{}) != nil {
		j.bg, ch = true, l.bg
	}
	select {
	case ch <- j:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued, wait for the outcome even if ctx ends: the change may
	// commit, and the caller must not be told otherwise.
	err := <-j.done
	if err == nil {
		for _, f := range j.after {
			f()
		}
	}
	return Classify(err)
}

// Background marks ctx's changes as background work (sending, receiving,
// webhook bookkeeping): the writer puts every waiting foreground change —
// the ones a request waits for — in a batch before them, so that an API
// call never queues behind a backlog of background changes.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

type backgroundKey struct{}

func (w *writer) run(l lane) {
	defer w.wg.Done()
	in := &intake{fg: l.ch, bg: l.bg, batch: make([]*job, 0, maxBatch), timer: time.NewTimer(time.Hour)}
	in.timer.Stop()
	for {
		if len(in.batch) == 0 {
			if in.fg == nil && in.bg == nil {
				return
			}
			select {
			case j, ok := <-in.fg:
				in.take(j, ok, &in.fg)
			case j, ok := <-in.bg:
				in.take(j, ok, &in.bg)
			}
			if len(in.batch) == 0 {
				continue
			}
		}
		// Foreground first: what waits (carried over or new), then background.
		carried := len(in.batch)
	drainFG:
		for in.fg != nil && len(in.batch) < maxBatch {
			select {
			case j, ok := <-in.fg:
				in.take(j, ok, &in.fg)
			default:
				break drainFG
			}
		}
	drainBG:
		for in.bg != nil && len(in.batch) < maxBatch {
			select {
			case j, ok := <-in.bg:
				in.take(j, ok, &in.bg)
			default:
				break drainBG
			}
		}
		foregroundFirst(in.batch, carried)
		n := w.commit(in, l)
		// What did not fit in the transaction's time goes first in the next.
		in.batch = append(in.batch[:0], in.batch[n:]...)
		for _, j := range in.batch {
			j.carried++
		}
		if w.stmts != nil && len(w.stmts.want) > 0 {
			w.stmts.prepare()
		}
	}
}

// intake is a writer goroutine's side of its lane: the channels (nil once
// closed) and the changes taken from them and not yet handled.
type intake struct {
	fg, bg chan *job
	batch  []*job
	timer  *time.Timer // ride's
}

// take adds a job received from *ch (ok false: it was closed).
func (in *intake) take(j *job, ok bool, ch *chan *job) bool {
	if !ok {
		*ch = nil
		return false
	}
	in.batch = append(in.batch, j)
	return true
}

// ride waits, while the previous commit's fsync is in flight (syncer), for
// another change to run in the open transaction, and reports whether it
// took one. Such a change could not be reported before the next fsync
// anyway, and a commit per fsync writes each hot page (the last leaf of
// every index) once per fsync rather than once per change: measured at
// 1,000 msg/s, 80 MB/s went to the disk with a commit per change. It stops
// once the fsync ends (the transaction then commits) or at until.
func (w *writer) ride(in *intake, until time.Time) bool {
	s := w.db.syncs
	if s == nil || len(in.batch) >= maxBatch {
		return false
	}
	for s.busy() {
		select { // foreground first
		case j, ok := <-in.fg:
			if in.take(j, ok, &in.fg) {
				return true
			}
			continue
		default:
		}
		d := time.Until(until)
		if d <= 0 {
			return false
		}
		in.timer.Reset(d)
		select {
		case j, ok := <-in.fg:
			if in.take(j, ok, &in.fg) {
				in.timer.Stop()
				return true
			}
		case j, ok := <-in.bg:
			if in.take(j, ok, &in.bg) {
				in.timer.Stop()
				return true
			}
		case <-s.idle:
		case <-in.timer.C:
			return false
		}
		in.timer.Stop()
	}
	return false
}

// cutIn takes a waiting request's change from the lane and puts it at
// position i of the batch, before the background work still to run: while
// an fsync is in flight the transaction stays open, so it runs now rather
// than after all of that work. It reports whether there was one.
func (w *writer) cutIn(in *intake, i int) bool {
	select {
	case j, ok := <-in.fg:
		if !ok {
			in.fg = nil
			return false
		}
		in.batch = slices.Insert(in.batch, i, j)
		return true
	default:
		return false
	}
}

// foregroundFirst moves batch's foreground jobs before its background ones,
// keeping the order within each (carried-over jobs came first in both).
// A job already carried over twice goes first whatever its kind, so that a
// steady stream of requests cannot starve background work.
func foregroundFirst(batch []*job, carried int) {
	if carried == 0 {
		return // only new jobs, drained foreground first
	}
	rank := func(j *job) int {
		switch {
		case j.carried >= 2:
			return 0
		case !j.bg:
			return 1
		}
		return 2
	}
	sort.SliceStable(batch, func(a, b int) bool { return rank(batch[a]) < rank(batch[b]) })
}

// maxBatchWork bounds the time a batch's changes may take before it commits
// (the rest wait for the next transaction): one large change in a batch,
// such as a session storing a few hundred received messages, must not hold
// every request behind it for tens of milliseconds.
const maxBatchWork = 3 * time.Millisecond

// maxBatchWorkPG is maxBatchWork on PostgreSQL, where a change's time is
// mostly a round trip to the server, not work that holds the others up:
// with 3 ms a batch ended after four or five changes under load (measured:
// 4.6 changes per commit with 64 requests waiting).
const maxBatchWorkPG = 25 * time.Millisecond

// rideLimit bounds a transaction kept open while an fsync is in flight
// (ride), in place of maxBatchWork: nothing in it could be reported before
// that fsync ends anyway, and committing earlier only makes another commit
// for the next fsync. It matters when the disk stalls.
const rideLimit = 50 * time.Millisecond

// bgYield is how long background changes may run in a batch once a
// foreground change waits for the next one.
const bgYield = time.Millisecond

// bgRide is how much background work may join a batch that holds requests'
// changes, after them.
const bgRide = 250 * time.Microsecond

// commit runs a batch, or as much of it as fits in maxBatchWork, and tells
// each change's caller the outcome. It returns how many changes it handled.
func (w *writer) commit(in *intake, l lane) int {
	// On PostgreSQL a change alone is a batch too: its writes are deferred
	// to one statement (deferredRows), which saves round trips.
	if len(in.batch) > 1 || w.db.syncs != nil || w.db.dialect == Postgres {
		n, seq, err := w.runTx(in, l, true)
		if err == nil {
			w.tell(seq, in.batch[:n])
			return n
		}
		var de deferralError
		if len(in.batch) == 1 && !errors.As(err, &de) {
			// It failed on its own: that is its outcome (a retryable
			// failure is tried again below, and so is one of writing
			// what it deferred, without deferring).
			if !isRetryable(err) {
				in.batch[0].done <- err
				return 1
			}
		}
	}
	batch := in.batch
	for _, j := range batch {
		var err error
		var seq uint64
		for try := 0; try < 3; try++ {
			_, seq, err = w.runTx(&intake{batch: []*job{j}}, l, false)
			if !isRetryable(err) {
				break
			}
		}
		if err != nil {
			j.done <- err
			continue
		}
		w.tell(seq, []*job{j})
	}
	return len(batch)
}

// tell reports committed jobs to their callers once commit seq is durable
// (see syncer); jobs left out of their batch are told why.
func (w *writer) tell(seq uint64, jobs []*job) {
	if w.db.syncs == nil {
		for _, j := range jobs {
			j.done <- j.skipped
		}
		return
	}
	jobs = slices.Clone(jobs) // the writer reuses its batch slice
	w.db.syncs.after(seq, func(err error) {
		for _, j := range jobs {
			if err != nil && j.skipped == nil {
				j.done <- err
			} else {
				j.done <- j.skipped
			}
		}
	})
}

// runTx runs the batch's changes in one transaction, stopping early once
// they took maxBatchWork; it returns how many it ran and, on SQLite, the
// commit's number (syncer). With more, it takes more changes from the lane
// while the previous commit's fsync is in flight (ride).
func (w *writer) runTx(in *intake, l lane, more bool) (n int, seq uint64, err error) {
	ctx := context.Background()
	if w.db.dialect == Postgres {
		// A statement waits on the network at most this long. On SQLite
		// none waits on a network and a locked file is bounded by
		// busy_timeout, while a context that can end costs a goroutine per
		// statement in the driver (it watches for the end to interrupt).
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	start := time.Now()
	defer func() { w.db.faults.note(err) }()
	tx, err := w.db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil {
			// After a failed COMMIT, the SQLite driver has already rolled
			// back what SQLite left open (modernc.org/sqlite's tx.Commit),
			// so the writer's connection is clean for the next batch.
			_ = tx.Rollback()
			w.db.rolledBack()
		}
	}()
	bseqs, nts, defs, hooks, limit := w.db.seqs, (*notes)(nil), (*deferredRows)(nil), (*hookCache)(nil), maxBatchWork
	if w.db.dialect == Postgres {
		// Counters are read once per session and batch with the row locked
		// (FOR UPDATE: other nodes' writers wait for this commit), and
		// written back once; each notification goes once; and the writes
		// that need no answer are made together at the end (deferredRows;
		// not when a change runs again on its own after its batch failed,
		// where it must see its own insert's outcome).
		bseqs, nts, hooks, limit = &seqCache{m: map[string]*seqs{}, lock: true}, &notes{}, &hookCache{}, maxBatchWorkPG
		if more {
			defs = &deferredRows{}
		}
	}
	txs := make([]*Tx, 0, len(in.batch))
	fgUntil := time.Duration(-1) // when this batch's requests' changes had run (-1: it has none)
	i := 0
	for ; i < len(in.batch) || more && w.ride(in, start.Add(rideLimit)); i++ {
		j := in.batch[i]
		now := time.Now()
		if i > 0 {
			el := now.Sub(start)
			// Background work yields to requests: to those that arrived
			// meanwhile (they commit in the next batch, not after all of
			// it), and to those in this batch, whose commit it would delay
			// (it rides along for bgRide at most; what is carried over
			// twice goes first in a later batch). While the previous
			// commit's fsync is in flight it delays nothing.
			syncing := w.db.syncs != nil && w.db.syncs.busy()
			if j.bg && syncing && more && el > bgYield && len(l.ch) > 0 && w.cutIn(in, i) {
				j = in.batch[i] // a request's change, before the rest
			} else if el > rideLimit || el > limit && !syncing || (j.bg && !syncing && el > bgYield && len(l.ch) > 0) || (j.bg && !syncing && fgUntil >= 0 && el-fgUntil > bgRide) {
				break
			}
		}
		j.after, j.skipped = nil, nil
		if !j.bg && !j.waited {
			w.wait.observe(now.Sub(j.queued))
			j.waited = true
		}
		if e := j.ctx.Err(); e != nil {
			// Its caller gave up before it ran: it is left out (nothing of it
			// is written) and fails with that, without taking the batch down.
			j.skipped = e
			continue
		}
		t := &Tx{db: w.db, tx: tx, ctx: ctx, stmts: w.stmts, seqs: bseqs, notes: nts, deferred: defs, hooks: hooks}
		txs = append(txs, t)
		if err := t.checkFence(j.ctx); err != nil {
			return 0, 0, err
		}
		if err := j.fn(t); err != nil {
			if t.err != nil {
				return 0, 0, deferralError{t.err}
			}
			return 0, 0, err
		}
		if t.err != nil {
			return 0, 0, deferralError{t.err}
		}
		j.after = t.after
		if !j.bg {
			fgUntil = time.Since(start)
		}
	}
	n = i
	if w.db.dialect == Postgres {
		if err := finishPG(ctx, tx, defs, bseqs, nts); err != nil {
			return 0, 0, deferralError{err}
		}
	} else if bseqs != nil {
		if err := bseqs.writeBack(ctx, w.db, tx, w.stmts); err != nil {
			return 0, 0, err
		}
	}
	// Whether or not the commit reports success, the rows may have changed.
	defer w.db.committed(txs...)
	cstart := time.Now()
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	w.commitTime.observe(time.Since(cstart))
	if w.db.syncs != nil {
		seq = w.db.syncs.committedNow()
	}
	w.batches.Add(1)
	w.changes.Add(uint64(len(txs)))
	return n, seq, nil
}

// deferralError is a batch's failure to write what its changes deferred,
// or to do its own bookkeeping between them (Tx.err): no change's own
// failure, so a batch of one change runs it again, alone and deferring
// nothing, for its outcome.
type deferralError struct{ err error }

func (e deferralError) Error() string { return e.err.Error() }
func (e deferralError) Unwrap() error { return e.err }

// WriterStats are the group-commit writer's counters.
type WriterStats struct {
	Batches, Changes uint64 // committed transactions, and the changes in them
}

// WriterStats returns the writer's counters.
func (db *DB) WriterStats() WriterStats {
	return WriterStats{Batches: db.writer.batches.Load(), Changes: db.writer.changes.Load()}
}

func isRetryable(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "SQLSTATE 40P01") || strings.Contains(s, "SQLSTATE 40001") || strings.Contains(s, "database is locked")
}

// UpdateNow runs fn in a transaction of its own, not queued behind the
// group-commit batches: for lease renewals, which must not wait for a burst
// of application writes. On SQLite, with its single writer connection, it is
// Update.
func (db *DB) UpdateNow(ctx context.Context, fn func(*Tx) error) error {
	if db.dialect != Postgres {
		return db.Update(ctx, fn)
	}
	var err error
	for try := 0; try < 3; try++ {
		err = db.updateNow(ctx, fn)
		if !isRetryable(err) {
			break
		}
	}
	return err
}

func (db *DB) updateNow(ctx context.Context, fn func(*Tx) error) (err error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		db.faults.note(err)
		return Classify(err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	t := &Tx{db: db, tx: tx, ctx: ctx}
	if err := fn(t); err != nil {
		return err
	}
	err = tx.Commit()
	db.committed(t)
	db.faults.note(err)
	if err != nil {
		return Classify(err)
	}
	for _, f := range t.after {
		f()
	}
	return nil
}
