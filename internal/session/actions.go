package session

import (
	"context"
	"errors"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// lockActions serialises the control actions of session id on this node
// (connect, disconnect, logout, restart, delete): each reads and replaces
// the session's runner and lease, and two interleaved fenced each other's
// writes out (a 500 to one of the callers). It returns the unlock, or ctx's
// error when ctx ends while waiting.
func (m *Manager) lockActions(ctx context.Context, id string) (func(), error) {
	return m.actions.Lock(ctx, id)
}

// errRaced is what an action answers when the session's lease changed
// hands under it (another node took it, or this node's lease lapsed).
var errRaced = wabsync.Errorf(wabsync.EConflict,
	"The session changed meanwhile (another connect, disconnect or restart, maybe on another node); try again.")

// conflictOnLostLease turns a write refused for a lost lease into 409
// CONFLICT: the caller raced with another action, nothing broke.
func conflictOnLostLease(err error) error {
	if errors.Is(err, store.ErrLeaseLost) {
		return errRaced
	}
	return err
}

// serialised runs act under the session's action lock, mapping a lost
// lease to CONFLICT.
func serialised[T any](m *Manager, ctx context.Context, id string, act func() (T, error)) (T, error) {
	var zero T
	unlock, err := m.lockActions(ctx, id)
	if err != nil {
		return zero, err
	}
	defer unlock()
	v, err := act()
	if err != nil {
		return zero, conflictOnLostLease(err)
	}
	return v, nil
}
