package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/ratelimit"
)

// authGate limits failed authentications per client address
// (WABSYNC_AUTH_FAIL_LIMIT per WABSYNC_AUTH_FAIL_WINDOW): past the limit,
// requests from that address whose token is not already known good are
// refused with RATE_LIMITED before the database is asked, until the window
// has passed. The failures are counted by a ratelimit.Limiter, so with
// Redis every node sees the same count; each node remembers on its own
// which addresses it refuses.
type authGate struct {
	lim *ratelimit.Limiter // nil: no limit

	mu      sync.Mutex
	blocked map[string]time.Time // client address → refused until
}

// authGateSweep is the number of refused addresses past which expired ones
// are swept on the next insertion (the map stays bounded by the addresses
// that failed more than the limit within a window).
const authGateSweep = 4096

func newAuthGate(lim *ratelimit.Limiter) *authGate {
	return &authGate{lim: lim, blocked: map[string]time.Time{}}
}

// check refuses the request while its address is over the limit.
func (g *authGate) check(w http.ResponseWriter, ip string) error {
	if g.lim == nil {
		return nil
	}
	g.mu.Lock()
	until, ok := g.blocked[ip]
	if ok && !time.Now().Before(until) {
		delete(g.blocked, ip)
		ok = false
	}
	g.mu.Unlock()
	if !ok {
		return nil
	}
	return g.refuse(w, time.Until(until))
}

// fail counts a failed authentication of ip; past the limit it starts
// refusing the address and returns RATE_LIMITED instead of err.
func (g *authGate) fail(w http.ResponseWriter, r *http.Request, ip string, err error) error {
	if g.lim == nil {
		return err
	}
	// The limiter's headers describe the failure budget, not the caller's
	// request budget: they stay off the response.
	cw := &captureWriter{header: http.Header{}}
	if g.lim.Allow(cw, r, "authfail:"+ip) {
		return err
	}
	g.mu.Lock()
	if len(g.blocked) >= authGateSweep {
		now := time.Now()
		for k, until := range g.blocked {
			if !now.Before(until) {
				delete(g.blocked, k)
			}
		}
	}
	g.blocked[ip] = time.Now().Add(g.lim.Window())
	g.mu.Unlock()
	return g.refuse(w, g.lim.Window())
}

func (g *authGate) refuse(w http.ResponseWriter, wait time.Duration) error {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	return errorf(wabsync.ERateLimited, "Too many failed authentications from this address; retry after the time in Retry-After.")
}
