package session

import (
	"context"
	"sync/atomic"
)

// outboxGate lets the session's sender on this node and a change to one of
// its queued messages made from outside (a revoke) take turns. The sender
// holds it while it sends and records a message (or a chunk of them); the
// change holds it while it writes, and counts itself in gen, so that a
// sender holding messages it read before the change reads them again
// instead of sending one the change failed.
type outboxGate struct {
	ch  chan struct{} // a token: held while it is in the channel
	gen atomic.Uint64 // changes made through CancelQueued
}

// gate returns the outbox gate of session id, made on first use. Gates are
// dropped with their session (Delete).
func (m *Manager) gate(id string) *outboxGate {
	if g, ok := m.gates.Load(id); ok {
		return g.(*outboxGate)
	}
	g, _ := m.gates.LoadOrStore(id, &outboxGate{ch: make(chan struct{}, 1)})
	return g.(*outboxGate)
}

// hold takes the gate, or returns ctx's error when ctx ends first.
func (g *outboxGate) hold(ctx context.Context) (release func(), err error) {
	select {
	case g.ch <- struct{}{}:
		return func() { <-g.ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// CancelQueued runs cancel, which fails a queued message of session id in a
// transaction of its own after checking that the message is still queued,
// while this node's sender of the session is between sends; a sender holding
// messages read before the change reads them again. So a message cancel
// finds queued is never in flight, and one the sender sent meanwhile is no
// longer queued when cancel looks. Revokes run on the session's owner node,
// where its sender is, so the gate of this node is the one that counts.
func (m *Manager) CancelQueued(ctx context.Context, id string, cancel func() error) error {
	g := m.gate(id)
	release, err := g.hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := cancel(); err != nil {
		return err
	}
	g.gen.Add(1)
	return nil
}
