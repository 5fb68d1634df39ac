package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// runner is one active session on this node: its engine and its place in the
// state machine. Engine events are handled one at a time under mu.
type runner struct {
	m  *Manager
	id string

	mu       sync.Mutex
	engine   wabsync.Engine
	status   wabsync.SessionStatus
	attempts int // connection attempts failed in a row
	timer    *time.Timer
	stopped  bool
	phone    string
	cfg      wabsync.SessionConfig
	lease    atomic.Pointer[store.Lease] // fences every write this runner makes
	leasedAt time.Time                   // under mu

	send sender
}

// fenced returns ctx whose writes are refused once this node no longer
// holds the session's lease.
func (r *runner) fenced(ctx context.Context) context.Context {
	l := r.currentLease()
	if l.Token == 0 {
		return ctx
	}
	return store.WithFence(ctx, r.id, l.NodeID, l.Token)
}

func (r *runner) currentLease() store.Lease {
	if l := r.lease.Load(); l != nil {
		return *l
	}
	return store.Lease{}
}

// stop ends the runner: no more retries, the engine is closed. Its events
// are ignored from now on.
func (r *runner) stop() {
	r.mu.Lock()
	r.stopped = true
	eng := r.engine
	if r.timer != nil {
		r.stopTimerLocked()
	}
	r.mu.Unlock()
	r.waitSender()
	if eng != nil {
		eng.Disconnect()
		_ = eng.Close()
	}
}

// connect runs one connection attempt.
func (r *runner) connect() {
	r.mu.Lock()
	eng, stopped := r.engine, r.stopped
	r.mu.Unlock()
	if stopped || eng == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	err := eng.Connect(ctx)
	cancel()
	if err != nil {
		r.connectFailed(err)
	}
}

// connectFailed retries with backoff, or gives up after MaxAttempts or on a
// permanent error.
func (r *runner) connectFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.attempts++
	ee, _ := err.(*wabsync.EngineError)
	permanent := ee != nil && ee.Permanent
	max := r.m.opts.MaxAttempts
	if permanent || r.attempts >= max {
		reason := fmt.Sprintf("Could not connect after %d attempts: %s. Fix the cause, then connect again.", r.attempts, safeErr(err))
		if permanent {
			reason = "Could not connect: " + safeErr(err) + "."
		}
		r.setStatusLocked(wabsync.StatusFailed, reason, func(s *wabsync.Session) { s.Desired = false })
		r.stopped = true
		go r.m.dropRunner(r)
		return
	}
	d := r.m.backoff(r.attempts)
	r.setStatusLocked(wabsync.StatusReconnecting,
		fmt.Sprintf("Connection attempt %d of %d failed: %s. Retrying in %s.", r.attempts, max, safeErr(err), d.Round(time.Millisecond)), nil)
	r.scheduleLocked(d)
}

// stopTimerLocked cancels a pending reconnect; a timer stopped before it
// fired gives back its place in the manager's wait group.
func (r *runner) stopTimerLocked() {
	if r.timer != nil && r.timer.Stop() {
		r.m.wg.Done()
	}
	r.timer = nil
}

func (r *runner) scheduleLocked(d time.Duration) {
	if r.timer != nil {
		r.stopTimerLocked()
	}
	r.m.wg.Add(1)
	r.timer = time.AfterFunc(d, func() {
		defer r.m.wg.Done()
		r.connect()
	})
}

// setStatusLocked stores a transition (and its event); edit may change more
// of the session in the same transaction.
func (r *runner) setStatusLocked(st wabsync.SessionStatus, reason string, edit func(*wabsync.Session)) {
	r.status = st
	_, err := r.m.db.ModifySession(r.fenced(context.Background()), r.id, func(tx *store.Tx, s *wabsync.Session) error {
		s.Status, s.StatusReason = st, reason
		if edit != nil {
			edit(s)
		}
		return nil
	})
	if err != nil {
		r.m.logger.Error("could not store a session transition", "session_id", r.id, "status", st, "err", err)
	}
}

// setConnectedLocked stores that the session is connected. Engines
// connect in bursts (every session at once after a restart), so the
// transition goes through the manager's status queue, which stores those
// of many sessions in one transaction.
func (r *runner) setConnectedLocked(phone, pushName string) {
	l := r.currentLease()
	if l.Token == 0 {
		r.setStatusLocked(wabsync.StatusConnected, "Connected.", func(s *wabsync.Session) {
			if phone != "" {
				s.Phone = phone
			}
			if pushName != "" {
				s.PushName = pushName
			}
		})
		return
	}
	r.status = wabsync.StatusConnected
	err := r.m.statuses.store(r.m.db, store.StatusItem{Lease: l, Status: wabsync.StatusConnected, Reason: "Connected.", Phone: phone, PushName: pushName})
	if err != nil {
		r.m.logger.Error("could not store a session transition", "session_id", r.id, "status", wabsync.StatusConnected, "err", err)
	}
}

// statusQueue gathers transitions of different sessions that arrive
// together into one write (group commit): while one batch is being
// stored, the next gathers.
type statusQueue struct {
	mu      sync.Mutex
	pending []*statusJob
	busy    bool
}

type statusJob struct {
	item store.StatusItem
	done chan error
}

