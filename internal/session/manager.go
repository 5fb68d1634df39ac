// Package session runs sessions: one engine per active session, the state
// machine of API.md (stopped, starting, scan_qr, connected, reconnecting,
// logged_out, failed) with every transition stored with its reason and an
// event, reconnects with capped exponential backoff, resuming sessions on
// start, and the paced sender that drains each session's outbox.
//
// An idle connected session costs a runner struct and its engine: no
// goroutine runs for it until something happens.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/keylock"
	"github.com/wabsync/wabsync/internal/store"
)

// Options configure a Manager.
type Options struct {
	DB        *store.DB
	Factories map[string]wabsync.EngineFactory
	Logger    *slog.Logger
	// ReconnectBase is the first retry delay (default 1 s); it doubles up to
	// ReconnectMax (default 2 min), with jitter.
	ReconnectBase time.Duration
	ReconnectMax  time.Duration
	// MaxAttempts is how many connection attempts in a row may fail before
	// the session goes failed (default 8).
	MaxAttempts int
	// SendRate and SendBurst pace each session's sending (defaults 20/s, 20).
	SendRate  float64
	SendBurst int
	// Address is where other nodes reach this node's API (forwarding).
	Address string
	// NodeID names this node; LeaseTTL is how long a session's lease lasts
	// without renewal (default 15 s); Capacity bounds how many sessions this
	// node takes over on its own (default 10,000). SingleNode (SQLite) lets a
	// restarted node take every lease at once instead of waiting for expiry.
	NodeID     string
	LeaseTTL   time.Duration
	Capacity   int
	SingleNode bool
	// OnDelete is told when a session is deleted, after its engine logged
	// out, to remove what the engine keeps elsewhere (whatsmeow's device).
	OnDelete func(ctx context.Context, s *wabsync.Session)
	// Blobs opens stored media for sending.
	Blobs BlobOpener
	// OnTokensChanged is told when a session's token was rotated or deleted.
	OnTokensChanged func(sessionID string)
}

// Manager runs the sessions of this node.
type Manager struct {
	opts   Options
	db     *store.DB
	logger *slog.Logger

	mu      sync.Mutex
	runners map[string]*runner
	actions keylock.Locks // control actions, one at a time per session (lockActions)
	gates   sync.Map      // session id → *outboxGate (see CancelQueued)
	closed  bool
	wg      sync.WaitGroup // sender goroutines and background starts

	statuses statusQueue // connected transitions, stored in batches

	kick     chan struct{} // wakes the cluster loop
	loopDone chan struct{}
	stopLoop context.CancelFunc
}

