package session

import (
	"context"

	"github.com/wabsync/wabsync"
)

// sender is a runner's outbox drain: a goroutine that runs only while the
// session has queued messages.
type sender struct {
	running bool
	again   bool
	done    chan struct{}
}

// wait blocks until the sender goroutine (if any) has finished.
func (s *sender) wait() {
	if s.done != nil {
		<-s.done
	}
}

// wakeLocked starts the sender if the session is connected and idle.
func (r *runner) wakeLocked() {
	if r.stopped || r.status != wabsync.StatusConnected {
		return
	}
	if r.send.running {
		r.send.again = true
		return
	}
	r.send.running = true
	r.send.done = make(chan struct{})
	go r.sendLoop(r.send.done)
}

func (r *runner) sendLoop(done chan struct{}) {
	defer close(done)
	for {
		n := r.m.sendQueued(r)
		r.mu.Lock()
		if n > 0 || r.send.again {
			r.send.again = false
			if !r.stopped && r.status == wabsync.StatusConnected {
				r.mu.Unlock()
				continue
			}
		}
		r.send.running = false
		r.mu.Unlock()
		return
	}
}

// handleData handles events that carry messages and receipts.
func (m *Manager) handleData(ctx context.Context, r *runner, ev wabsync.EngineEvent) error {
	return nil
}

// sendQueued sends what the session has queued; it returns how many it
// handled.
func (m *Manager) sendQueued(r *runner) int { return 0 }