// store stores it and returns once it is durable (or failed).
func (q *statusQueue) store(db *store.DB, it store.StatusItem) error {
	j := &statusJob{item: it, done: make(chan error, 1)}
	q.mu.Lock()
	q.pending = append(q.pending, j)
	if !q.busy {
		q.busy = true
		go q.flush(db)
	}
	q.mu.Unlock()
	return <-j.done
}

func (q *statusQueue) flush(db *store.DB) {
	for {
		q.mu.Lock()
		// One transition per session in a batch; a second one (from a
		// runner that replaced the first) waits for the next.
		var batch, later []*statusJob
		seen := make(map[string]bool, len(q.pending))
		for _, j := range q.pending {
			if seen[j.item.Lease.SessionID] {
				later = append(later, j)
				continue
			}
			seen[j.item.Lease.SessionID] = true
			batch = append(batch, j)
		}
		q.pending = later
		if len(batch) == 0 {
			q.busy = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		items := make([]store.StatusItem, len(batch))
		for i, j := range batch {
			items[i] = j.item
		}
		errs := db.SetStatusEach(context.Background(), items)
		for i, j := range batch {
			j.done <- errs[i]
		}
	}
}

// handle is the engine's event handler.
func (r *runner) handle(ctx context.Context, ev wabsync.EngineEvent) error {
	ctx = r.fenced(ctx)
	switch ev := ev.(type) {
	case wabsync.EngineMessage, wabsync.EngineReceipt, wabsync.EngineUndecryptable, wabsync.EnginePresence, wabsync.EngineBatch:
		return r.m.handleData(ctx, r, ev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil
	}
	switch ev := ev.(type) {
	case wabsync.EngineQR:
		if r.status != wabsync.StatusStarting && r.status != wabsync.StatusScanQR {
			return nil
		}
		r.status = wabsync.StatusScanQR
		return r.m.db.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.ModifySession(r.id, func(tx *store.Tx, s *wabsync.Session) error {
				s.Status = wabsync.StatusScanQR
				s.StatusReason = "Waiting for the QR code to be scanned, or for a pair code to be entered on the phone."
				return nil
			}); err != nil {
				return err
			}
			return tx.SetQR(r.id, ev.Code, ev.ExpiresAt)
		})
	case wabsync.EngineLinkTimeout:
		reason := "No one linked the session in time; connect again for a new QR code."
		if ev.Reason != "" {
			reason = "Linking failed (" + ev.Reason + "); connect again for a new QR code."
		}
		r.setStatusLocked(wabsync.StatusStopped, reason,
			func(s *wabsync.Session) { s.Desired = false })
		r.stopped = true
		go r.m.dropRunner(r)
	case wabsync.EnginePaired:
		if ev.Phone != "" {
			r.phone = ev.Phone
		}
		_, err := r.m.db.ModifySession(ctx, r.id, func(tx *store.Tx, s *wabsync.Session) error {
			s.DeviceJID, s.Phone = ev.DeviceJID, ev.Phone
			if ev.PushName != "" {
				s.PushName = ev.PushName
			}
			return nil
		})
		return err
	case wabsync.EngineConnected:
		r.attempts = 0
		if r.timer != nil {
			r.stopTimerLocked()
		}
		if ev.Phone != "" {
			r.phone = ev.Phone
		}
		r.setConnectedLocked(ev.Phone, ev.PushName)
		r.wakeLocked()
	case wabsync.EngineDisconnected:
		if r.status != wabsync.StatusConnected {
			return nil
		}
		d := r.m.backoff(1)
		r.attempts = 0
		r.setStatusLocked(wabsync.StatusReconnecting, fmt.Sprintf("Connection lost (%s); reconnecting in %s.", ev.Reason, d.Round(time.Millisecond)), nil)
		r.scheduleLocked(d)
	case wabsync.EngineLoggedOut:
		r.status = wabsync.StatusLoggedOut
		reason := "Logged out from the phone (" + ev.Reason + "); connect to link again."
		if _, err := r.m.db.ModifySession(ctx, r.id, func(tx *store.Tx, s *wabsync.Session) error {
			return loggedOut(tx, s, reason)
		}); err != nil {
			r.m.logger.Error("could not store a session transition", "session_id", r.id, "status", wabsync.StatusLoggedOut, "err", err)
		}
		r.stopped = true
		go r.m.dropRunner(r)
	case wabsync.EngineStreamReplaced:
		r.setStatusLocked(wabsync.StatusFailed, "Another client took over this link (stream replaced); connect again to take it back.",
			func(s *wabsync.Session) { s.Desired = false })
		r.stopped = true
		go r.m.dropRunner(r)
	case wabsync.EngineTemporaryBan:
		until := "for a while"
		if !ev.Expires.IsZero() {
			until = "until " + ev.Expires.UTC().Format(time.RFC3339)
		}
		r.setStatusLocked(wabsync.StatusFailed, fmt.Sprintf("WhatsApp banned the account temporarily %s (%s); connect after that.",
			until, ev.Reason), func(s *wabsync.Session) { s.Desired = false })
		r.stopped = true
		go r.m.dropRunner(r)
	case wabsync.EngineClientOutdated:
		r.setStatusLocked(wabsync.StatusFailed, "WhatsApp refused this client version as outdated; update WabSync, then connect again.",
			func(s *wabsync.Session) { s.Desired = false })
		r.stopped = true
		go r.m.dropRunner(r)
	}
	return nil
}