// NewManager returns a manager; call Resume to bring back sessions that were
// running.
func NewManager(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReconnectBase <= 0 {
		o.ReconnectBase = time.Second
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 2 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.SendRate <= 0 {
		o.SendRate = 20
	}
	if o.SendBurst <= 0 {
		o.SendBurst = 20
	}
	if o.NodeID == "" {
		o.NodeID = "node-" + wabsync.RandomBase62(8)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 15 * time.Second
	}
	if o.Capacity <= 0 {
		o.Capacity = 10000
	}
	return &Manager{opts: o, db: o.DB, logger: o.Logger, runners: map[string]*runner{}, kick: make(chan struct{}, 1)}
}

// CreateInput is what a new session is made from.
type CreateInput struct {
	Name     string
	Engine   string
	Config   wabsync.SessionConfig
	Metadata map[string]any
}

// Create stores a new stopped session and returns it with its token, which
// is not kept anywhere but in the response.
func (m *Manager) Create(ctx context.Context, in CreateInput) (*wabsync.Session, string, error) {
	if _, ok := m.opts.Factories[in.Engine]; !ok {
		return nil, "", fieldErr("engine", "this server has no engine "+fmt.Sprintf("%q", in.Engine))
	}
	s := &wabsync.Session{
		ID: wabsync.NewID("ses"), Name: in.Name, Engine: in.Engine, Status: wabsync.StatusStopped,
		StatusReason: "Created; connect to link it.", Config: in.Config, Metadata: in.Metadata,
	}
	tok := store.NewSessionToken()
	if err := m.db.CreateSession(ctx, s, store.HashToken(tok)); err != nil {
		return nil, "", err
	}
	return s, tok, nil
}

// RotateToken issues a new token for the session; the old one stops working
// at once.
func (m *Manager) RotateToken(ctx context.Context, id string) (string, error) {
	tok := store.NewSessionToken()
	if err := m.db.RotateSessionToken(ctx, id, store.HashToken(tok)); err != nil {
		return "", err
	}
	if m.opts.OnTokensChanged != nil {
		m.opts.OnTokensChanged(id)
	}
	return tok, nil
}

func fieldErr(field, msg string) error {
	return &wabsync.Error{Code: wabsync.EValidation, Message: "Invalid " + field + ": " + msg, Details: map[string]string{field: msg}}
}

func isRunning(st wabsync.SessionStatus) bool {
	switch st {
	case wabsync.StatusStarting, wabsync.StatusScanQR, wabsync.StatusConnected, wabsync.StatusReconnecting:
		return true
	}
	return false
}

// Connect starts a session: it shows a QR code until linked, or reconnects a
// linked one. Connecting a running session changes nothing and returns it.
func (m *Manager) Connect(ctx context.Context, id string) (*wabsync.Session, error) {
	return serialised(m, ctx, id, func() (*wabsync.Session, error) { return m.start(ctx, id, "Connecting.") })
}

func (m *Manager) start(ctx context.Context, id, reason string) (*wabsync.Session, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, wabsync.Errorf(wabsync.EUnavailable, "The server is shutting down.")
	}
	if r := m.runners[id]; r != nil {
		m.mu.Unlock()
		return m.db.GetSession(ctx, id)
	}
	r := &runner{m: m, id: id}
	m.runners[id] = r
	m.mu.Unlock()
	lease, ok, _, err := m.db.AcquireLease(ctx, id, m.opts.NodeID, m.opts.LeaseTTL, m.opts.SingleNode)
	if err != nil || !ok {
		m.forget(r)
		if err != nil {
			return nil, err
		}
		// Another node runs it: say what it is doing.
		return m.db.GetSession(ctx, id)
	}
	return m.startLeased(ctx, r, lease, reason)
}

// startLeased starts the engine of a session whose lease r holds.
func (m *Manager) startLeased(ctx context.Context, r *runner, lease store.Lease, reason string) (*wabsync.Session, error) {
	id := r.id
	r.mu.Lock()
	r.leasedAt = time.Now()
	r.mu.Unlock()
	r.lease.Store(&lease)
	s, err := m.db.ModifySession(r.fenced(ctx), id, func(tx *store.Tx, s *wabsync.Session) error {
		if _, ok := m.opts.Factories[s.Engine]; !ok {
			return wabsync.Errorf(wabsync.EConflict, "This server has no %q engine.", s.Engine)
		}
		s.Desired = true
		s.Status = wabsync.StatusStarting
		s.StatusReason = reason
		return nil
	})
	if err != nil {
		m.dropRunner(r)
		return nil, err
	}
	if !m.launch(r, s) {
		return m.db.GetSession(ctx, id)
	}
	return s, nil
}

