package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/eventbus"
)

// sseHeartbeat is how often an idle stream gets a comment line.
var sseHeartbeat = 15 * time.Second

// ssePoll is how often a stream also looks in the database, for events
// stored by other nodes.
var ssePoll = 2 * time.Second

// CloseStreams ends every open event stream (server shutdown); clients
// reconnect with Last-Event-ID to another node or after the restart.
func (s *Server) CloseStreams() { s.closeStreams.Do(func() { close(s.streamsClosed) }) }

// SetEventBus connects the live event bus that SSE streams read.
func (s *Server) SetEventBus(b *eventbus.Bus) { s.bus = b }

// handleEvents streams a session's events as Server-Sent Events. Each event
// has id = its sequence; Last-Event-ID (or ?after=) resumes after it, from
// the database, without loss or duplicates.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	if _, err := s.db.CachedSession(r.Context(), id); err != nil {
		return err
	}
	st, err := s.streams.open(wabsync.PrincipalFromContext(r.Context()), id)
	if err != nil {
		w.Header().Set("Retry-After", s.streams.retryAfter())
		return err
	}
	defer s.streams.close(st)
	// revoked reports whether the stream must end: its token was rotated or
	// revoked, or its session deleted, since it was opened (asked of the
	// database when told of a change, and at each heartbeat in case a
	// notification was lost).
	tok, _ := bearerToken(r)
	revoked := func() bool { return !s.streamAllowed(r.Context(), tok, id) }
	// A rotation between this request's authentication (maybe from the token
	// cache) and open above poked no stream of it: ask once now.
	if revoked() {
		return errorf(wabsync.EUnauthorized, "The token is missing, malformed, unknown or revoked.")
	}
	var last int64
	resume := r.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = r.URL.Query().Get("after")
	}
	if resume != "" {
		n, err := strconv.ParseInt(resume, 10, 64)
		if err != nil || n < 0 {
			return fieldError(wabsync.EBadRequest, "Last-Event-ID", "must be the sequence number of an event")
		}
		last = n
	} else {
		// A new stream starts with what happens from now on.
		evs, err := s.db.LatestEventSeq(r.Context(), id)
		if err != nil {
			return err
		}
		last = evs
	}
	var sub *eventbus.Sub
	if s.bus != nil {
		sub = s.bus.Subscribe(id)
		defer s.bus.Unsubscribe(sub)
	}
	rc := http.NewResponseController(w)
	// A stream lives until its client goes: no server deadline applies.
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	_, _ = bw.WriteString("retry: 2000\n\n")
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	write := func(ev *wabsync.Event) error {
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		bw.WriteString("id: ")
		bw.WriteString(strconv.FormatInt(ev.Sequence, 10))
		bw.WriteString("\nevent: ")
		bw.WriteString(ev.Type)
		bw.WriteString("\ndata: ")
		bw.Write(body)
		bw.WriteString("\n\n")
		last = ev.Sequence
		return nil
	}
	catchUp := func() error {
		for {
			evs, err := s.db.ListEvents(r.Context(), id, last, 500)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if err := write(ev); err != nil {
					return err
				}
			}
			if len(evs) < 500 {
				return flush()
			}
		}
	}
	if err := catchUp(); err != nil {
		return nil
	}
	var live <-chan *wabsync.Event
	if sub != nil {
		live = sub.C
	}
	heart := time.NewTicker(sseHeartbeat)
	defer heart.Stop()
	poll := time.NewTicker(ssePoll)
	defer poll.Stop()
	for {
		// A pending check comes before any further event.
		select {
		case <-st.recheck:
			if revoked() {
				return nil
			}
		default:
		}
		select {
		case <-st.recheck:
			if revoked() {
				return nil
			}
		case <-r.Context().Done():
			return nil
		case <-s.streamsClosed:
			return nil
		case ev := <-live:
			if ev.Sequence < 0 {
				// A poke: events were stored by another node.
				if err := catchUp(); err != nil {
					return nil
				}
				continue
			}
			if ev.Sequence <= last {
				continue
			}
			if ev.Sequence != last+1 || sub.Lagged() {
				if err := catchUp(); err != nil {
					return nil
				}
				continue
			}
			if err := write(ev); err != nil || flush() != nil {
				return nil
			}
		case <-poll.C:
			if err := catchUp(); err != nil {
				return nil
			}
		case <-heart.C:
			if revoked() {
				return nil
			}
			bw.WriteString(": heartbeat\n\n")
			if flush() != nil {
				return nil
			}
		}
	}
}
