package httpapi

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/wabsync/wabsync"
)

// Defaults of the caps on open event streams (WABSYNC_MAX_STREAMS,
// WABSYNC_MAX_STREAMS_PER_TOKEN). A stream costs a goroutine, a descriptor
// and about 70 KiB; 1,000 of them stay under 100 MiB.
const (
	DefaultMaxStreams         = 1000
	DefaultMaxStreamsPerToken = 10
)

// streamRetryAfter is the Retry-After (seconds) of a stream refused by a cap:
// streams end when their clients go, so a slot frees up at no known time.
const streamRetryAfter = 10

// streams tracks this node's open event streams: how many per token and in
// all (the caps), and which session each one watches, so that a token
// rotation or a session deletion makes them check at once whether they may
// go on (see recheck).
type streams struct {
	maxTotal, maxPerToken int

	mu        sync.Mutex
	total     int
	perToken  map[string]int
	bySession map[string]map[*stream]struct{}
}

// stream is one open event stream.
type stream struct {
	token   string // the principal's token id
	session string
	recheck chan struct{} // a token or the session changed: check before going on
}

func newStreams(maxTotal, maxPerToken int) *streams {
	if maxTotal <= 0 {
		maxTotal = DefaultMaxStreams
	}
	if maxPerToken <= 0 {
		maxPerToken = DefaultMaxStreamsPerToken
	}
	return &streams{maxTotal: maxTotal, maxPerToken: maxPerToken,
		perToken: map[string]int{}, bySession: map[string]map[*stream]struct{}{}}
}

// open registers a stream of p on session, or refuses it past a cap
// (RATE_LIMITED); close releases it. The admin token, which may follow
// every session, is bound by the server's cap only.
func (st *streams) open(p *wabsync.Principal, session string) (*stream, error) {
	tokenID := p.TokenID
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.total >= st.maxTotal {
		return nil, errorf(wabsync.ERateLimited, "This server has as many event streams open as it allows (%d); retry after the time in Retry-After.", st.maxTotal)
	}
	if !p.Admin && st.perToken[tokenID] >= st.maxPerToken {
		return nil, errorf(wabsync.ERateLimited, "This token has as many event streams open as it may (%d); close one or retry after the time in Retry-After.", st.maxPerToken)
	}
	s := &stream{token: tokenID, session: session, recheck: make(chan struct{}, 1)}
	st.total++
	st.perToken[tokenID]++
	m := st.bySession[session]
	if m == nil {
		m = map[*stream]struct{}{}
		st.bySession[session] = m
	}
	m[s] = struct{}{}
	return s, nil
}

func (st *streams) close(s *stream) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.total--
	if st.perToken[s.token]--; st.perToken[s.token] <= 0 {
		delete(st.perToken, s.token)
	}
	if m := st.bySession[s.session]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(st.bySession, s.session)
		}
	}
}

// poke tells the streams of session to check their token and session again
// (a token was rotated or the session deleted, on this node or another).
func (st *streams) poke(session string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for s := range st.bySession[session] {
		select {
		case s.recheck <- struct{}{}:
		default: // a check is pending already
		}
	}
}

// retryAfter is the Retry-After value of a refused stream.
func (st *streams) retryAfter() string { return strconv.Itoa(streamRetryAfter) }

// streamAllowed asks the database, not the token cache, whether the stream
// opened with token on session may go on: the token still exists, still
// reaches the session, and the session exists. A storage failure keeps the
// stream (it is checked again later); a definite no ends it.
func (s *Server) streamAllowed(ctx context.Context, token, session string) bool {
	p, err := s.db.Authenticate(ctx, token)
	if err == nil {
		if !p.Admin && p.SessionID != session {
			return false
		}
		_, err = s.db.GetSession(ctx, session)
	}
	var e *wabsync.Error
	if errors.As(err, &e) && (e.Code == wabsync.EUnauthorized || e.Code == wabsync.ENotFound) {
		return false
	}
	return true
}