// launch makes the engine of a session whose lease r holds and whose
// starting status is stored, and connects it in the background. It reports
// false when the engine could not be made or the runner was stopped
// meanwhile.
func (m *Manager) launch(r *runner, s *wabsync.Session) bool {
	eng, err := m.opts.Factories[s.Engine].NewEngine(wabsync.EngineOptions{
		SessionID: s.ID, Name: s.Name, Config: s.Config, DeviceJID: s.DeviceJID, Phone: s.Phone,
		Handler: r.handle, Logger: m.logger.With("session_id", s.ID),
	})
	if err != nil {
		m.logger.Error("engine could not be made", "session_id", s.ID, "err", err)
		_, _ = m.db.ModifySession(r.fenced(context.Background()), s.ID, func(tx *store.Tx, s *wabsync.Session) error {
			s.Status, s.StatusReason, s.Desired = wabsync.StatusFailed, "The engine could not be started: "+safeErr(err), false
			return nil
		})
		m.dropRunner(r)
		return false
	}
	r.mu.Lock()
	stopped := r.stopped
	if !stopped {
		r.engine = eng
		r.status = wabsync.StatusStarting
		r.phone, r.cfg = s.Phone, s.Config
	}
	r.mu.Unlock()
	if stopped {
		// Stopped while starting (shutdown, or the lease was lost): the
		// engine never runs. A shutdown that did not see this runner's
		// lease yet leaves the hand-back to it.
		_ = eng.Close()
		m.mu.Lock()
		closed := m.closed
		m.mu.Unlock()
		if closed {
			m.handBack(context.Background(), r)
		}
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.connect()
	}()
	return true
}

// nodeStopped is the reason of sessions handed back by a stopping node.
const nodeStopped = "Its node stopped; it resumes on the next node that starts or has room."

// handBack stops r, stores that its node stopped and releases its lease:
// the hand-back of one session (Close does the rest in bulk).
func (m *Manager) handBack(ctx context.Context, r *runner) {
	r.stop()
	_, _ = m.db.ModifySession(r.fenced(ctx), r.id, func(tx *store.Tx, s *wabsync.Session) error {
		s.Status, s.StatusReason = wabsync.StatusStopped, nodeStopped
		return nil
	})
	m.release(r)
}

// forget removes r from the table without touching its lease.
func (m *Manager) forget(r *runner) {
	m.mu.Lock()
	if m.runners[r.id] == r {
		delete(m.runners, r.id)
	}
	m.mu.Unlock()
}

func (m *Manager) runner(id string) *runner {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runners[id]
}

// dropRunner removes r from the table (if still there), stops it and
// releases its lease.
func (m *Manager) dropRunner(r *runner) {
	m.forget(r)
	r.stop()
	m.release(r)
}

func (m *Manager) release(r *runner) {
	l := r.currentLease()
	if l.Token == 0 {
		return
	}
	if err := m.db.ReleaseLease(context.Background(), r.id, m.opts.NodeID, l.Token); err != nil {
		m.logger.Warn("releasing a lease", "session_id", r.id, "err", err)
	}
}

// Disconnect stops the connection and keeps the link.
func (m *Manager) Disconnect(ctx context.Context, id string) (*wabsync.Session, error) {
	return serialised(m, ctx, id, func() (*wabsync.Session, error) { return m.disconnect(ctx, id) })
}

func (m *Manager) disconnect(ctx context.Context, id string) (*wabsync.Session, error) {
	// The runner ignores its engine from now on, but keeps its lease until
	// the session no longer wants to run: released earlier, the lease could
	// be taken over, and the session started again, in between.
	r := m.runner(id)
	if r != nil {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		defer m.dropRunner(r)
	}
	return m.db.ModifySession(ctx, id, func(tx *store.Tx, s *wabsync.Session) error {
		s.Desired = false
		s.Status = wabsync.StatusStopped
		if s.DeviceJID != "" {
			s.StatusReason = "Disconnected on request; the link is kept, connect to resume."
		} else {
			s.StatusReason = "Disconnected on request; connect to link it."
		}
		return nil
	})
}

// Logout unlinks the device; the next connect needs a new link.
func (m *Manager) Logout(ctx context.Context, id string) (*wabsync.Session, error) {
	return serialised(m, ctx, id, func() (*wabsync.Session, error) { return m.logout(ctx, id) })
}

func (m *Manager) logout(ctx context.Context, id string) (*wabsync.Session, error) {
	s, err := m.db.GetSession(ctx, id)
	if err != nil {
		return nil, err
	}
	if r := m.runner(id); r != nil {
		defer m.dropRunner(r) // once the session no longer wants to run
	}
	m.logoutEngine(ctx, s)
	return m.db.ModifySession(ctx, id, func(tx *store.Tx, s *wabsync.Session) error {
		return loggedOut(tx, s, "Logged out on request; connect to link again.")
	})
}

