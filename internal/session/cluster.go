package session

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// Kick makes the cluster loop run now (a lease was released somewhere).
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// NodeID returns this node's id.
func (m *Manager) NodeID() string { return m.opts.NodeID }

// clusterLoop renews this node's leases every third of their TTL, stops
// sessions whose lease was lost, and takes over sessions nobody runs.
func (m *Manager) clusterLoop(ctx context.Context) {
	defer close(m.loopDone)
	every := m.opts.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK := time.Now()
	// The dead man's switch: if no heartbeat succeeds for most of a lease,
	// this node stops its sessions before its leases can expire and another
	// node take them, so that no session ever runs on two nodes at once.
	// A single node (SQLite) has nobody to hand over to: no switch.
	deadman := time.AfterFunc(m.opts.LeaseTTL*7/10, func() {
		if !m.opts.SingleNode {
			m.stopAll("no lease renewal in time")
		}
	})
	defer deadman.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		beat := time.Now()
		held, err := m.db.Heartbeat(ctx, m.opts.NodeID, m.opts.LeaseTTL, m.opts.SingleNode)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.logger.Warn("lease heartbeat failed", "err", err)
			// Fence ourselves before anyone else may take over: stop
			// every session once our leases may have expired.
			if time.Since(lastOK) > m.opts.LeaseTTL*8/10 {
				m.stopAll("lost contact with the database")
			}
			continue
		}
		lastOK = time.Now()
		// The leases now run until beat+TTL (those left for the next
		// heartbeat, less): re-arm the switch from the earliest.
		until := beat.Add(m.opts.LeaseTTL * 7 / 10)
		for _, l := range held {
			if t := l.ExpiresAt.Add(-m.opts.LeaseTTL * 3 / 10); t.Before(until) {
				until = t
			}
		}
		deadman.Reset(time.Until(until))
		m.dropLost(held, beat)
		m.releaseZombies(ctx, held)
		if ids, err := m.db.UndesiredOwned(ctx, m.opts.NodeID); err == nil {
			for _, id := range ids {
				if r := m.runner(id); r != nil {
					m.dropRunner(r)
				}
			}
		}
		if _, err := m.takeOver(ctx); err != nil && ctx.Err() == nil {
			m.logger.Warn("taking over sessions", "err", err)
		}
	}
}

// dropLost stops the runners whose lease is not among held, except those
// that took their lease after the heartbeat began.
func (m *Manager) dropLost(held []store.Lease, beat time.Time) {
	ok := make(map[string]int64, len(held))
	for _, l := range held {
		ok[l.SessionID] = l.Token
	}
	m.mu.Lock()
	var lost []*runner
	for id, r := range m.runners {
		r.mu.Lock()
		since := r.leasedAt
		r.mu.Unlock()
		token := r.currentLease().Token
		if token != 0 && ok[id] != token && since.Before(beat) {
			lost = append(lost, r)
		}
	}
	m.mu.Unlock()
	for _, r := range lost {
		m.logger.Warn("lease lost; stopping the session here", "session_id", r.id)
		m.forget(r)
		r.stop()
	}
}

// releaseZombies gives up leases this node holds but runs no session for
// (its runner stopped without releasing, e.g. by the dead man's switch), so
// that another node can take them instead of them being renewed forever.
func (m *Manager) releaseZombies(ctx context.Context, held []store.Lease) {
	for _, l := range held {
		if m.runner(l.SessionID) != nil {
			continue
		}
		if err := m.db.ReleaseLease(ctx, l.SessionID, l.NodeID, l.Token); err != nil && ctx.Err() == nil {
			m.logger.Warn("releasing a lease of a session not running here", "session_id", l.SessionID, "err", err)
		}
	}
}

func (m *Manager) stopAll(why string) {
	m.mu.Lock()
	rs := make([]*runner, 0, len(m.runners))
	for _, r := range m.runners {
		rs = append(rs, r)
	}
	m.mu.Unlock()
	for _, r := range rs {
		m.logger.Warn("stopping the session here", "session_id", r.id, "why", why)
		m.forget(r)
		r.stop()
	}
}

// takeOver acquires leases of sessions that want to run and have no live
// owner, up to this node's fair share and capacity, and starts them.
func (m *Manager) takeOver(ctx context.Context) (int, error) {
	// A node is alive while its heartbeat is younger than a lease: a dead
	// node stops counting when its leases expire, so that the survivors'
	// fair share grows just as its sessions become free.
	desired, alive, err := m.db.ClusterCounts(ctx, m.opts.LeaseTTL)
	if err != nil {
		return 0, err
	}
	if alive < 1 || m.opts.SingleNode {
		alive = 1
	}
	share := (desired + alive - 1) / alive
	if share > m.opts.Capacity {
		share = m.opts.Capacity
	}
	m.mu.Lock()
	room := share - len(m.runners)
	closed := m.closed
	m.mu.Unlock()
	if closed || room <= 0 {
		return 0, nil
	}
	leases, err := m.db.AcquireFree(ctx, m.opts.NodeID, m.opts.LeaseTTL, room, m.opts.SingleNode, func(id string) bool { return m.runner(id) != nil })
	if err != nil {
		return 0, err
	}
	now := time.Now()
	var mine []store.Lease
	runners := make(map[string]*runner, len(leases))
	m.mu.Lock()
	for _, l := range leases {
		if m.closed || m.runners[l.SessionID] != nil {
			continue
		}
		r := &runner{m: m, id: l.SessionID, leasedAt: now}
		r.lease.Store(&l)
		m.runners[l.SessionID] = r
		runners[l.SessionID] = r
		mine = append(mine, l)
	}
	m.mu.Unlock()
	if len(mine) == 0 {
		return 0, nil
	}
	// Starting is not waited for: the loop must keep renewing leases on time.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.resume(mine, runners)
	}()
	return len(mine), nil
}

// resume starts sessions whose leases were just taken (runners holds their
// runners, already in the table): their starting status is stored for all
// of them in a few transactions, then each engine is made and connected.
func (m *Manager) resume(leases []store.Lease, runners map[string]*runner) {
	written, refused, err := m.db.SetStatuses(context.Background(), leases, wabsync.StatusStarting, "Resumed on node "+m.opts.NodeID+".",
		store.BulkStatus{Desire: true, Accept: func(s *wabsync.Session) bool {
			_, ok := m.opts.Factories[s.Engine]
			return ok
		}})
	if err != nil {
		m.logger.Warn("resuming sessions", "err", err)
	}
	for _, s := range refused {
		m.logger.Warn("resuming a session", "session_id", s.ID, "err", "this server has no "+strconv.Quote(s.Engine)+" engine")
	}
	// Those not written (fenced out, refused, or failed) give their
	// lease back — if it is still this node's.
	started := make([]*runner, len(written))
	for i, s := range written {
		started[i] = runners[s.ID]
		delete(runners, s.ID)
	}
	for _, r := range runners {
		m.dropRunner(r)
	}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, s := range written {
		r := started[i]
		if m.runner(s.ID) != r {
			// Dropped meanwhile (disconnected, or its lease lost).
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m.launch(r, s)
		}()
	}
	wg.Wait()
}

// SetAddress sets where other nodes reach this node (before Resume).
func (m *Manager) SetAddress(addr string) { m.opts.Address = addr }

// LeaseTTL returns how long this node's leases last without renewal.
func (m *Manager) LeaseTTL() time.Duration { return m.opts.LeaseTTL }

// Running returns how many sessions run on this node.
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.runners)
}
