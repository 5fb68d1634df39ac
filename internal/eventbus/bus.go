// Package eventbus fans stored events out to live subscribers in this
// process (SSE streams). It never blocks a publisher: a subscriber that
// falls behind is marked lagged and catches up from the database.
package eventbus

import (
	"sync"

	"github.com/wabsync/wabsync"
)

// Bus is an in-process publish/subscribe of events by session.
type Bus struct {
	mu   sync.RWMutex
	subs map[string]map[*Sub]struct{} // session id ("" = every session) → subscribers
}

// New returns an empty bus.
func New() *Bus { return &Bus{subs: map[string]map[*Sub]struct{}{}} }

// Sub is one subscription.
type Sub struct {
	C       chan *wabsync.Event
	mu      sync.Mutex
	lagged  bool
	session string
}

// Lagged reports (and clears) whether events were dropped since the last call.
func (s *Sub) Lagged() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lagged
	s.lagged = false
	return l
}

// Subscribe returns a subscription to the events of session ("" for all).
func (b *Bus) Subscribe(session string) *Sub {
	s := &Sub{C: make(chan *wabsync.Event, 256), session: session}
	b.mu.Lock()
	m := b.subs[session]
	if m == nil {
		m = map[*Sub]struct{}{}
		b.subs[session] = m
	}
	m[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Unsubscribe ends s.
func (b *Bus) Unsubscribe(s *Sub) {
	b.mu.Lock()
	if m := b.subs[s.session]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(b.subs, s.session)
		}
	}
	b.mu.Unlock()
}

// Publish hands ev to its session's subscribers and to those of every session.
func (b *Bus) Publish(ev *wabsync.Event) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if ev.SessionID != nil {
		b.send(b.subs[*ev.SessionID], ev)
	}
	b.send(b.subs[""], ev)
}

func (b *Bus) send(m map[*Sub]struct{}, ev *wabsync.Event) {
	for s := range m {
		select {
		case s.C <- ev:
		default:
			s.mu.Lock()
			s.lagged = true
			s.mu.Unlock()
		}
	}
}

// Poke tells the session's subscribers that events were stored elsewhere
// (another node), so that they read them from the database now.
func (b *Bus) Poke(session string) {
	sid := session
	b.Publish(&wabsync.Event{SessionID: &sid, Sequence: -1})
}