// loggedOutText is the error message of the messages a logout fails.
const loggedOutText = "The session was logged out before this message was sent; it is not sent from the account linked next."

// loggedOut stores that the session's link is gone, in tx: the status, the
// link forgotten, and every message still queued failed with
// SESSION_LOGGED_OUT (and its message.failed event), so that none of them
// goes out from the account linked next.
func loggedOut(tx *store.Tx, s *wabsync.Session, reason string) error {
	s.Desired = false
	s.Status, s.StatusReason = wabsync.StatusLoggedOut, reason
	s.DeviceJID, s.Phone, s.PushName = "", "", ""
	_, err := tx.FailQueued(s.ID, wabsync.MsgErrLoggedOut, loggedOutText)
	return err
}

// logoutEngine logs the engine out (using the running one, or a temporary
// one for a stopped but linked session) and stops it.
func (m *Manager) logoutEngine(ctx context.Context, s *wabsync.Session) {
	var eng wabsync.Engine
	if r := m.runner(s.ID); r != nil {
		r.mu.Lock()
		eng = r.engine
		r.stopped = true // ignore the engine's own logged-out event
		r.mu.Unlock()
		// No send in flight while the outbox is failed.
		defer r.waitSender()
	} else if s.DeviceJID != "" {
		if f, ok := m.opts.Factories[s.Engine]; ok {
			e, err := f.NewEngine(wabsync.EngineOptions{SessionID: s.ID, Name: s.Name, Config: s.Config, DeviceJID: s.DeviceJID,
				Phone: s.Phone, Handler: func(context.Context, wabsync.EngineEvent) error { return nil }, Logger: m.logger.With("session_id", s.ID)})
			if err == nil {
				eng = e
				defer e.Close()
			}
		}
	}
	if eng != nil {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := eng.Logout(lctx); err != nil {
			m.logger.Warn("logout from the network failed; the local link is removed anyway", "session_id", s.ID, "err", err)
		}
	}
}

// Restart stops the engine and starts it again.
func (m *Manager) Restart(ctx context.Context, id string) (*wabsync.Session, error) {
	return serialised(m, ctx, id, func() (*wabsync.Session, error) { return m.restart(ctx, id) })
}

func (m *Manager) restart(ctx context.Context, id string) (*wabsync.Session, error) {
	if _, err := m.db.GetSession(ctx, id); err != nil {
		return nil, err
	}
	if r := m.runner(id); r != nil {
		m.dropRunner(r)
	}
	return m.start(ctx, id, "Restarting on request.")
}

// Delete logs the session out, stops it and deletes its data.
func (m *Manager) Delete(ctx context.Context, id string) error {
	_, err := serialised(m, ctx, id, func() (struct{}, error) { return struct{}{}, m.delete(ctx, id) })
	return err
}

func (m *Manager) delete(ctx context.Context, id string) error {
	s, err := m.db.GetSession(ctx, id)
	if err != nil {
		return err
	}
	if r := m.runner(id); r != nil {
		defer m.dropRunner(r)
	}
	m.logoutEngine(ctx, s)
	if m.opts.OnDelete != nil {
		m.opts.OnDelete(ctx, s)
	}
	if err := m.db.DeleteSession(ctx, id); err != nil {
		return err
	}
	m.gates.Delete(id)
	if m.opts.OnTokensChanged != nil {
		m.opts.OnTokensChanged(id)
	}
	return nil
}

// PairCode starts linking by code for phone and returns the code.
func (m *Manager) PairCode(ctx context.Context, id, phone string) (string, error) {
	if _, err := m.db.GetSession(ctx, id); err != nil {
		return "", err
	}
	r := m.runner(id)
	if r == nil {
		return "", wabsync.Errorf(wabsync.EConflict, "The session is not running; connect it first, then ask for a pair code while it waits for a link.")
	}
	r.mu.Lock()
	eng, st := r.engine, r.status
	r.mu.Unlock()
	if st != wabsync.StatusScanQR || eng == nil {
		return "", wabsync.Errorf(wabsync.EConflict, "The session is not waiting for a link (status %s).", st)
	}
	code, err := eng.PairPhone(ctx, phone)
	if err != nil {
		var ee *wabsync.EngineError
		if errors.As(err, &ee) {
			return "", wabsync.Errorf(wabsync.EConflict, "%s", ee.Message)
		}
		return "", err
	}
	return code, nil
}

// Engine returns the running engine of a session, or nil.
func (m *Manager) Engine(id string) wabsync.Engine {
	r := m.runner(id)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status != wabsync.StatusConnected {
		return nil
	}
	return r.engine
}

// Resume starts every session that should be running and that no live node
// owns, as after a restart, then keeps doing so in the background: the
// cluster loop renews this node's leases, takes over sessions of nodes that
// died, and stops sessions whose lease was lost.
func (m *Manager) Resume(ctx context.Context) error {
	if err := m.db.RegisterNode(ctx, m.opts.NodeID, m.opts.Address, m.opts.Capacity); err != nil {
		return err
	}
	n, err := m.takeOver(ctx)
	if err != nil {
		return err
	}
	m.logger.Info("sessions resumed", "count", n)
	lctx, cancel := context.WithCancel(context.Background())
	m.stopLoop = cancel
	m.loopDone = make(chan struct{})
	go m.clusterLoop(lctx)
	return nil
}

// Close stops every engine and hands the sessions back: their leases are
// released at once so that another node (or the next start) takes them over.
// Sessions keep wanting to run; their status says the node stopped.
func (m *Manager) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	rs := make([]*runner, 0, len(m.runners))
	for _, r := range m.runners {
		rs = append(rs, r)
	}
	m.runners = map[string]*runner{}
	m.mu.Unlock()
	if m.stopLoop != nil {
		m.stopLoop()
		<-m.loopDone
	}
	// Count this node out first, so that the others, woken by the releases
	// below, take its sessions over at once.
	if err := m.db.StopNode(ctx, m.opts.NodeID); err != nil {
		m.logger.Warn("marking the node stopped", "err", err)
	}
	// Stop every engine (64 at a time: each waits for its sender to
	// finish), then store every session's hand-back — its status with
	// the event, and the release of its lease — in a few transactions
	// instead of two each.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, r := range rs {
		sem <- struct{}{}
		wg.Add(1)
		go func(r *runner) {
			defer func() { <-sem; wg.Done() }()
			r.stop()
		}(r)
	}
	wg.Wait()
	// A runner without a lease yet is still starting: it hands itself
	// back once it has one (launch).
	leases := make([]store.Lease, 0, len(rs))
	for _, r := range rs {
		if l := r.currentLease(); l.Token != 0 {
			leases = append(leases, l)
		}
	}
	if _, _, err := m.db.SetStatuses(ctx, leases, wabsync.StatusStopped, nodeStopped, store.BulkStatus{Release: true}); err != nil {
		m.logger.Warn("handing the sessions back", "err", err)
	}
	m.wg.Wait()
}

// backoff returns the delay before retry n (1-based): base·2^(n-1), capped,
// with ±20 % jitter.
func (m *Manager) backoff(n int) time.Duration {
	d := m.opts.ReconnectBase
	for i := 1; i < n && d < m.opts.ReconnectMax; i++ {
		d *= 2
	}
	if d > m.opts.ReconnectMax {
		d = m.opts.ReconnectMax
	}
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return j
}

func safeErr(err error) string {
	var ee *wabsync.EngineError
	if errors.As(err, &ee) {
		return ee.Message
	}
	var we *wabsync.Error
	if errors.As(err, &we) {
		return we.Message
	}
	return "internal error"
}
